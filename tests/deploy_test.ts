/**
 * The Deno Deploy entry (`scripts/deploy.ts`) run with Deploy-like permissions — no file writes,
 * no subprocesses, no native addons (`--deny-write --deny-run --deny-ffi`) — against the mock
 * Spotify, moto (S3) and fakesnow (Snowflake, behind the test-only adapter): fetch → enrich →
 * write → upload → load completes, and a second run of the day loads nothing new. Plus the cron
 * registration and the Deno KV token store (rotated refresh tokens are kept).
 */

import { loadConfig } from "../lib/config.ts";
import { ConfigError, LockedError } from "../lib/errors.ts";
import { acquireKvLease, LEASE_KEY } from "../lib/deploy/lease.ts";
import { DEPLOY_DENO_VERSION, type DeployRunSummary, runOnDeploy } from "../lib/deploy/pipeline.ts";
import {
  type KvLike,
  kvTokenSource,
  openDeploySpotifyClient,
  openKv,
  parseTokensJson,
  TOKENS_KEY,
  userTokenSettings,
} from "../lib/deploy/tokens.ts";
import type { StoredTokens } from "../lib/spotify/token_store.ts";
import { openSnowflakeSession } from "../lib/warehouse/snowflake_session.ts";
import { runSnowflakeSetup } from "../lib/warehouse/snowflake_setup.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  testLog,
} from "./_spotify_test_util.ts";
import { featuresForTopTracks, type MockSpotify, startMockSpotify } from "./mock_spotify.ts";
import {
  denoBinary,
  freePort,
  prodEnv,
  PROJECT_ROOT,
  startProdStandIns,
  TEST_AWS_ENV,
  withAwsEnv,
} from "./stand_ins.ts";

const BUCKET = "spotify-deploy-lake";
const AWS_ENV = TEST_AWS_ENV;

/** A token store for tokens minted on the mock (a user's), with an access token that has expired. */
function tokensJson(mock: MockSpotify, userId?: string): string {
  const t = mock.issueTokens({ userId });
  const tokens: StoredTokens = {
    version: 1,
    client_id: mock.state.clientId,
    access_token: t.access_token,
    token_type: "Bearer",
    scope: t.scope,
    expires_at: new Date(Date.now() - 60_000).toISOString(),
    refresh_token: t.refresh_token,
    consented_at: new Date().toISOString(),
    refreshed_at: null,
    user: { ...(mock.state.others.get(userId ?? "")?.user ?? mock.state.user) },
  };
  return JSON.stringify(tokens);
}

/** A Deno to run the entry with: this one, and the version Deno Deploy documents. */
interface Runtime {
  label: string;
  command: string[];
}

const RUNTIMES: Runtime[] = [
  { label: `Deno ${Deno.version.deno}`, command: [Deno.execPath()] },
  ...(Deno.version.deno === DEPLOY_DENO_VERSION ? [] : [{
    label: `Deno ${DEPLOY_DENO_VERSION} (Deploy's)`,
    command: [await denoBinary(DEPLOY_DENO_VERSION)],
  }]),
];

/** Arguments that run the entry as the platform does (`--allow-all`), `Deno.cron` recorded. */
function entryArgs(args: string[]): string[] {
  return [
    "run",
    "--allow-all",
    "--unstable-kv",
    "--unstable-cron",
    "--preload",
    `${PROJECT_ROOT}/tests/_record_cron.ts`,
    "--config",
    `${PROJECT_ROOT}/deno.json`,
    `${PROJECT_ROOT}/scripts/deploy.ts`,
    ...args,
  ];
}

function entryEnv(env: Record<string, string>): Record<string, string> {
  return {
    HOME: Deno.env.get("HOME") ?? "/tmp",
    PATH: Deno.env.get("PATH") ?? "",
    NO_COLOR: "1",
    // an older Deno reads the system's CA store only when told (npm downloads through a proxy)
    DENO_TLS_CA_STORE: "system",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    ...AWS_ENV,
    ...env,
  };
}

/** Runs `scripts/deploy.ts <args>` to its end (`--once`, `--help`). */
async function runDeployEntry(
  env: Record<string, string>,
  cwd: string,
  args: string[],
  runtime: Runtime = RUNTIMES[0]!,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...pre] = runtime.command;
  const out = await new Deno.Command(cmd!, {
    args: [...pre, ...entryArgs(args)],
    cwd,
    clearEnv: true,
    env: entryEnv(env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** The entry serving, as the platform starts it; stop it with `stop()` (SIGTERM). */
interface RunningEntry {
  url: string;
  /** Every stderr line so far. */
  lines(): string[];
  /** The JSON records among them. */
  records(): Record<string, unknown>[];
  stop(): Promise<number>;
}

/** Starts the entry on a free port and waits, as Deploy does, for its HTTP server. */
async function startDeployEntry(
  env: Record<string, string>,
  cwd: string,
  runtime: Runtime,
  deadlineMs = 90_000,
): Promise<RunningEntry> {
  const port = freePort();
  const [cmd, ...pre] = runtime.command;
  const child = new Deno.Command(cmd!, {
    args: [...pre, ...entryArgs([])],
    cwd,
    clearEnv: true,
    env: entryEnv({ ...env, PORT: String(port) }),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    }
    if (rest) lines.push(rest);
  })();
  const url = `http://127.0.0.1:${port}`;
  const entry: RunningEntry = {
    url,
    lines: () => [...lines],
    records: () =>
      lines.filter((l) => l.startsWith("{")).map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return {};
        }
      }),
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const status = await child.status;
      await reading;
      return status.code;
    },
  };
  let exited = false;
  child.status.then(() => (exited = true));
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`);
      await r.body?.cancel();
      if (r.status === 200) return entry;
    } catch { /* not listening yet */ }
    if (exited || Date.now() > until) {
      const code = await entry.stop();
      throw new Error(
        `/healthz did not answer within ${deadlineMs} ms (${
          exited ? `exited ${code}` : "killed"
        }):\n${lines.join("\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A call to the running entry, JSON in and out. */
async function call(
  entry: RunningEntry,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(entry.url + path, init);
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body };
}

const TRIGGER_TOKEN = "deploy-test-trigger-token-0123456789";
const AUTH = { authorization: `Bearer ${TRIGGER_TOKEN}` };

for (const runtime of RUNTIMES) {
  Deno.test({
    name:
      `[${runtime.label}] the Deploy app as the platform runs it: crons registered before it serves, /healthz in time, 401 without the token, one run across two instances (KV lease), runs in KV, rows in Snowflake once`,
    async fn() {
      await using w = await startProdStandIns({ bucket: BUCKET, dataDirPrefix: "deploy_test_" });
      const { dataDir, pair } = w;
      const mock = startMockSpotify({ audioFeatures: featuresForTopTracks() });
      // a second person of the household, with the same recorded lists and plays
      mock.addUser({ id: "alice_spotify", display_name: "Alice" });
      const entries: RunningEntry[] = [];
      try {
        const base = await w.env();
        // One-time setup, as `deno task load --setup --apply` does it (not part of a Deploy run).
        const setupConfig = loadConfig({ env: base, envFile: false });
        await withAwsEnv(
          {},
          () =>
            runSnowflakeSetup(setupConfig, { apply: true, log: testLog().log, write: () => {} }),
        );
        // On Deploy: no token file, no key file — both come from secrets (env); one KV database
        // for every instance (here a file both processes open).
        const deployEnv: Record<string, string> = {
          ...base,
          PIPELINE_LOG_LEVEL: "info",
          PIPELINE_LOG_FORMAT: "json",
          PIPELINE_TRIGGER_TOKEN: TRIGGER_TOKEN,
          SPOTIFY_TOKENS_FILE: "/nonexistent/spotify_tokens.json",
          SPOTIFY_API_URL: mock.url,
          SPOTIFY_ACCOUNTS_URL: mock.url,
          SPOTIFY_CLIENT_ID: mock.state.clientId,
          FEATURES_PROVIDERS: "spotify,csv",
          SNOWFLAKE_PRIVATE_KEY_PATH: "",
          SNOWFLAKE_PRIVATE_KEY: pair.privateKeyPem,
          PIPELINE_DATA_DIR: "/nonexistent/data",
          PIPELINE_KV_PATH: `${dataDir}/kv.sqlite3`,
          SPOTIFY_TOKENS_JSON: tokensJson(mock),
          SPOTIFY_TOKENS_JSON_ALICE: tokensJson(mock, "alice_spotify"),
        };
        const a = await startDeployEntry(deployEnv, dataDir, runtime);
        entries.push(a);

        // 1. The crons were registered while the module loaded, before the server listened.
        const lines = a.lines();
        const listening = lines.findIndex((l) => l.includes("Listening on"));
        const crons = lines.flatMap((l, i) =>
          l.startsWith('{"cron_registered"') ? [{ i, ...JSON.parse(l).cron_registered }] : []
        );
        assertEquals(crons.map((c) => [c.name, c.schedule]), [
          ["top-tracks", "0 0 * * *"],
          ["recently-played", "*/30 * * * *"],
        ]);
        assert(listening > 0 && crons.every((c) => c.i < listening), lines.join("\n"));

        // 2. Public app: every endpoint but /healthz needs the token.
        for (const [method, path] of [["POST", "/run-top-tracks"], ["GET", "/runs"]] as const) {
          assertEquals((await call(a, path, { method })).status, 401, `${method} ${path}`);
        }
        assertEquals((await call(a, "/healthz")).body, { ok: true });

        // 3. A second instance on the same KV: two triggers at once, one run.
        const b = await startDeployEntry(deployEnv, dataDir, runtime);
        entries.push(b);
        const trigger = (e: RunningEntry, body?: unknown) =>
          call(e, "/run-top-tracks?wait=true", {
            method: "POST",
            headers: { ...AUTH, "content-type": "application/json" },
            ...(body ? { body: JSON.stringify(body) } : {}),
          });
        const both = await Promise.all([trigger(a), trigger(b)]);
        const logs = () =>
          [a, b].map((e) => e.lines().slice(-40).join("\n")).join("\n---\n").slice(-20_000);
        assertEquals(both.map((r) => r.status).sort(), [200, 409], logs());
        const won = both.find((r) => r.status === 200)!;
        const lost = both.find((r) => r.status === 409)!;
        assertEquals(lost.body.run_id, won.body.run_id, "the 409 names the running run");
        const run = won.body.run as DeployRunSummary;
        assertEquals(run.status, "succeeded");
        // every stream, for each of the two users: 5 top tracks, the 2 recorded plays, 15 top
        // artists
        assertEquals(run.steps.fetch?.counts?.rows, 2 * 22);
        assertEquals(run.steps.enrich?.counts?.matched, 2 * 5);
        assertEquals(run.load?.rows_loaded, 2 * 22);
        // each account's part per step: 22 rows in 3 files (a list each, one day of plays)
        const perUser = {
          fetch: { rows: 22 },
          write: { rows: 22, files: 3 },
          upload: { files: 3 },
        };
        assertEquals(run.users, {
          default: {
            user_id: "mockuser",
            status: "succeeded",
            steps: { ...perUser, load: { rows: 22, files: 3 } },
          },
          alice: {
            user_id: "alice_spotify",
            status: "succeeded",
            steps: { ...perUser, load: { rows: 22, files: 3 } },
          },
        });
        assertEquals(mock.requestsTo("/api/token").length, 2, "each expired token was refreshed");
        const date = run.snapshot_date;

        // The rows are in Snowflake.
        assert(setupConfig.warehouse.kind === "snowflake");
        const session = await openSnowflakeSession(setupConfig.warehouse, { log: testLog().log });
        try {
          const rows = await session.execute(
            `SELECT COUNT(*) AS N, COUNT(DISTINCT TRACK_ID) AS T FROM SPOTIFY.RAW.TOP_TRACKS WHERE SNAPSHOT_DATE = '${date}'`,
          );
          assertEquals([Number(rows[0]?.N), Number(rows[0]?.T)], [2 * 5, 5]);
          const users = await session.execute(
            `SELECT USER_ID, COUNT(*) AS N FROM SPOTIFY.RAW.RECENTLY_PLAYED GROUP BY 1 ORDER BY 1`,
          );
          // the two users' identical plays are two rows each
          assertEquals(users.map((r) => [r.USER_ID, Number(r.N)]), [
            ["alice_spotify", 2],
            ["mockuser", 2],
          ]);
        } finally {
          await session.close();
        }

        // 4. The same day again, on the other instance, after one new play: the cursor and the
        //    tokens come from the shared KV; the two lists are unchanged (skipped), the new play
        //    is loaded once.
        mock.state.plays.push({
          track: mock.state.plays[0]!.track,
          playedAt: Date.now() - 60_000,
          context: null,
        });
        const again = await trigger(b, { date });
        assertEquals(again.status, 200, JSON.stringify(again.body));
        const second = again.body.run as DeployRunSummary;
        assertEquals(second.steps.fetch?.counts?.recently_played_rows, 1);
        assertEquals(second.load?.files_skipped, 2 * 2);
        assertEquals(second.load?.rows_loaded, 1);
        assertEquals(mock.requestsTo("/api/token").length, 2, "KV's access tokens were reused");

        // 5. Runs are read back from KV on either instance, newest first.
        const runs = await call(a, "/runs", { headers: AUTH });
        assertEquals(
          (runs.body.runs as DeployRunSummary[]).map((r) => r.run_id),
          [second.run_id, run.run_id],
        );
        const one = await call(a, `/runs/${run.run_id}`, { headers: AUTH });
        assertEquals((one.body.run as DeployRunSummary).run_id, run.run_id);
        assertEquals((await call(a, "/readyz", { headers: AUTH })).status, 200);
        // a body field the Deploy app cannot honour is refused by name
        const to = await trigger(a, { to: "load" });
        assertEquals(to.status, 400);
        assertStringIncludes(String(to.body.message), '"to"');

        for (const e of entries.splice(0)) assertEquals(await e.stop(), 0, "SIGTERM: clean exit");
        const all = [...a.lines(), ...b.lines()].join("\n");
        for (const secret of [pair.passphrase, TRIGGER_TOKEN]) assert(!all.includes(secret));
      } finally {
        for (const e of entries) await e.stop();
        await mock.close();
      }
    },
  });
}

Deno.test("the Deploy entry fails with exit 3 when Spotify refuses the refresh token, naming it; fired by the cron, the failure is rethrown", async () => {
  const mock = startMockSpotify();
  const dir = await Deno.makeTempDir({ prefix: "deploy_test_" });
  let entry: RunningEntry | undefined;
  try {
    const base = await prodEnv({ dataDir: dir, s3Endpoint: "http://127.0.0.1:9", bucket: "b" });
    mock.state.invalidGrant = true;
    const env = {
      ...base,
      PIPELINE_LOG_LEVEL: "info",
      PIPELINE_LOG_FORMAT: "json",
      SPOTIFY_TOKENS_FILE: "/nonexistent/spotify_tokens.json",
      SPOTIFY_API_URL: mock.url,
      SPOTIFY_ACCOUNTS_URL: mock.url,
      PIPELINE_KV_PATH: ":memory:",
      PIPELINE_TRIGGER_TOKEN: TRIGGER_TOKEN,
      PIPELINE_POLL_SCHEDULE: "off",
      SPOTIFY_TOKENS_JSON: tokensJson(mock),
    };
    const r = await runDeployEntry(env, dir, ["--once"]);
    assertEquals(r.code, 3, r.stderr);
    assertStringIncludes(r.stderr, "invalid_grant");
    // Fired by the cron, the failure is rethrown: Deploy's dashboard shows the run as Error.
    entry = await startDeployEntry({ ...env, TEST_CRON_FIRE: "1" }, dir, RUNTIMES[0]!);
    const until = Date.now() + 30_000;
    let fired: { name: string; ok: boolean; error?: string }[] = [];
    while (!fired.length && Date.now() < until) {
      fired = entry.records().flatMap((r) => r.cron_fired ? [r.cron_fired as typeof fired[0]] : []);
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(fired.map((f) => [f.name, f.ok]), [["top-tracks", false]]);
    assertStringIncludes(fired[0]!.error!, "SourceError");
    // the failed run is recorded in KV with its exit code
    const runs = await call(entry, "/runs", { headers: AUTH });
    const [last] = runs.body.runs as DeployRunSummary[];
    assertEquals([last?.status, last?.exit_code], ["failed", 3]);
  } finally {
    await entry?.stop();
    await mock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Deploy entry registers both crons while it loads, needing no secret; without a token only /healthz answers; bad settings never keep it from serving", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deploy_test_" });
  const entries: RunningEntry[] = [];
  try {
    const registered = (stderr: string) =>
      stderr.split("\n").filter((l) => l.startsWith('{"cron_registered"'))
        .map((l) => JSON.parse(l).cron_registered);
    const ok = await runDeployEntry({ PIPELINE_SCHEDULE: "15 5 * * *" }, dir, ["--help"]);
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(registered(ok.stderr), [
      { name: "top-tracks", schedule: "15 5 * * *" },
      { name: "recently-played", schedule: "*/30 * * * *" },
    ]);
    const noPoll = await runDeployEntry({ PIPELINE_POLL_SCHEDULE: "off" }, dir, ["--help"]);
    assertEquals(registered(noPoll.stderr), [{ name: "top-tracks", schedule: "0 0 * * *" }]);
    // A bad schedule fails the module (the deployment), naming the setting.
    const bad = await runDeployEntry({ PIPELINE_SCHEDULE: "daily" }, dir, ["--help"]);
    assert(bad.code !== 0);
    assertStringIncludes(bad.stderr, 'PIPELINE_SCHEDULE="daily" is not valid');
    assertEquals(registered(bad.stderr), []);

    // No prod settings at all and no token: it serves /healthz (the platform's check), nothing else.
    const bare = await startDeployEntry(
      { PIPELINE_PROFILE: "prod", PIPELINE_KV_PATH: ":memory:" },
      dir,
      RUNTIMES[0]!,
    );
    entries.push(bare);
    assertEquals((await call(bare, "/healthz")).status, 200);
    const closed = await call(bare, "/run-top-tracks", { method: "POST" });
    assertEquals([closed.status, closed.body.error], [503, "not_configured"]);
    assertStringIncludes(String(closed.body.message), "PIPELINE_TRIGGER_TOKEN");
    assert(bare.lines().some((l) => l.includes("PIPELINE_TRIGGER_TOKEN is not set")));

    // With the token but invalid prod settings: /readyz and the trigger name the problem.
    const broken = await startDeployEntry(
      {
        PIPELINE_PROFILE: "prod",
        PIPELINE_KV_PATH: ":memory:",
        PIPELINE_TRIGGER_TOKEN: TRIGGER_TOKEN,
      },
      dir,
      RUNTIMES[0]!,
    );
    entries.push(broken);
    const ready = await call(broken, "/readyz", { headers: AUTH });
    assertEquals(ready.status, 503);
    assertStringIncludes(JSON.stringify(ready.body), "SNOWFLAKE_ACCOUNT");
    const refused = await call(broken, "/run-top-tracks", { method: "POST", headers: AUTH });
    assertEquals(refused.status, 500);
    assertStringIncludes(String(refused.body.message), "SNOWFLAKE_ACCOUNT");
    assertEquals((await call(broken, "/runs", { headers: AUTH })).status, 503);

    // Without tokensElsewhere, prod still requires the token file (the `deno task` path).
    const env = await prodEnv({
      dataDir: dir,
      s3Endpoint: "http://127.0.0.1:9",
      bucket: "b",
      extra: { SPOTIFY_TOKENS_FILE: "/nonexistent/t.json" },
    });
    const error = await assertRejects(
      () => Promise.resolve().then(() => loadConfig({ env, envFile: false })),
      ConfigError,
    );
    assertStringIncludes(error.message, "SPOTIFY_TOKENS_FILE");
    loadConfig({ env, envFile: false, tokensElsewhere: true });
  } finally {
    for (const e of entries) await e.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the KV lease (real Deno KV): one holder; renewed while held; taken over once it expires unrenewed; released", async () => {
  const kv = await openKv(":memory:");
  try {
    const first = await acquireKvLease(kv, { runId: "20261201T000000Z-aaaa", leaseMs: 300 });
    const busy = await assertRejects(
      () => acquireKvLease(kv, { runId: "20261201T000001Z-bbbb", leaseMs: 300 }),
      LockedError,
    );
    assertEquals(busy.runId, "20261201T000000Z-aaaa");
    // three lease lengths: only the renewals keep it
    await new Promise((r) => setTimeout(r, 900));
    await assertRejects(
      () => acquireKvLease(kv, { runId: "20261201T000002Z-cccc", leaseMs: 300 }),
      LockedError,
    );
    assert(!first.lost);
    await first.release();
    const second = await acquireKvLease(kv, { runId: "20261201T000003Z-dddd", leaseMs: 300 });
    // a holder that vanished (no renewals): expired, taken over, and the old holder sees it lost
    const clock = { now: new Date(Date.now() + 10_000) };
    const third = await acquireKvLease(kv, {
      runId: "20261201T000004Z-eeee",
      leaseMs: 300,
      now: () => clock.now,
    });
    await new Promise((r) => setTimeout(r, 250));
    assert(second.lost, "the old holder noticed it lost the lease");
    await second.release(); // leaves the new holder's lease alone
    const held = (await kv.get<{ run_id: string }>(LEASE_KEY)).value;
    assertEquals(held?.run_id, "20261201T000004Z-eeee");
    await third.release();
    assertEquals((await kv.get(LEASE_KEY)).value, null);
  } finally {
    kv.close();
  }
});

Deno.test(`the Deploy entry and its modules type-check under Deno ${DEPLOY_DENO_VERSION}, the version Deno Deploy documents`, async () => {
  const out = await new Deno.Command(await denoBinary(DEPLOY_DENO_VERSION), {
    args: ["check", `${PROJECT_ROOT}/scripts/deploy.ts`],
    cwd: PROJECT_ROOT,
    env: { DENO_TLS_CA_STORE: "system", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
});

Deno.test("runOnDeploy() refuses the local profile: Deploy has no file system for it", async () => {
  const config = loadConfig({ env: { SPOTIFY_SOURCE: "sample" }, envFile: false });
  const { log } = testLog();
  const tokens = kvTokenSource(mapKv());
  const error = await assertRejects(() => runOnDeploy(config, { log, tokens }), ConfigError);
  assertStringIncludes(error.message, "PIPELINE_PROFILE=prod");
});

/** A Map-backed stand-in for Deno KV's get/set/list (real KV runs in the entry test above). */
function mapKv(): KvLike & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>();
  return {
    data,
    get<T>(key: readonly unknown[]) {
      return Promise.resolve({ value: (data.get(JSON.stringify(key)) ?? null) as T | null });
    },
    set(key: readonly unknown[], value: unknown) {
      data.set(JSON.stringify(key), structuredClone(value));
      return Promise.resolve({ ok: true });
    },
    async *list<T>() {
      for (const [k, v] of data) yield { key: JSON.parse(k), value: v as T };
    },
    close() {},
  };
}

Deno.test("Deno KV token store: seeded from SPOTIFY_TOKENS_JSON, rotated refresh tokens saved back and used next time", async () => {
  const mock = startMockSpotify();
  try {
    const config = loadConfig({
      env: {
        PIPELINE_PROFILE: "local",
        SPOTIFY_SOURCE: "api",
        SPOTIFY_API_URL: mock.url,
        SPOTIFY_ACCOUNTS_URL: mock.url,
        SPOTIFY_CLIENT_ID: mock.state.clientId,
      },
      envFile: false,
    });
    const kv = mapKv();
    const seed = parseTokensJson(tokensJson(mock), "SPOTIFY_TOKENS_JSON");
    const { log, lines } = testLog();
    const first = await openDeploySpotifyClient(config, kvTokenSource(kv, { seed }), { log });
    const saved = (await kv.get<StoredTokens>(TOKENS_KEY)).value!;
    assert(saved.refresh_token !== seed.refresh_token, "the mock rotates refresh tokens");
    assertEquals(first.tokens.refresh_token, saved.refresh_token);
    assert(!first.expired);
    // Next run: the seed is the same (older consent than nothing newer) → KV's tokens win.
    const expiredAgain = { ...saved, expires_at: new Date(Date.now() - 1000).toISOString() };
    await kv.set(TOKENS_KEY, expiredAgain);
    const second = await openDeploySpotifyClient(
      config,
      kvTokenSource(kv, { seed: { ...seed, consented_at: "2020-01-01T00:00:00.000Z" } }),
      { log },
    );
    assert(!second.expired);
    assertEquals(mock.requestsTo("/api/token").length, 2);
    const me = (await second.getJson("/v1/me")) as { id: string };
    assertEquals(me.id, mock.state.user.id);
    for (const secret of [seed.refresh_token, saved.refresh_token]) {
      assert(!lines.join("\n").includes(secret), "no token in the log");
    }
    // Nothing in KV and no seed: a clear configuration error.
    await assertRejects(() => kvTokenSource(mapKv()).load(), ConfigError);
    assertEquals(
      (await assertRejects(
        () => Promise.resolve().then(() => parseTokensJson("{}", "SPOTIFY_TOKENS_JSON")),
        ConfigError,
      ))
        .message,
      'SPOTIFY_TOKENS_JSON is not a token store: "client_id" is missing or not a string',
    );
    // Not JSON (e.g. the refresh token pasted on its own): the error quotes none of it.
    for (
      const text of ["AQDrefreshtokenpastedalone", '{"refresh_token": AQDrefreshtokenunquoted}']
    ) {
      const error = await assertRejects(
        () => Promise.resolve().then(() => parseTokensJson(text, "SPOTIFY_TOKENS_JSON")),
        ConfigError,
      );
      assert(error.message.startsWith("SPOTIFY_TOKENS_JSON is not JSON"), error.message);
      assert(!error.message.includes("AQDrefr"), error.message);
    }
  } finally {
    await mock.close();
  }
});

Deno.test("SPOTIFY_TOKENS_JSON_<NAME> names each other account on Deploy; a bad name is refused naming the variable", () => {
  assertEquals(
    userTokenSettings({
      SPOTIFY_TOKENS_JSON: "{}",
      SPOTIFY_TOKENS_JSON_BOB: ' {"b": 1} ',
      SPOTIFY_TOKENS_JSON_ALICE_2: "{}",
      SPOTIFY_TOKENS_JSON_EMPTY: " ",
      OTHER: "x",
    }),
    [
      { account: "alice_2", variable: "SPOTIFY_TOKENS_JSON_ALICE_2", json: "{}" },
      { account: "bob", variable: "SPOTIFY_TOKENS_JSON_BOB", json: '{"b": 1}' },
    ],
  );
  for (const variable of ["SPOTIFY_TOKENS_JSON_DEFAULT", "SPOTIFY_TOKENS_JSON_A-B"]) {
    const error = (() => {
      try {
        userTokenSettings({ [variable]: "{}" });
      } catch (e) {
        return e as Error;
      }
    })();
    assert(error instanceof ConfigError, variable);
    assertStringIncludes(error.message, variable);
  }
});
