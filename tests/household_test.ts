/**
 * Household accounts against the mock Spotify server: two and three users, each with its own
 * tokens and data; one user's refresh token revoked; one user's scope missing; a shared 429
 * storm; the daily quota; a user removed between runs; a single-user data folder gaining a user.
 * Counts per user are computed here from what each mock user holds.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { query } from "./_duckdb.ts";
import { type Config, loadConfig } from "../lib/config.ts";
import { ExitCode } from "../lib/errors.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { listRunIds, openRun } from "../lib/run.ts";
import { summarize } from "../lib/server/runs.ts";
import { accountTokensFile, listAccounts, selectAccounts } from "../lib/spotify/accounts.ts";
import { freePort, runTask, testLog } from "./_spotify_test_util.ts";
import {
  ALL_SCOPES,
  makePlays,
  makeTrackItems,
  mockEnv,
  type MockPlay,
  type MockSpotify,
  recordedTopArtists,
  startMockSpotify,
  writeMockTokens,
} from "./mock_spotify.ts";

const DAY0 = Date.parse("2026-11-30T08:00:00Z");
const MINUTE = 60_000;

/** What each mock user holds (the first, `mockuser`, is the default account). */
interface Person {
  account: string;
  id: string;
  tracks: number;
  artists: number;
  plays: MockPlay[];
  scope?: string;
}

interface Household extends AsyncDisposable {
  mock: MockSpotify;
  dir: string;
  env: Record<string, string>;
  config: Config;
  people: Person[];
}

/** The plays two people listened to together: identical for both. */
const TOGETHER = makePlays(makeTrackItems(4, { prefix: "Together" }), {
  startMs: DAY0 + 2 * 60 * MINUTE,
  everyMs: 4 * MINUTE,
  count: 4,
});

function people(n: number): Person[] {
  const all: Person[] = [
    {
      account: "default",
      id: "mockuser",
      tracks: 5,
      artists: 15,
      plays: makePlays(makeTrackItems(3), { startMs: DAY0, everyMs: 5 * MINUTE, count: 6 }),
    },
    {
      account: "alice",
      id: "alice_spotify",
      tracks: 7,
      artists: 4,
      plays: [
        ...makePlays(makeTrackItems(7, { prefix: "Alice" }), {
          startMs: DAY0 + 10 * MINUTE,
          everyMs: 3 * MINUTE,
          count: 9,
        }),
        ...TOGETHER,
      ],
    },
    {
      account: "bob",
      id: "bob_spotify",
      tracks: 3,
      artists: 2,
      plays: [
        ...makePlays(makeTrackItems(3, { prefix: "Bob" }), {
          startMs: DAY0 - 26 * 60 * MINUTE, // the day before
          everyMs: 4 * MINUTE,
          count: 5,
        }),
        ...TOGETHER,
      ],
    },
  ];
  return all.slice(0, n);
}

async function household(
  n: number,
  options: { extra?: Record<string, string>; scopes?: Record<string, string> } = {},
): Promise<Household> {
  const list = people(n);
  const first = list[0]!;
  const mock = startMockSpotify({
    user: { id: first.id, display_name: "Mock User" },
    topTracks: makeTrackItems(first.tracks),
    plays: first.plays,
  });
  for (const p of list.slice(1)) {
    mock.addUser({ id: p.id, display_name: p.account }, {
      topTracks: makeTrackItems(p.tracks, { prefix: p.account }),
      topArtists: recordedTopArtists().slice(0, p.artists),
      plays: p.plays,
    });
  }
  const dir = await Deno.makeTempDir({ prefix: "household_" });
  const env = mockEnv(mock, dir, {
    HTTP_TIMEOUT_MS: "5000",
    HTTP_MAX_RETRIES: "3",
    FEATURES_PROVIDERS: "csv",
    ...options.extra,
  });
  const config = loadConfig({ env, envFile: false });
  for (const p of list) {
    p.scope = options.scopes?.[p.account] ?? ALL_SCOPES;
    await writeMockTokens(mock, accountTokensFile(config, p.account), {
      userId: p.id,
      scope: p.scope,
    });
  }
  return {
    mock,
    dir,
    env,
    config: loadConfig({ env, envFile: false }),
    people: list,
    async [Symbol.asyncDispose]() {
      await mock.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `deno task pipeline <args>` in the household's folder; it must exit 0. */
async function pipeline(h: Household, args: string[]): ReturnType<typeof runTask> {
  const out = await runTask("pipeline.ts", args, h.env, h.dir);
  assert.equal(out.code, 0, out.stderr.slice(-3000));
  return out;
}

/** Rows per user id of a table. */
async function perUser(config: Config, table: string): Promise<Record<string, number>> {
  assert.ok(config.warehouse.kind === "duckdb");
  const rows = await query(
    config.warehouse.path,
    `SELECT user_id, count(*)::INTEGER AS n FROM ${table} GROUP BY 1 ORDER BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [String(r.user_id), Number(r.n)]));
}

function byId(list: Person[], f: (p: Person) => number): Record<string, number> {
  return Object.fromEntries(
    list.map((p) => [p.id, f(p)] as const).filter(([, n]) => n > 0).sort(([a], [b]) =>
      a < b ? -1 : 1
    ),
  );
}

Deno.test("three users: every model holds each user's own rows, counted from what each user has; shared plays stay one row per user", async () => {
  await using h = await household(3);
  const out = await pipeline(h, []);
  assert.match(out.stdout, /Users:\n {2}default +succeeded mockuser +fetch 26 rows/);
  assert.match(out.stdout, /\n {2}alice +succeeded alice_spotify +fetch 24 rows/);
  assert.match(out.stdout, /\n {2}bob +succeeded bob_spotify +fetch 14 rows/);

  const { people: list, config } = h;
  const days = (p: Person) =>
    new Set(p.plays.map((x) => new Date(x.playedAt).toISOString().slice(0, 10))).size;
  assert.deepEqual(await perUser(config, "raw.top_tracks"), byId(list, (p) => p.tracks));
  assert.deepEqual(await perUser(config, "main.top_tracks"), byId(list, (p) => p.tracks));
  assert.deepEqual(await perUser(config, "raw.top_artists"), byId(list, (p) => p.artists));
  assert.deepEqual(await perUser(config, "main.top_artists"), byId(list, (p) => p.artists));
  assert.deepEqual(await perUser(config, "raw.recently_played"), byId(list, (p) => p.plays.length));
  assert.deepEqual(await perUser(config, "main.plays"), byId(list, (p) => p.plays.length));
  assert.deepEqual(await perUser(config, "main.daily_listening"), byId(list, days));
  // one week of top tracks (short_term) per user
  assert.deepEqual(
    await perUser(config, "main.inter_top_weekly_audio_features"),
    byId(list, () => 1),
  );
  // alice and bob listened to TOGETHER side by side: each keeps those 4 plays
  assert.ok(config.warehouse.kind === "duckdb");
  const [both] = await query(
    config.warehouse.path,
    `SELECT count(*)::INTEGER AS n FROM main.plays a JOIN main.plays b
       ON a.played_at = b.played_at AND a.track_id = b.track_id
      WHERE a.user_id = 'alice_spotify' AND b.user_id = 'bob_spotify'`,
  );
  assert.equal(both?.n, TOGETHER.length);
  // one lake file of top tracks per user and day
  const keys = [...Deno.readDirSync(join(h.dir, "lake", "top_tracks"))].map((e) => e.name).sort();
  assert.deepEqual(keys, ["user_id=alice_spotify", "user_id=bob_spotify", "user_id=mockuser"]);

  // the manifest and /runs: each account's outcome per step
  const run = await openRun(config);
  assert.equal(run.manifest.status, "succeeded");
  const users = summarize(run.manifest, undefined).users;
  assert.deepEqual(Object.keys(users), ["default", "alice", "bob"]);
  assert.deepEqual(users.bob?.steps.fetch, { status: "succeeded", rows: 14 });
  assert.deepEqual(users.bob?.steps.load, { status: "succeeded", files: 4, rows: 14 });
  assert.equal(users.alice?.steps.transform?.status, "succeeded");

  // --user: a new run for one account only
  await pipeline(h, ["--user", "alice", "--to", "fetch"]);
  const only = await openRun(config);
  assert.deepEqual(only.manifest.accounts, ["alice"]);
  assert.deepEqual(Object.keys(only.manifest.users ?? {}), ["alice"]);
  const unknown = await runTask("pipeline.ts", ["--user", "carol"], h.env, h.dir);
  assert.equal(unknown.code, ExitCode.config);
  assert.match(unknown.stderr, /--user carol: no such account \(accounts: default, alice, bob\)/);
});

Deno.test("a revoked refresh token and a missing scope fail their user alone: the run is partial, exit 3, naming the user and the fix", async () => {
  await using h = await household(3, {
    scopes: { alice: "user-top-read" },
    extra: { PIPELINE_STREAMS: "top_tracks,recently_played" },
  });
  // bob's access token has expired and Spotify revoked his refresh token
  const bob = accountTokensFile(h.config, "bob");
  const stored = JSON.parse(await Deno.readTextFile(bob));
  await Deno.writeTextFile(
    bob,
    JSON.stringify({ ...stored, expires_at: new Date(Date.now() - 60_000).toISOString() }),
  );
  h.mock.state.others.get("bob_spotify")!.invalidGrant = true;

  const out = await runTask("pipeline.ts", [], h.env, h.dir);
  assert.equal(out.code, ExitCode.source, out.stderr.slice(-3000));
  assert.match(out.stdout, /— partial\n/);
  assert.match(out.stdout, /\n {2}bob +failed/);
  assert.match(out.stdout, /deno task auth --user bob/);
  assert.match(out.stdout, /\n {2}alice +partial +alice_spotify/);
  assert.match(
    out.stdout,
    /recently_played stopped: .*user-read-recently-played.*deno task auth --user alice/,
  );
  assert.match(
    out.stderr,
    /"level":"error","msg":"user bob: .*invalid_grant.*the other accounts go on/,
  );

  const { config, people: list } = h;
  // everyone else's data landed: all of default's, alice's top tracks, nothing of bob's
  assert.deepEqual(await perUser(config, "main.top_tracks"), {
    alice_spotify: 7,
    mockuser: 5,
  });
  assert.deepEqual(await perUser(config, "main.plays"), { mockuser: list[0]!.plays.length });
  const run = await openRun(config);
  assert.equal(run.manifest.status, "partial");
  assert.equal(run.exitCode, ExitCode.source);
  assert.equal(run.manifest.users?.bob?.status, "failed");
  assert.equal(run.manifest.users?.bob?.steps.load?.status, "skipped");
  assert.equal(run.manifest.users?.alice?.status, "partial");
  assert.equal(run.manifest.users?.default?.status, "succeeded");
  assert.ok(run.manifest.warnings.some((w) => w.startsWith("user bob: ")));
  // no token reached the output
  for (const p of list) {
    const t = JSON.parse(await Deno.readTextFile(accountTokensFile(config, p.account)));
    assert.ok(!out.stdout.includes(t.refresh_token) && !out.stderr.includes(t.refresh_token));
  }
});

Deno.test("a shared 429 storm: the Retry-After pauses every user's requests, at most SPOTIFY_CONCURRENCY in flight, and all data lands", async () => {
  await using h = await household(3, {
    extra: { PIPELINE_STREAMS: "top_tracks,top_artists", SPOTIFY_CONCURRENCY: "2" },
  });
  h.mock.fault("/v1/me/top/tracks", { kind: "status", status: 429, retryAfter: "1" }, 3);
  const { log } = testLog();
  const { run } = await runPipeline(h.config, { log, to: "load" });
  assert.deepEqual(run.userFailures, []);
  assert.equal(run.exitCode, 0);
  assert.deepEqual(await perUser(h.config, "raw.top_tracks"), byId(h.people, (p) => p.tracks));
  assert.deepEqual(await perUser(h.config, "raw.top_artists"), byId(h.people, (p) => p.artists));
  assert.ok(h.mock.state.maxInFlight <= 2, `max in flight ${h.mock.state.maxInFlight}`);
  const api = h.mock.requests.filter((r) => r.path.startsWith("/v1/"));
  const first429 = api.find((r) => r.status === 429)!;
  // requests already on their way when the 429 came may arrive just after it; none later
  // than that until the pause is over
  const early = api.filter((r) => r.at > first429.at + 150 && r.at < first429.at + 900);
  assert.deepEqual(early.map((r) => `${r.path} ${r.user}`), []);
  assert.ok(new Set(api.map((r) => r.user)).size === 3, "every user asked Spotify");
});

Deno.test("Spotify's daily quota stops every user for the run", async () => {
  await using h = await household(3, {
    extra: { PIPELINE_STREAMS: "top_tracks,top_artists", SPOTIFY_CONCURRENCY: "1" },
  });
  h.mock.fault("/v1/me/top/tracks", {
    kind: "status",
    status: 429,
    body: { error: { status: 429, message: "QUOTA_EXCEEDED: the app's daily quota is used up" } },
  });
  const out = await runTask("pipeline.ts", ["--to", "load"], h.env, h.dir);
  assert.equal(out.code, ExitCode.source, out.stderr.slice(-2000));
  const api = h.mock.requests.filter((r) => r.path.startsWith("/v1/"));
  const quota = api.findIndex((r) => r.status === 429);
  assert.deepEqual(api.slice(quota + 1).map((r) => r.path), [], "no request after the quota");
  // every account stopped: the run failed, and its manifest says so for each
  const run = await openRun(h.config);
  assert.equal(run.manifest.status, "failed");
  assert.deepEqual(
    Object.entries(run.manifest.users ?? {}).map(([name, u]) => [name, u.status, u.exit_code]),
    [["default", "failed", 3], ["alice", "failed", 3], ["bob", "failed", 3]],
  );
});

Deno.test("a user removed between runs: the next run covers the others, the removed user's data stays", async () => {
  await using h = await household(3, { extra: { PIPELINE_STREAMS: "top_tracks" } });
  await pipeline(h, ["--to", "load"]);

  const removed = await runTask("auth.ts", ["--remove", "bob"], h.env, h.dir);
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /Removed account bob \(Spotify user bob_spotify\)/);
  assert.deepEqual((await listAccounts(h.config)).map((a) => a.name), ["default", "alice"]);
  const again = await runTask("auth.ts", ["--remove", "bob"], h.env, h.dir);
  assert.equal(again.code, ExitCode.config);
  assert.match(again.stderr, /--remove bob: no such account \(accounts: default, alice\)/);

  const before = h.mock.requests.length;
  // her privacy export imports as her (`--user` names the account)
  const exported = fromFileUrl(
    new URL(
      "../../shared/fixtures/spotify/history/efrrowini_Streaming_History_Audio_2022.json",
      import.meta.url,
    ),
  );
  const imported = await runTask("import.ts", ["--user", "alice", exported], h.env, h.dir);
  assert.equal(imported.code, 0, imported.stderr.slice(-2000));
  const historyUsers = await perUser(h.config, "raw.streaming_history");
  assert.deepEqual(Object.keys(historyUsers), ["alice_spotify"]);
  assert.ok(historyUsers.alice_spotify! > 0);

  await pipeline(h, ["--to", "load", "--date", "2026-11-29"]);
  assert.ok(h.mock.requests.slice(before).every((r) => r.user !== "bob_spotify"));
  const run = await openRun(h.config);
  assert.deepEqual(Object.keys(run.manifest.users ?? {}), ["default", "alice"]);
  // bob's first-day rows are still there; the others have both days
  assert.deepEqual(await perUser(h.config, "raw.top_tracks"), {
    alice_spotify: 14,
    bob_spotify: 3,
    mockuser: 10,
  });
  const status = await runTask("auth.ts", ["--status"], h.env, h.dir);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /Account default\n {2}Token store: /);
  assert.match(status.stdout, /Account alice\n/);
  assert.match(status.stdout, /2 account\(s\) \(a development-mode Spotify app serves at most 5\)/);
  assert.ok(!status.stdout.includes("Account bob"));

  // alice's store damaged: --status still shows every account and exits 2; a run collects the
  // others and ends partial with alice's exit code (2: a store to replace), naming her fix
  await Deno.writeTextFile(accountTokensFile(h.config, "alice"), '{"access_token": "x"');
  const damaged = await runTask("auth.ts", ["--status"], h.env, h.dir);
  assert.equal(damaged.code, ExitCode.config, damaged.stderr);
  assert.match(damaged.stdout, /Account default\n {2}Token store: /);
  assert.match(
    damaged.stdout,
    /Account alice\n {2}PROBLEM: .*corrupt.*deno task auth --user alice/,
  );
  const partial = await runTask(
    "pipeline.ts",
    ["--to", "load", "--date", "2026-11-28"],
    h.env,
    h.dir,
  );
  assert.equal(partial.code, ExitCode.config, partial.stderr.slice(-2000));
  assert.match(partial.stdout, /\n {2}alice +failed/);
  assert.match(partial.stdout, /deno task auth --user alice/);
  assert.equal((await perUser(h.config, "raw.top_tracks")).mockuser, 15);
});

Deno.test("a single-user data folder keeps working and gains a second user with `auth --user`", async () => {
  await using h = await household(1, { extra: { PIPELINE_STREAMS: "top_tracks,recently_played" } });
  // a day collected by the single-user setup: its store is the `default` account
  const first = await pipeline(h, ["--to", "load", "--date", "2026-11-29"]);
  assert.match(first.stdout, /Fetched 5 top tracks from the Spotify API/);
  assert.doesNotMatch(first.stdout, /user default:|Users:/, "one user: no per-user noise");
  assert.deepEqual((await selectAccounts(h.config)).map((a) => a.name), ["default"]);
  // a fetch output written before household accounts (one `user_id`) still resumes
  const old = await openRun(h.config);
  const tracks = JSON.parse(await Deno.readTextFile(old.path("fetch", "tracks.json")));
  const { users, ...rest } = tracks;
  await Deno.writeTextFile(
    old.path("fetch", "tracks.json"),
    JSON.stringify({ ...rest, user_id: users[0] }),
  );
  await pipeline(h, ["--run", old.id, "--from", "enrich", "--to", "load"]);

  // a second person joins: authorized through the browser flow as "alice"
  const alice = { id: "alice_spotify", display_name: "Alice" };
  h.mock.addUser(alice, { topTracks: makeTrackItems(7, { prefix: "alice" }), plays: [] });
  h.mock.state.loginAs = alice.id;
  const { authorizeAccount } = await import("../lib/spotify/account_admin.ts");
  const { followAuthorize } = await import("./mock_spotify.ts");
  const config = loadConfig({
    env: { ...h.env, SPOTIFY_REDIRECT_PORT: String(freePort()) },
    envFile: false,
  });
  const { log } = testLog();
  /** `auth --user <name>` as a person does it: the printed URL opened in "the browser". */
  const authorizeAs = (name: string) => {
    const urls: string[] = [];
    const result = authorizeAccount(config, name, {
      log,
      openBrowser: false,
      onAuthorizeUrl: (u) => {
        urls.push(u);
        followAuthorize(u).then((r) => r.body?.cancel());
      },
    });
    return { result, urls };
  };
  const alice_ = authorizeAs("alice");
  const result = await alice_.result;
  assert.match(alice_.urls[0]!, /show_dialog=true/, "Spotify shows its page so one can switch");
  assert.equal(result.tokens.user?.id, "alice_spotify");
  assert.equal(result.file, join(h.dir, "spotify_users", "alice.json"));
  assert.equal((await Deno.stat(result.file)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(join(h.dir, "spotify_users"))).mode! & 0o777, 0o700);
  // the same Spotify user a second time is refused, and leaves nothing behind
  h.mock.state.loginAs = "mockuser";
  await assert.rejects(
    () => authorizeAs("again").result,
    /Spotify user mockuser is already the account default/,
  );
  assert.deepEqual((await listAccounts(h.config)).map((a) => a.name), ["default", "alice"]);

  await pipeline(h, ["--to", "load", "--date", "2026-11-30"]);
  assert.deepEqual(await perUser(h.config, "raw.top_tracks"), {
    alice_spotify: 7,
    mockuser: 5 + 5, // the resumed run rewrote the same file: loaded once
  });
  assert.deepEqual((await listRunIds(h.config)).length, 2);
});
