/**
 * The fetch step against the mock Spotify: paging, every fault case (429 + Retry-After, 500, slow
 * answer, malformed JSON, wrong shape, 403), empty lists, duplicates, the bundled sample, the
 * files in the run folder, and the `scripts/fetch.ts` command line.
 */

import { type Config, loadConfig } from "../lib/config.ts";
import { ExitCode, exitCodeOf, SourceError } from "../lib/errors.ts";
import { createRun, listRunIds, type Run } from "../lib/run.ts";
import { TOP_TRACKS_SAMPLE } from "../lib/spotify/top_tracks.ts";
import { runStep, type StepOutcome } from "../lib/steps.ts";
import type { FetchOutput } from "../lib/types.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  ROOT,
  runTask,
  testLog,
} from "./_spotify_test_util.ts";
import {
  makeTrackItems,
  mockEnv,
  type MockSpotify,
  type MockSpotifyOptions,
  recordedTopTracks,
  startMockSpotify,
  writeMockTokens,
} from "./mock_spotify.ts";

const TOP = "/v1/me/top/tracks";

interface Env {
  mock: MockSpotify;
  dir: string;
  config: Config;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  options: MockSpotifyOptions = {},
  extra: Record<string, string> = {},
): Promise<Env> {
  const mock = startMockSpotify(options);
  const dir = await Deno.makeTempDir({ prefix: "spotify_fetch_test_" });
  const config = loadConfig({
    env: mockEnv(mock, dir, {
      HTTP_TIMEOUT_MS: "5000",
      HTTP_MAX_RETRIES: "3",
      PIPELINE_STREAMS: "top_tracks",
      ...extra,
    }),
    envFile: false,
  });
  await writeMockTokens(mock, config.spotify.tokensFile);
  return {
    mock,
    dir,
    config,
    async [Symbol.asyncDispose]() {
      await mock.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function fetchRun(
  config: Config,
  date = "2026-03-01",
): Promise<{ run: Run; outcome: StepOutcome; lines: string[]; output: FetchOutput }> {
  const { log, lines } = testLog();
  const run = await createRun(config, { date });
  const outcome = await runStep("fetch", { config, run, log, flags: {} });
  const output = (await run.readJson("fetch", "tracks.json")) as FetchOutput;
  return { run, outcome, lines, output };
}

function topRequests(mock: MockSpotify): string[] {
  return mock.requestsTo(TOP).map((r) =>
    `${r.query.time_range} ${r.query.offset}/${r.query.limit} ${r.status}`
  );
}

Deno.test("fetch pages through top tracks with limit 50 up to SPOTIFY_MAX_TRACKS", async () => {
  await using env = await setup({ topTracks: makeTrackItems(130) }, {
    SPOTIFY_MAX_TRACKS: "120",
  });
  const { run, outcome, output } = await fetchRun(env.config);

  assertEquals(topRequests(env.mock), [
    "short_term 0/50 200",
    "short_term 50/50 200",
    "short_term 100/20 200",
  ]);
  assertEquals(output.rows.length, 120);
  assertEquals(output.rows.map((r) => r.rank), Array.from({ length: 120 }, (_, i) => i + 1));
  assertEquals(output.source, "api");
  assertEquals(output.run_id, run.id);
  assertEquals(output.snapshot_date, "2026-03-01");
  assertEquals(outcome.counts, {
    rows: 120,
    top_tracks_rows: 120,
    top_tracks_pages: 3,
    top_tracks_duplicates: 0,
    top_tracks_rows_short_term: 120,
  });
  assertEquals(outcome.outputs, [
    "fetch/raw/short_term_0.json",
    "fetch/raw/short_term_50.json",
    "fetch/raw/short_term_100.json",
    "fetch/tracks.json",
  ]);
  const raw = JSON.parse(await Deno.readTextFile(run.path("fetch/raw/short_term_100.json")));
  assertEquals([raw.offset, raw.limit, raw.total, raw.items.length], [100, 20, 130, 20]);
  assertMatch(String(outcome.summary?.text), /^Fetched 120 top tracks from the Spotify API/);
  assertEquals(run.manifest.steps.fetch?.status, "succeeded");
});

Deno.test("fetch normalizes the recorded Spotify tracks into TopTrackRow", async () => {
  await using env = await setup();
  const { output, run } = await fetchRun(env.config);
  const recorded = recordedTopTracks();
  assertEquals(output.rows.length, recorded.length);
  const first = output.rows[0]!;
  assertEquals(first, {
    user_id: "mockuser",
    snapshot_date: "2026-03-01",
    time_range: "short_term",
    rank: 1,
    track_id: "1aDeaDooAd79p2sdImGG4a",
    track_name: "Dulce introduccion al caos",
    artist_ids: ["3bgsNtcf5d5h9jbQbohfBK"],
    artist_names: ["Extremoduro"],
    album_id: "1GYJUlbVr5FuNU7awwMGzu",
    album_name: "La ley innata",
    album_release_date: null, // the recorded (2016) response has no release_date
    duration_ms: 462013,
    explicit: false,
    popularity: 52,
    isrc: "ES5150800589",
    fetched_at: first.fetched_at,
    run_id: run.id,
  });
  assert(!Number.isNaN(Date.parse(first.fetched_at)));
  assertEquals(
    output.rows.map((r) => r.track_id),
    recorded.map((t) => t.id as string),
  );
});

Deno.test("fetch stops at the end of the list and fetches every configured time range", async () => {
  await using env = await setup({
    topTracks: {
      short_term: makeTrackItems(70),
      medium_term: makeTrackItems(3, { prefix: "Medium" }),
      long_term: [],
    },
  }, { SPOTIFY_MAX_TRACKS: "500", SPOTIFY_TIME_RANGES: "short_term,medium_term,long_term" });
  const { outcome, output, lines } = await fetchRun(env.config);
  assertEquals(topRequests(env.mock), [
    "short_term 0/50 200",
    "short_term 50/50 200",
    "medium_term 0/50 200",
    "long_term 0/50 200",
  ]);
  assertEquals(outcome.counts, {
    rows: 73,
    top_tracks_rows: 73,
    top_tracks_pages: 4,
    top_tracks_duplicates: 0,
    top_tracks_rows_short_term: 70,
    top_tracks_rows_medium_term: 3,
    top_tracks_rows_long_term: 0,
  });
  assertEquals(output.rows.filter((r) => r.time_range === "medium_term").map((r) => r.rank), [
    1,
    2,
    3,
  ]);
  assert(lines.some((l) => l.includes("long_term: Spotify returned no top tracks")));
});

Deno.test("an empty top-tracks list gives zero rows and still succeeds", async () => {
  await using env = await setup({ topTracks: [] });
  const { outcome, output, run } = await fetchRun(env.config);
  assertEquals(output.rows, []);
  assertEquals(outcome.counts?.rows, 0);
  assertEquals(run.manifest.steps.fetch?.status, "succeeded");
  const raw = JSON.parse(await Deno.readTextFile(run.path("fetch/raw/short_term_0.json")));
  assertEquals([raw.total, raw.items], [0, []]);
});

Deno.test("duplicate tracks in a page are kept with their ranks and counted", async () => {
  const [a, b, c] = recordedTopTracks();
  await using env = await setup({ topTracks: [a, b, a, c, a, b] });
  const { outcome, output, lines } = await fetchRun(env.config);
  assertEquals(output.rows.map((r) => `${r.rank}:${r.track_id}`), [
    `1:${a!.id}`,
    `2:${b!.id}`,
    `3:${a!.id}`,
    `4:${c!.id}`,
    `5:${a!.id}`,
    `6:${b!.id}`,
  ]);
  assertEquals(outcome.counts?.top_tracks_duplicates, 3);
  const line = lines.find((l) => l.includes("duplicate track listing"));
  assert(line, "duplicates are logged");
  const record = JSON.parse(line);
  assertEquals(record.duplicates, [
    { track_id: a!.id, ranks: [1, 3, 5] },
    { track_id: b!.id, ranks: [2, 6] },
  ]);
  assertStringIncludes(String(outcome.summary?.text), "3 duplicate listing(s) kept");
});

Deno.test("fetch waits Retry-After on 429 and then succeeds", async () => {
  await using env = await setup();
  env.mock.fault(TOP, { kind: "status", status: 429, retryAfter: "1" });
  const { output, lines } = await fetchRun(env.config);
  assertEquals(output.rows.length, 5);
  assertEquals(topRequests(env.mock), ["short_term 0/50 429", "short_term 0/50 200"]);
  const retry = lines.map((l) => JSON.parse(l)).find((r) => r.msg.startsWith("Retrying"));
  assertEquals(retry?.retry_after_ms, 1000);
  assert(retry.msg.includes(`${env.mock.url}${TOP}`));
});

Deno.test("fetch retries a 500 and then succeeds", async () => {
  await using env = await setup();
  env.mock.fault(TOP, { kind: "status", status: 500 }, 2);
  const { output } = await fetchRun(env.config);
  assertEquals(output.rows.length, 5);
  assertEquals(topRequests(env.mock), [
    "short_term 0/50 500",
    "short_term 0/50 500",
    "short_term 0/50 200",
  ]);
});

Deno.test("fetch retries an answer slower than the timeout and then succeeds", async () => {
  await using env = await setup({}, { HTTP_TIMEOUT_MS: "200" });
  env.mock.fault(TOP, { kind: "slow", delayMs: 5_000 });
  const { output, lines } = await fetchRun(env.config);
  assertEquals(output.rows.length, 5);
  assertEquals(env.mock.requestsTo(TOP).length, 2);
  assert(lines.some((l) => l.includes("No answer within 200 ms")));
});

Deno.test("fetch gives up after the retries with a SourceError (exit 3) naming the URL", async () => {
  await using env = await setup({}, { HTTP_MAX_RETRIES: "1" });
  env.mock.fault(TOP, { kind: "status", status: 503 }, 5);
  const { log } = testLog();
  const run = await createRun(env.config, { date: "2026-03-01" });
  const error = await assertRejects(
    () => runStep("fetch", { config: env.config, run, log, flags: {} }),
    SourceError,
  );
  assertStringIncludes(error.message, `${env.mock.url}${TOP}?time_range=short_term`);
  assertStringIncludes(error.message, "HTTP 503");
  assertEquals(exitCodeOf(error), ExitCode.source);
  assertEquals(env.mock.requestsTo(TOP).length, 2);
  assertEquals(run.manifest.steps.fetch?.status, "failed");
});

Deno.test("malformed JSON is a SourceError naming the URL", async () => {
  await using env = await setup();
  env.mock.fault(TOP, { kind: "malformed" });
  const { log } = testLog();
  const run = await createRun(env.config, { date: "2026-03-01" });
  const error = await assertRejects(
    () => runStep("fetch", { config: env.config, run, log, flags: {} }),
    SourceError,
  );
  assertStringIncludes(error.message, `${env.mock.url}${TOP}?time_range=short_term&limit=50`);
  assertStringIncludes(error.message, "not JSON");
  assertEquals(env.mock.requestsTo(TOP).length, 1, "a 200 with a broken body is not retried");
  await assertRejects(() => Deno.stat(run.path("fetch/tracks.json")), Deno.errors.NotFound);
});

Deno.test("a page of the wrong shape is a SourceError naming the URL and what was wrong", async () => {
  await using env = await setup();
  const { log } = testLog();
  const cases: [unknown, string][] = [
    [{ items: "nope", total: 1, limit: 50, offset: 0, next: null }, '"items" is not an array'],
    [{ items: [], limit: 50, offset: 0, next: null }, '"total" is not a non-negative integer'],
    [
      { items: [{ id: "x", name: "n", artists: "A" }], total: 1, limit: 50, offset: 0, next: null },
      'items[0] (x) "artists" is not an array',
    ],
    [
      {
        items: [{ ...recordedTopTracks()[0], duration_ms: "3 min" }],
        total: 1,
        limit: 50,
        offset: 0,
        next: null,
      },
      '"duration_ms" is not a number',
    ],
    [{ error: { status: 200, message: "?" } }, '"items" is not an array (found nothing)'],
  ];
  for (const [body, what] of cases) {
    env.mock.fault(TOP, { kind: "body", body });
    const run = await createRun(env.config, { date: "2026-03-01" });
    const error = await assertRejects(
      () => runStep("fetch", { config: env.config, run, log, flags: {} }),
      SourceError,
    );
    assertStringIncludes(error.message, `${TOP}?time_range=short_term&limit=50&offset=0`);
    assertStringIncludes(error.message, what);
    // The raw page is kept for inspection.
    assertEquals(
      JSON.parse(await Deno.readTextFile(run.path("fetch/raw/short_term_0.json"))),
      body,
    );
  }
});

Deno.test("a 403 is not retried and says what to check", async () => {
  await using env = await setup();
  env.mock.fault(TOP, {
    kind: "status",
    status: 403,
    body: { error: { status: 403, message: "Forbidden" } },
  });
  const { log } = testLog();
  const run = await createRun(env.config, { date: "2026-03-01" });
  const error = await assertRejects(
    () => runStep("fetch", { config: env.config, run, log, flags: {} }),
    SourceError,
  );
  assertStringIncludes(error.message, "HTTP 403");
  assertStringIncludes(error.hint ?? "", "User Management");
  assertStringIncludes(error.hint ?? "", "Premium");
  assertEquals(env.mock.requestsTo(TOP).length, 1);
});

Deno.test("an expired token mid-fetch is refreshed once and the page retried", async () => {
  await using env = await setup({ topTracks: makeTrackItems(60) }, { SPOTIFY_MAX_TRACKS: "60" });
  env.mock.fault(TOP, { kind: "expired_token" });
  const { output } = await fetchRun(env.config);
  assertEquals(output.rows.length, 60);
  assertEquals(env.mock.requests.map((r) => `${r.path} ${r.status}`), [
    `${TOP} 401`,
    "/api/token 200",
    `${TOP} 200`,
    `${TOP} 200`,
  ]);
});

Deno.test("source sample uses the bundled pages of its two users with a warning", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = loadConfig({
      env: {
        PIPELINE_DATA_DIR: dir,
        SPOTIFY_SOURCE: "sample",
        SPOTIFY_TIME_RANGES: "short_term,long_term",
        PIPELINE_STREAMS: "top_tracks",
      },
      envFile: false,
    });
    const read = async (path: string) => JSON.parse(await Deno.readTextFile(`${ROOT}${path}`));
    const first = await read(`data/${TOP_TRACKS_SAMPLE}`); // 21 items (see data/README.md)
    const second = await read(`data/sample_2/${TOP_TRACKS_SAMPLE}`); // 12 items
    const { run, outcome, output, lines } = await fetchRun(config);
    assertEquals(output.source, "sample");
    assertEquals(output.users, ["sample", "sample_2"]);
    const ids = (page: { items: { id: string }[] }) => page.items.map((t) => t.id);
    assertEquals(
      output.rows.filter((r) => r.user_id === "sample").map((r) => r.track_id),
      ids(first),
    );
    assertEquals(
      output.rows.filter((r) => r.user_id === "sample_2").map((r) => r.track_id),
      ids(second),
    );
    assertEquals(output.rows.length, 21 + 12);
    assertEquals(outcome.counts?.rows, 33);
    assertEquals(outcome.counts?.top_tracks_rows_short_term, 33);
    assert(output.rows.every((r) => r.time_range === "short_term" && r.run_id === run.id));
    const warnings = lines.map((l) => JSON.parse(l)).filter((r) => r.level === "warn");
    assertStringIncludes(warnings[0]?.msg ?? "", "bundled sample");
    assertStringIncludes(warnings[1]?.msg ?? "", "skipping long_term");
    assertEquals(run.manifest.warnings, [
      "fetch used the bundled sample data, not Spotify data",
    ]);
    assertEquals(Object.keys(run.manifest.users ?? {}), ["sample", "sample_2"]);
    assertEquals(run.manifest.users?.sample_2?.steps.fetch, { status: "succeeded", rows: 12 });
    assertStringIncludes(String(outcome.summary?.text), "user sample_2: Fetched 12 tracks");
    assertStringIncludes(String(outcome.summary?.text), "SAMPLE");
    const raw = JSON.parse(
      await Deno.readTextFile(run.path("fetch/raw/sample_2/short_term_0.json")),
    );
    assertEquals(raw, second);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("`scripts/fetch.ts --date` fetches from the API into a new run folder", async () => {
  await using env = await setup({ topTracks: makeTrackItems(55) }, {});
  const out = await runTask(
    "fetch.ts",
    ["--date", "2026-02-28"],
    mockEnv(env.mock, env.dir, { SPOTIFY_MAX_TRACKS: "55", PIPELINE_STREAMS: "top_tracks" }),
    env.dir,
  );
  assertEquals(out.code, 0, out.stderr);
  const [id] = await listRunIds(env.config);
  assert(id);
  const output = JSON.parse(
    await Deno.readTextFile(`${env.config.runsDir}/${id}/fetch/tracks.json`),
  ) as FetchOutput;
  assertEquals([output.source, output.snapshot_date, output.rows.length], [
    "api",
    "2026-02-28",
    55,
  ]);
  const raws = [...Deno.readDirSync(`${env.config.runsDir}/${id}/fetch/raw`)].map((e) => e.name);
  assertEquals(raws.sort(), ["short_term_0.json", "short_term_50.json"]);
  const tokens = JSON.parse(await Deno.readTextFile(env.config.spotify.tokensFile));
  assert(!out.stderr.includes(tokens.access_token), "the access token reached the log");
});

Deno.test("`scripts/fetch.ts` exits 3 on malformed JSON and 2 without a token store", async () => {
  await using env = await setup();
  env.mock.fault(TOP, { kind: "malformed" });
  const bad = await runTask("fetch.ts", [], mockEnv(env.mock, env.dir), env.dir);
  assertEquals(bad.code, ExitCode.source, bad.stderr);
  assertStringIncludes(bad.stderr, `${env.mock.url}${TOP}?time_range=short_term`);

  await Deno.remove(env.config.spotify.tokensFile);
  const none = await runTask("fetch.ts", [], mockEnv(env.mock, env.dir), env.dir);
  assertEquals(none.code, ExitCode.config, none.stderr);
  assertStringIncludes(none.stderr, "deno task auth");
});
