/**
 * The Deno Deploy entry (`scripts/deploy.ts`) run with Deploy-like permissions — no file writes,
 * no subprocesses, no native addons (`--deny-write --deny-run --deny-ffi`) — against the mock
 * Spotify, moto (S3) and fakesnow (Snowflake, behind the test-only adapter): fetch → enrich →
 * write → upload → load completes, and a second run of the day loads nothing new. Plus the cron
 * registration and the Deno KV token store (rotated refresh tokens are kept).
 */

import { loadConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { cursorKey, type DeployRunSummary, runOnDeploy } from "../lib/deploy/pipeline.ts";
import {
  type KvLike,
  kvTokenSource,
  openDeploySpotifyClient,
  parseTokensJson,
  TOKENS_KEY,
} from "../lib/deploy/tokens.ts";
import type { StoredTokens } from "../lib/spotify/token_store.ts";
import { openSnowflakeSession } from "../lib/warehouse/snowflake.ts";
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
  createBucket,
  generateKeyPair,
  prodEnv,
  PROJECT_ROOT,
  type StandIn,
  startFakesnow,
  startMoto,
  TEST_AWS_ENV,
  withAwsEnv,
} from "./stand_ins.ts";

const BUCKET = "spotify-deploy-lake";
const AWS_ENV = TEST_AWS_ENV;

/** A token store for tokens minted on the mock, with an access token that has expired. */
function tokensJson(mock: MockSpotify): string {
  const t = mock.issueTokens();
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
    user: { ...mock.state.user },
  };
  return JSON.stringify(tokens);
}

/**
 * Runs `scripts/deploy.ts <args>` as Deno Deploy would allow — no writes, no subprocess, no FFI —
 * with `Deno.cron` replaced by a recorder (registrations printed on stderr, nothing scheduled).
 */
async function runDeployEntry(
  env: Record<string, string>,
  cwd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      "--deny-write",
      "--deny-run",
      "--deny-ffi",
      "--unstable-kv",
      "--preload",
      `${PROJECT_ROOT}/tests/_record_cron.ts`,
      "--config",
      `${PROJECT_ROOT}/deno.json`,
      `${PROJECT_ROOT}/scripts/deploy.ts`,
      ...args,
    ],
    cwd,
    clearEnv: true,
    env: {
      HOME: Deno.env.get("HOME") ?? "/tmp",
      PATH: Deno.env.get("PATH") ?? "",
      NO_COLOR: "1",
      ...AWS_ENV,
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test({
  name:
    "the Deploy entry completes fetch → enrich → write → upload → load under --deny-write --deny-run --deny-ffi",
  async fn() {
    const moto = await startMoto();
    const pair = await generateKeyPair();
    const dataDir = await Deno.makeTempDir({ prefix: "deploy_test_" });
    const mock = startMockSpotify({ audioFeatures: featuresForTopTracks() });
    let fakesnow: StandIn | undefined;
    try {
      await createBucket(moto, BUCKET);
      fakesnow = await startFakesnow({
        s3Endpoint: moto.url,
        accounts: ["TESTACCT"],
        publicKeys: { PIPELINE_USER: pair.publicKeyPem },
      });
      const keyPath = `${dataDir}/rsa_key.p8`;
      await Deno.writeTextFile(keyPath, pair.privateKeyPem, { mode: 0o600 });
      const base = await prodEnv({
        dataDir,
        s3Endpoint: moto.url,
        bucket: BUCKET,
        snowflake: fakesnow,
        privateKeyPath: keyPath,
        passphrase: pair.passphrase,
        extra: {
          S3_PREFIX: "lake",
          SNOWFLAKE_AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/snowflake-spotify-reader",
        },
      });
      // One-time setup, as `deno task load --setup --apply` does it (not part of a Deploy run).
      const setupConfig = loadConfig({ env: base, envFile: false });
      await withAwsEnv(
        {},
        () => runSnowflakeSetup(setupConfig, { apply: true, log: testLog().log, write: () => {} }),
      );

      // On Deploy: no token file, no key file — both come from secrets (env).
      const deployEnv: Record<string, string> = {
        ...base,
        PIPELINE_LOG_LEVEL: "info",
        PIPELINE_LOG_FORMAT: "json",
        SPOTIFY_TOKENS_FILE: "/nonexistent/spotify_tokens.json",
        SPOTIFY_API_URL: mock.url,
        SPOTIFY_ACCOUNTS_URL: mock.url,
        SPOTIFY_CLIENT_ID: mock.state.clientId,
        FEATURES_PROVIDERS: "spotify,csv",
        SNOWFLAKE_PRIVATE_KEY_PATH: "",
        SNOWFLAKE_PRIVATE_KEY: pair.privateKeyPem,
        PIPELINE_DATA_DIR: "/nonexistent/data",
        PIPELINE_KV_PATH: ":memory:",
        SPOTIFY_TOKENS_JSON: tokensJson(mock),
      };
      // 1. As Deno Deploy runs it: the module registers the cron while it loads, and the cron
      //    fires the handler (here right away, through the recording preload).
      const first = await runDeployEntry({ ...deployEnv, TEST_CRON_FIRE: "1" }, dataDir, []);
      assertEquals(first.code, 0, first.stderr);
      const records = first.stderr.split("\n").filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
      assertEquals(records.find((r) => r.cron_registered)?.cron_registered, {
        name: "top-tracks",
        schedule: "0 0 * * *",
      });
      assertEquals(records.find((r) => r.cron_fired)?.cron_fired, { name: "top-tracks", ok: true });
      const startLine = records.find((r) => /^Deploy run \S+ \(snapshot /.test(r.msg ?? ""));
      const date = /snapshot (\d{4}-\d{2}-\d{2})/.exec(startLine?.msg ?? "")?.[1];
      assert(date, first.stderr);
      const counts = (step: string) => records.find((r) => r.msg === `${step} done`);
      // every stream: 5 top tracks, the 2 recorded plays, 15 top artists
      assertEquals(counts("fetch")?.rows, 22);
      assertEquals(
        [counts("fetch")?.top_tracks_rows, counts("fetch")?.recently_played_rows],
        [5, 2],
      );
      assertEquals(counts("enrich")?.matched, 5); // the top tracks, from Spotify's audio features
      assertEquals([counts("upload")?.files, counts("upload")?.skipped], [3, 0]);
      assertEquals(counts("load")?.rows_loaded, 22);
      assertEquals(mock.requestsTo("/api/token").length, 1, "the expired token was refreshed");
      assert(!first.stderr.includes(pair.passphrase));

      // The rows are in Snowflake.
      assert(setupConfig.warehouse.kind === "snowflake");
      const session = await openSnowflakeSession(setupConfig.warehouse, { log: testLog().log });
      try {
        const rows = await session.execute(
          `SELECT COUNT(*) AS N, COUNT(DISTINCT TRACK_ID) AS T FROM SPOTIFY.RAW.TOP_TRACKS WHERE SNAPSHOT_DATE = '${date}'`,
        );
        assertEquals([Number(rows[0]?.N), Number(rows[0]?.T)], [5, 5]);
      } finally {
        await session.close();
      }

      // 2. The same day again with `--once --date` (tokens re-seeded: in-memory KV lives per
      //    process): the summary says nothing new was uploaded or loaded.
      const second = await runDeployEntry(
        { ...deployEnv, SPOTIFY_TOKENS_JSON: tokensJson(mock) },
        dataDir,
        ["--once", "--date", date],
      );
      assertEquals(second.code, 0, second.stderr);
      const summary = JSON.parse(second.stdout) as DeployRunSummary;
      assertEquals(summary.status, "succeeded");
      assertEquals(summary.snapshot_date, date);
      assertEquals(Object.keys(summary.steps), ["fetch", "enrich", "write", "upload", "load"]);
      assertEquals(summary.streams, ["top_tracks", "recently_played", "top_artists"]);
      // the plays: none after the cursor (Deno KV lives per process here, so it came back from
      // the S3 keys), so no file; the two lists: the same content, skipped
      assertEquals(summary.steps.fetch?.counts?.rows, 20);
      assertEquals(summary.steps.fetch?.counts?.recently_played_rows, 0);
      assertEquals(summary.coverage, 1);
      assertEquals(summary.uploads?.map((u) => [u.stream, u.uri, u.skipped]), [
        [
          "top_tracks",
          `s3://${BUCKET}/lake/top_tracks/snapshot_date=${date}/top_tracks.parquet`,
          true,
        ],
        [
          "top_artists",
          `s3://${BUCKET}/lake/top_artists/user_id=mockuser/snapshot_date=${date}/top_artists.parquet`,
          true,
        ],
      ]);
      assertEquals(summary.load?.files_skipped, 2);
      assertEquals(summary.load?.rows_loaded, 0);

      // 3. In one process with a KV that outlives the run, as Deploy's database does: the
      //    cursor is read from KV, moves on after the load, and a new play arrives once.
      await withAwsEnv(deployEnv, async () => {
        const kv = mapKv();
        const config = loadConfig({ env: deployEnv, envFile: false, tokensElsewhere: true });
        const seed = parseTokensJson(tokensJson(mock), "SPOTIFY_TOKENS_JSON");
        const once = () =>
          runOnDeploy(config, {
            log: testLog().log,
            tokens: kvTokenSource(kv, { seed }),
            kv,
            date,
          });
        const newest = Date.now() - 60_000;
        mock.state.plays.push({
          track: mock.state.plays[0]!.track,
          playedAt: newest,
          context: null,
        });
        const a = await once();
        assertEquals(a.steps.fetch?.counts?.recently_played_rows, 1);
        assertEquals(a.load?.rows_loaded, 1);
        assertEquals(
          (await kv.get<{ value: string }>(cursorKey("recently_played", "mockuser"))).value?.value,
          new Date(newest).toISOString(),
        );
        const b = await once();
        assertEquals(b.steps.fetch?.counts?.recently_played_rows, 0);
        const last = mock.requestsTo("/v1/me/player/recently-played").at(-1)!;
        assertEquals(last.query.after, String(newest));
      });
    } finally {
      await fakesnow?.stop();
      await moto.stop();
      await mock.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test("the Deploy entry fails with exit 3 when Spotify refuses the refresh token, naming it", async () => {
  const mock = startMockSpotify();
  const dir = await Deno.makeTempDir({ prefix: "deploy_test_" });
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
      SPOTIFY_TOKENS_JSON: tokensJson(mock),
    };
    const r = await runDeployEntry(env, dir, ["--once"]);
    assertEquals(r.code, 3, r.stderr);
    assertStringIncludes(r.stderr, "invalid_grant");
    // Fired by the cron, the failure is rethrown: Deploy's dashboard shows the run as Error.
    const fired = await runDeployEntry({ ...env, TEST_CRON_FIRE: "1" }, dir, []);
    const outcome = fired.stderr.split("\n").filter((l) => l.startsWith('{"cron_fired"'))
      .map((l) => JSON.parse(l).cron_fired);
    assertEquals(outcome.length, 1);
    assertEquals(outcome[0].ok, false);
    assertStringIncludes(outcome[0].error, "SourceError");
  } finally {
    await mock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Deploy entry registers Deno.cron('top-tracks') on PIPELINE_SCHEDULE while it loads, needing no secret", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deploy_test_" });
  try {
    const registered = (stderr: string) =>
      stderr.split("\n").filter((l) => l.startsWith('{"cron_registered"'))
        .map((l) => JSON.parse(l).cron_registered);
    const ok = await runDeployEntry({ PIPELINE_SCHEDULE: "15 5 * * *" }, dir, ["--help"]);
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(registered(ok.stderr), [{ name: "top-tracks", schedule: "15 5 * * *" }]);
    const byDefault = await runDeployEntry({}, dir, ["--help"]);
    assertEquals(registered(byDefault.stderr), [{ name: "top-tracks", schedule: "0 0 * * *" }]);
    // A bad schedule fails the module (the deployment), naming the setting.
    const bad = await runDeployEntry({ PIPELINE_SCHEDULE: "daily" }, dir, ["--help"]);
    assert(bad.code !== 0);
    assertStringIncludes(bad.stderr, 'PIPELINE_SCHEDULE="daily" is not valid');
    assertEquals(registered(bad.stderr), []);
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
    await Deno.remove(dir, { recursive: true });
  }
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
    const me = await second.getJson<{ id: string }>("/v1/me");
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
