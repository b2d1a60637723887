/**
 * Streams end to end against the mock Spotify (real DuckDB): polls over a simulated day store
 * each play once; a lost window is reported; a missing scope or Spotify's daily quota stops only
 * the stream it hits; the cursor comes back from the lake when the state is lost; the stream
 * column lists equal dbt's source yml; the recently-played page checks.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { query } from "./_duckdb.ts";
import { type Config, loadConfig, PROJECT_ROOT } from "../lib/config.ts";
import { SourceError } from "../lib/errors.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { listRunIds, openRun } from "../lib/run.ts";
import { summarize } from "../lib/server/runs.ts";
import {
  normalizeRecentlyPlayed,
  selectNewPlays,
  validateRecentlyPlayedPage,
} from "../lib/spotify/recently_played.ts";
import { statePath } from "../lib/state.ts";
import { LOAD_METADATA_COLUMNS } from "../lib/streams/columns.ts";
import { readStreamRows } from "../lib/streams/handoff.ts";
import { STREAM_NAMES, STREAMS } from "../lib/streams/registry.ts";
import { runTask, testLog } from "./_spotify_test_util.ts";
import {
  makePlays,
  makeTrackItems,
  mockEnv,
  type MockSpotify,
  startMockSpotify,
  writeMockTokens,
} from "./mock_spotify.ts";

const RECENT = "/v1/me/player/recently-played";
const MINUTE = 60_000;
const DAY0 = Date.parse("2026-11-30T00:00:00.000Z");

interface Env {
  mock: MockSpotify;
  dir: string;
  env: Record<string, string>;
  config: Config;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  mockOptions: Parameters<typeof startMockSpotify>[0] = {},
  options: { scope?: string; extra?: Record<string, string> } = {},
): Promise<Env> {
  const mock = startMockSpotify(mockOptions);
  const dir = await Deno.makeTempDir({ prefix: "streams_test_" });
  const env = mockEnv(mock, dir, {
    HTTP_TIMEOUT_MS: "5000",
    HTTP_MAX_RETRIES: "2",
    FEATURES_PROVIDERS: "csv",
    ...options.extra,
  });
  const config = loadConfig({ env, envFile: false });
  await writeMockTokens(mock, config.spotify.tokensFile, { scope: options.scope });
  return {
    mock,
    dir,
    env,
    config,
    async [Symbol.asyncDispose]() {
      await mock.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** One poll, in process, as `deno task poll` runs it. */
async function poll(config: Config) {
  const { log } = testLog();
  return await runPipeline(config, { log, schedule: "poll" });
}

/** Plays in raw, and distinct plays (user_id, played_at, track_id). */
async function playCounts(config: Config): Promise<{ rows: number; distinct: number }> {
  assert.ok(config.warehouse.kind === "duckdb");
  const [r] = await query(
    config.warehouse.path,
    `SELECT count(*)::INTEGER AS n,
            count(DISTINCT (user_id, played_at, track_id))::INTEGER AS d
     FROM raw.recently_played`,
  );
  return { rows: Number(r?.n), distinct: Number(r?.d) };
}

Deno.test("dbt's source yml lists exactly each stream's columns, in order", async () => {
  const yml = await Deno.readTextFile(
    join(PROJECT_ROOT, "dbt/models/staging/spotify/_spotify__sources.yml"),
  );
  const tables = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of yml.split("\n")) {
    const table = /^ {6}- name: (\w+)\s*$/.exec(line);
    if (table) tables.set(table[1]!, current = []);
    const column = /^ {10}- name: (\w+)\s*$/.exec(line);
    if (column) current?.push(column[1]!);
  }
  assert.deepEqual([...tables.keys()], STREAM_NAMES.map((n) => STREAMS[n].rawTable));
  for (const name of STREAM_NAMES) {
    const stream = STREAMS[name];
    assert.deepEqual(
      tables.get(stream.rawTable),
      [...stream.columns, ...LOAD_METADATA_COLUMNS].map((c) => c.name),
      stream.rawTable,
    );
  }
});

Deno.test("polls every 30 minutes over a simulated day store each play once; a lost window is reported", async () => {
  const tracks = makeTrackItems(8);
  // a play every 3 minutes for 28 hours: 560 plays
  const plays = makePlays(tracks, { startMs: DAY0 + 90_000, everyMs: 3 * MINUTE, count: 560 });
  await using e = await setup({ plays });
  let now = DAY0;
  e.mock.state.now = () => now;

  for (let tick = 1; tick <= 48; tick++) {
    now = DAY0 + tick * 30 * MINUTE;
    const { run } = await poll(e.config);
    assert.equal(run.manifest.status, "succeeded");
    assert.equal(run.manifest.steps.fetch?.counts?.possible_gap, 0, `poll ${tick}`);
  }
  const day = plays.filter((p) => p.playedAt <= now).length;
  assert.equal(day, 480);
  assert.deepEqual(await playCounts(e.config), { rows: day, distinct: day });
  // every request after the first carried the cursor: the newest play already stored
  const requests = e.mock.requestsTo(RECENT);
  assert.equal(requests.length, 48);
  assert.equal(requests[0]!.query.after, undefined);
  assert.equal(requests[1]!.query.after, String(plays[9]!.playedAt));
  assert.equal(requests.at(-1)!.query.after, String(plays[day - 11]!.playedAt));

  // the same window again (a retried poll, no new plays): nothing added
  await poll(e.config);
  assert.deepEqual(await playCounts(e.config), { rows: day, distinct: day });

  // four hours without a poll: 80 plays, Spotify keeps 50 — the poll says plays may be lost
  now += 4 * 60 * MINUTE;
  const { run } = await poll(e.config);
  assert.equal(run.manifest.steps.fetch?.counts?.possible_gap, 1);
  assert.ok(
    run.manifest.warnings.some((w) => /possible gap/.test(w)),
    run.manifest.warnings.join(),
  );
  assert.equal(summarize(run.manifest, undefined).possible_gap, 1, "GET /runs shows it");
  assert.deepEqual(await playCounts(e.config), { rows: day + 50, distinct: day + 50 });
});

Deno.test("the cursor is recovered from the lake when the state is lost; overlapping windows add nothing", async () => {
  const plays = makePlays(makeTrackItems(5), {
    startMs: DAY0 + 60_000,
    everyMs: 4 * MINUTE,
    count: 40,
  });
  await using e = await setup({ plays });
  let now = DAY0 + 60 * MINUTE; // 15 plays
  e.mock.state.now = () => now;
  await poll(e.config);
  now += 60 * MINUTE; // 15 more
  await poll(e.config);
  assert.deepEqual(await playCounts(e.config), { rows: 30, distinct: 30 });

  await Deno.remove(statePath(e.config, "recently_played"));
  now += 20 * MINUTE; // 5 more
  const { run } = await poll(e.config);
  const fetched = await readStreamRows(run, "fetch", STREAMS.recently_played);
  assert.equal(fetched.rows.length, 5, "only the plays after the newest one in the lake");
  assert.equal(e.mock.requestsTo(RECENT).at(-1)!.query.after, String(plays[29]!.playedAt));
  assert.deepEqual(await playCounts(e.config), { rows: 35, distinct: 35 });

  // a damaged state file is reported and recovered the same way
  await Deno.writeTextFile(statePath(e.config, "recently_played"), "{not json");
  now += 8 * MINUTE;
  await poll(e.config);
  assert.deepEqual(await playCounts(e.config), { rows: 37, distinct: 37 });
});

Deno.test("a token without user-read-recently-played: the daily run keeps top tracks, ends partial (exit 3) and says to re-auth; poll fails with exit 3", async () => {
  await using e = await setup({}, { scope: "user-top-read" });
  const { log } = testLog();
  const { run } = await runPipeline(e.config, { log, to: "load" });
  assert.equal(run.manifest.status, "partial");
  assert.equal(run.manifest.users?.default?.status, "partial");
  assert.equal(run.exitCode, 3);
  const warning = run.manifest.warnings.find((w) => w.includes("recently_played stopped"));
  assert.match(String(warning), /user-read-recently-played.*deno task auth/);
  assert.equal(e.mock.requestsTo(RECENT).length, 0, "the stored scope already says so");
  assert.ok(e.config.warehouse.kind === "duckdb");
  const [tracks] = await query(
    e.config.warehouse.path,
    "SELECT count(*)::INTEGER AS n FROM raw.top_tracks",
  );
  assert.equal(tracks?.n, 5);
  const [artists] = await query(
    e.config.warehouse.path,
    "SELECT count(*)::INTEGER AS n FROM raw.top_artists",
  );
  assert.equal(artists?.n, 15);

  const out = await runTask("poll.ts", [], e.env, e.dir);
  assert.equal(out.code, 3, out.stderr);
  const errors = out.stderr.split("\n").filter((l) => l.includes('"level":"error"'));
  assert.equal(errors.length, 1, out.stderr);
  assert.match(errors[0]!, /lacks scope user-read-recently-played.*deno task auth/);
});

Deno.test("Spotify's 403 'Insufficient client scope' on recently played is the same one-line error", async () => {
  // a token store that says nothing of scopes (older stores): Spotify's answer decides
  await using e = await setup({}, { scope: "" });
  e.mock.fault(RECENT, {
    kind: "status",
    status: 403,
    body: { error: { status: 403, message: "Insufficient client scope" } },
  });
  const { log } = testLog();
  const error = await runPipeline(e.config, { log, schedule: "poll" }).catch((x) => x);
  assert.ok(error instanceof SourceError, String(error));
  assert.match(error.message, /lacks scope user-read-recently-played.*deno task auth/);
  assert.equal(e.mock.requestsTo(RECENT).length, 1);
});

Deno.test("429 QUOTA_EXCEEDED is not retried: it stops the stream for the run", async () => {
  await using e = await setup();
  e.mock.fault(RECENT, {
    kind: "status",
    status: 429,
    retryAfter: "1",
    body: { error: { status: 429, message: "Quota exceeded", reason: "QUOTA_EXCEEDED" } },
  }, 10);
  const { log } = testLog();
  const error = await runPipeline(e.config, { log, schedule: "poll" }).catch((x) => x);
  assert.ok(error instanceof SourceError, String(error));
  assert.match(error.message, /daily quota.*QUOTA_EXCEEDED.*not retried/);
  assert.equal(e.mock.requestsTo(RECENT).length, 1, "no retries");

  // in the daily run: top tracks land; the quota stops recently played and what comes after
  const { run } = await runPipeline(e.config, { log, to: "load" });
  assert.equal(run.manifest.steps.load?.status, "succeeded");
  assert.match(
    String(run.manifest.users?.default?.error),
    /^recently_played stopped: .*quota.*; top_artists stopped: .*quota/i,
  );
  assert.equal(run.exitCode, 3);
  assert.equal(run.manifest.steps.load?.counts?.rows_loaded, 5);
});

Deno.test("a poll meeting a running run is skipped with exit 0, and the next poll gets its plays", async () => {
  await using e = await setup();
  const { acquireRunLock } = await import("../lib/lock.ts");
  const lock = await acquireRunLock(e.config, { runId: "20261130T000000Z-abcd" });
  try {
    const out = await runTask("poll.ts", [], e.env, e.dir);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /poll skipped: .*20261130T000000Z-abcd/);
    assert.deepEqual(await listRunIds(e.config), []);
  } finally {
    await lock.release();
  }
  const out = await runTask("poll.ts", [], e.env, e.dir);
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(await playCounts(e.config), { rows: 2, distinct: 2 });
  const [id] = await listRunIds(e.config);
  const run = await openRun(e.config, { runId: id });
  assert.equal(run.schedule, "poll");
  assert.deepEqual(run.streams, ["recently_played"]);
  assert.equal(run.manifest.status, "succeeded");
  assert.equal(run.manifest.steps.transform, undefined);
});

Deno.test("recently-played pages: played_at without milliseconds is normalized; plays at or before the cursor are dropped", () => {
  const [a, b] = makeTrackItems(2);
  const page = validateRecentlyPlayedPage({
    items: [
      { track: b, played_at: "2026-11-30T10:05:00Z", context: null },
      { track: a, played_at: "2026-11-30T10:00:00.000Z", context: { type: "album", uri: "u" } },
      { track: a, played_at: "2026-11-30T10:00:00Z", context: null },
      { track: b, played_at: "2026-11-30T09:55:00.500Z", context: null },
    ],
    next: null,
    cursors: null,
    limit: 50,
  }, "test");
  const rows = normalizeRecentlyPlayed(page, {
    userId: "u1",
    runId: "r",
    fetchedAt: "2026-11-30T10:06:00.000Z",
    source: "test",
  });
  assert.deepEqual(rows.map((r) => r.played_at), [
    "2026-11-30T10:05:00.000Z",
    "2026-11-30T10:00:00.000Z",
    "2026-11-30T10:00:00.000Z",
    "2026-11-30T09:55:00.500Z",
  ]);
  assert.equal(rows[1]!.context_type, "album");
  const fresh = selectNewPlays(rows, { cursor: "2026-11-30T09:55:00.500Z", limit: 50 });
  assert.equal(fresh.rows.length, 2);
  assert.equal(fresh.alreadyStored, 1);
  assert.equal(fresh.duplicates, 1);
  assert.equal(fresh.possibleGap, 0);
  assert.equal(
    selectNewPlays(rows, { cursor: "2026-11-30T09:00:00.000Z", limit: 4 }).possibleGap,
    1,
  );
  assert.throws(
    () =>
      normalizeRecentlyPlayed(
        validateRecentlyPlayedPage({ items: [{ track: a, played_at: "yesterday" }] }, "GET x"),
        { userId: "u", runId: "r", fetchedAt: "2026-11-30T10:06:00.000Z", source: "GET x" },
      ),
    /items\[0\] "played_at" is not an ISO-8601 time/,
  );
  assert.throws(
    () => validateRecentlyPlayedPage({ items: {} }, "GET x"),
    /"items" is not an array/,
  );
});

Deno.test("from an empty data folder the samples fill every raw table and model; a second run changes no model's row count; 5 polls add no play", async () => {
  const dir = await Deno.makeTempDir({ prefix: "streams_sample_" });
  const env = { PIPELINE_DATA_DIR: dir, SPOTIFY_SOURCE: "sample" };
  const tables = [
    "raw.top_tracks",
    "raw.recently_played",
    "raw.top_artists",
    "main.top_tracks",
    "main.audio_features",
    "main.inter_top_weekly_audio_features",
    "main.plays",
    "main.daily_listening",
    "main.top_artists",
    "main.inter_weekly_listening_audio_features",
  ];
  const counts = async () => {
    const out: Record<string, number> = {};
    for (const t of tables) {
      out[t] = Number(
        (await query(join(dir, "warehouse.duckdb"), `SELECT count(*) AS n FROM ${t}`))[0]!.n,
      );
    }
    return out;
  };
  try {
    const first = await runTask("pipeline.ts", [], env, dir);
    assert.equal(first.code, 0, first.stderr.slice(-2000));
    const after1 = await counts();
    assert.match(
      first.stdout,
      /Listening of sample \(plays, daily_listening\): 30 plays on 5 day\(s\) from 2016-12-13 to 2026-11-30, \d+ minutes/,
    );
    assert.match(
      first.stdout,
      /Listening of sample_2 \(plays, daily_listening\): 17 plays on 3 day\(s\) from 2016-12-13 to 2026-11-30, \d+ minutes/,
    );
    assert.match(
      first.stdout,
      /Top artists of sample \(latest snapshot\): Vetusta Morla, Extremoduro/,
    );
    assert.match(first.stdout, /Top artists of sample_2 \(latest snapshot\): Porcupine Tree/);
    // the samples of both users, counted here from the files themselves (data/README.md)
    const sample = (user: string, name: string) =>
      JSON.parse(
        Deno.readTextFileSync(
          join(PROJECT_ROOT, "data", ...(user === "sample" ? [] : [user]), name),
        ),
      ) as { items: { played_at?: string; track?: { id: string; duration_ms: number } }[] };
    const db = join(dir, "warehouse.duckdb");
    const perUser = async (table: string) =>
      Object.fromEntries(
        (await query(db, `SELECT user_id, count(*)::INTEGER AS n FROM ${table} GROUP BY 1`))
          .map((r) => [String(r.user_id), Number(r.n)]),
      );
    const users = ["sample", "sample_2"];
    const expect = (f: (user: string) => number) => Object.fromEntries(users.map((u) => [u, f(u)]));
    const plays = (u: string) => sample(u, "sample_recently_played.json").items;
    const days = (u: string) => new Set(plays(u).map((p) => p.played_at!.slice(0, 10))).size;
    assert.deepEqual(
      await perUser("raw.top_tracks"),
      expect((u) => sample(u, "sample_top_tracks_short_term.json").items.length),
    );
    assert.deepEqual(await perUser("main.top_tracks"), await perUser("raw.top_tracks"));
    assert.deepEqual(await perUser("raw.recently_played"), expect((u) => plays(u).length));
    assert.deepEqual(await perUser("main.plays"), { sample: 30, sample_2: 17 });
    assert.deepEqual(await perUser("main.plays"), expect((u) => plays(u).length));
    assert.deepEqual(await perUser("main.daily_listening"), expect(days));
    assert.deepEqual(
      await perUser("raw.top_artists"),
      expect((u) => sample(u, "sample_top_artists_short_term.json").items.length),
    );
    assert.deepEqual(await perUser("main.top_artists"), { sample: 15, sample_2: 5 });
    // the 11 plays the two users share (same track, same played_at) stay one row each
    const shared = plays("sample").filter((a) =>
      plays("sample_2").some((b) => b.played_at === a.played_at && b.track!.id === a.track!.id)
    );
    assert.equal(shared.length, 11);
    const [both] = await query(
      db,
      `SELECT count(*)::INTEGER AS n FROM main.plays a JOIN main.plays b
         ON a.played_at = b.played_at AND a.track_id = b.track_id
        AND a.user_id = 'sample' AND b.user_id = 'sample_2'`,
    );
    assert.equal(both?.n, shared.length);
    for (const t of tables) assert.ok(after1[t]! > 0, `${t} is empty`);
    const minutes = await query(
      db,
      "SELECT user_id, cast(play_date AS VARCHAR) AS d, minutes FROM main.daily_listening ORDER BY 1, 2",
    );
    assert.equal(minutes.length, days("sample") + days("sample_2"));
    for (const row of minutes) {
      const ms = plays(String(row.user_id)).filter((p) => p.played_at!.startsWith(String(row.d)))
        .reduce((n, p) => n + p.track!.duration_ms, 0);
      assert.equal(Number(row.minutes), Math.round(ms / 600) / 100, `${row.user_id} ${row.d}`);
    }

    const second = await runTask("pipeline.ts", [], env, dir);
    assert.equal(second.code, 0, second.stderr.slice(-2000));
    assert.deepEqual(await counts(), after1);

    for (let i = 0; i < 5; i++) {
      const polled = await runTask("poll.ts", [], env, dir);
      assert.equal(polled.code, 0, polled.stderr.slice(-2000));
    }
    const [p] = await query(
      join(dir, "warehouse.duckdb"),
      `SELECT count(*)::INTEGER AS n, count(DISTINCT (user_id, played_at, track_id))::INTEGER AS d
       FROM raw.recently_played`,
    );
    assert.deepEqual([p?.n, p?.d], [47, 47]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("played_at without milliseconds from the API: the cursor and the key are the same play either way", async () => {
  const plays = makePlays(makeTrackItems(3), {
    startMs: DAY0 + 60_000,
    everyMs: 5 * MINUTE,
    count: 20,
  });
  await using e = await setup({ plays });
  let now = DAY0 + 30 * MINUTE;
  e.mock.state.now = () => now;
  e.mock.state.playedAtWithoutMs = true;
  await poll(e.config);
  e.mock.state.playedAtWithoutMs = false;
  // the state lost: the next poll's window overlaps the first, with milliseconds this time
  await Deno.remove(statePath(e.config, "recently_played"));
  now += 30 * MINUTE;
  await poll(e.config);
  assert.deepEqual(await playCounts(e.config), { rows: 12, distinct: 12 });
  assert.equal(e.mock.requestsTo(RECENT).at(-1)!.query.after, String(plays[5]!.playedAt));
});

Deno.test("--streams picks a new run's streams (a bad name is exit 2 naming the flag); PIPELINE_STREAMS sets the default", async () => {
  const dir = await Deno.makeTempDir({ prefix: "streams_flag_" });
  const env = { PIPELINE_DATA_DIR: dir, SPOTIFY_SOURCE: "sample" };
  try {
    const bad = await runTask("pipeline.ts", ["--streams", "top_tracks,plays"], env, dir);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /--streams \\"top_tracks,plays\\": unknown stream\(s\) plays; expected/,
    );

    const only = await runTask(
      "pipeline.ts",
      ["--streams", "top_artists", "--to", "load"],
      env,
      dir,
    );
    assert.equal(only.code, 0, only.stderr);
    const [id] = await listRunIds(loadConfig({ env, envFile: false }));
    const run = await openRun(loadConfig({ env, envFile: false }), { runId: id });
    assert.deepEqual(run.streams, ["top_artists"]);
    const db = join(dir, "warehouse.duckdb");
    const n = async (t: string) =>
      Number((await query(db, `SELECT count(*) AS n FROM ${t}`))[0]!.n);
    assert.deepEqual(
      [await n("raw.top_tracks"), await n("raw.recently_played"), await n("raw.top_artists")],
      [0, 0, 15 + 5],
    );

    const fetched = await runTask(
      "fetch.ts",
      [],
      { ...env, PIPELINE_STREAMS: "recently_played" },
      dir,
    );
    assert.equal(fetched.code, 0, fetched.stderr);
    const latest = await openRun(loadConfig({ env, envFile: false }));
    assert.deepEqual(latest.streams, ["recently_played"]);
    const poll = await runTask("poll.ts", [], { ...env, PIPELINE_STREAMS: "top_tracks" }, dir);
    assert.equal(poll.code, 2, "a poll with no poll stream selected is a config error");
    assert.match(poll.stderr, /No stream to run: the poll schedule runs recently_played/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("poll --resume continues the latest unfinished poll, pipeline --resume the latest daily run", async () => {
  await using e = await setup();
  const { log } = testLog();
  const pollRun = (await runPipeline(e.config, { log, schedule: "poll", to: "write" })).run;
  const dailyRun = (await runPipeline(e.config, { log, to: "fetch" })).run;
  assert.deepEqual([pollRun.manifest.status, dailyRun.manifest.status], ["partial", "partial"]);

  const polled = await runPipeline(e.config, { log, schedule: "poll", resume: true });
  assert.equal(polled.run.id, pollRun.id);
  assert.deepEqual(polled.skipped, ["fetch", "enrich", "write"]);
  assert.deepEqual(polled.ran, ["upload", "load"]);
  assert.equal(polled.run.manifest.status, "succeeded");

  const daily = await runPipeline(e.config, { log, resume: true, to: "load" });
  assert.equal(daily.run.id, dailyRun.id);
  assert.deepEqual(daily.skipped, ["fetch"]);
});

Deno.test("names with terminal escapes, CR/LF, NUL or bidi controls are printed escaped in the summary", async () => {
  const [track] = makeTrackItems(1);
  const evil = "Evil\x1b[2J\rName\nNext\u0000\u202eevil";
  await using e = await setup({
    topTracks: [{ ...track, name: evil, artists: [{ id: "a1", name: `Artist\x1b[31m` }] }],
    plays: [],
    topArtists: [],
  });
  const out = await runTask("pipeline.ts", ["--to", "enrich"], {
    ...e.env,
    PIPELINE_STREAMS: "top_tracks",
  }, e.dir);
  assert.equal(out.code, 0, out.stderr);
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x08\x0b-\x1f\u202e]/.test(out.stdout), JSON.stringify(out.stdout));
  assert.ok(
    out.stdout.includes(String.raw`Evil\u001b[2J\u000dName\u000aNext\u0000\u202eevil`),
    out.stdout,
  );
});
