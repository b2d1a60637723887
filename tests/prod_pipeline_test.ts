/**
 * The `prod` profile end to end, as a user runs it: `deno task load --setup --apply`, then
 * `deno task pipeline` twice on the same day, each as its own process with the real steps and
 * SDKs, against the mock Spotify (real API shapes), moto (S3) and fakesnow (Snowflake, behind the
 * test-only protocol adapter; dbt-snowflake talks to the same server). The first run loads the
 * rows and builds the dbt models; the second uploads nothing, loads nothing new, and leaves every
 * model's row count unchanged.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";
import { Logger } from "../lib/log.ts";
import type { Manifest } from "../lib/run.ts";
import type { PutReceipt } from "../lib/store/object_store.ts";
import { openSnowflakeSession } from "../lib/warehouse/snowflake.ts";
import type { LoadReport } from "../lib/warehouse/warehouse.ts";
import { runTask } from "./_spotify_test_util.ts";
import {
  featuresForTopTracks,
  type MockSpotify,
  recordedTopTracks,
  startMockSpotify,
  writeMockTokens,
} from "./mock_spotify.ts";
import {
  createBucket,
  generateKeyPair,
  prodEnv,
  type StandIn,
  startFakesnow,
  startMoto,
  TEST_AWS_ENV,
} from "./stand_ins.ts";

const BUCKET = "spotify-prod-lake";
const DATE = "2026-03-02";
const AWS_ENV = TEST_AWS_ENV;

/** Runs `scripts/<script>` in a child Deno with only `env` (plus the stand-ins' AWS keys) set. */
function task(script: string, args: string[], env: Record<string, string>, cwd: string) {
  return runTask(script, args, { ...AWS_ENV, ...env }, cwd);
}

async function latestRun(dataDir: string): Promise<string> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(`${dataDir}/runs`)) {
    if (entry.isDirectory) ids.push(entry.name);
  }
  ids.sort();
  return `${dataDir}/runs/${ids.at(-1)!}`;
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path)) as T;
}

Deno.test({
  name:
    "prod profile: load --setup --apply, then pipeline twice on one day — rows loaded and modelled once, nothing new the second time",
  async fn() {
    const moto = await startMoto();
    const pair = await generateKeyPair();
    const dataDir = await Deno.makeTempDir({ prefix: "prod_pipeline_test_" });
    const mock: MockSpotify = startMockSpotify({ audioFeatures: featuresForTopTracks() });
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
      await writeMockTokens(mock, `${dataDir}/spotify_tokens.json`);
      const env: Record<string, string> = {
        ...await prodEnv({
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
        }),
        PIPELINE_LOG_LEVEL: "info",
        PIPELINE_LOG_FORMAT: "json",
        SPOTIFY_API_URL: mock.url,
        SPOTIFY_ACCOUNTS_URL: mock.url,
        SPOTIFY_CLIENT_ID: mock.state.clientId,
        FEATURES_PROVIDERS: "spotify,csv",
      };
      const expectedRows = recordedTopTracks().length;

      // One-time setup.
      const setup = await task("load.ts", ["--setup", "--apply"], env, dataDir);
      assert.equal(setup.code, 0, setup.stderr);
      assert.match(setup.stdout, /"sts:ExternalId": "[^"<]+"/);

      // Day 1, first run: everything new.
      const first = await task("pipeline.ts", ["--date", DATE], env, dataDir);
      assert.equal(first.code, 0, first.stderr + first.stdout);
      const run1 = await latestRun(dataDir);
      const manifest1 = await readJson<Manifest>(`${run1}/manifest.json`);
      assert.equal(manifest1.status, "succeeded");
      const receipt1 = await readJson<PutReceipt>(`${run1}/upload/receipt.json`);
      assert.equal(
        receipt1.uri,
        `s3://${BUCKET}/lake/top_tracks/snapshot_date=${DATE}/top_tracks.parquet`,
      );
      assert.equal(receipt1.skipped, false);
      const load1 = await readJson<LoadReport>(`${run1}/load/report.json`);
      assert.deepEqual(
        [load1.warehouse, load1.table, load1.files_loaded, load1.files_skipped, load1.rows_loaded],
        ["snowflake", "SPOTIFY.RAW.TOP_TRACKS", 1, 0, expectedRows],
      );
      assert.ok(!first.stderr.includes(pair.passphrase) && !first.stdout.includes(pair.passphrase));

      const config = loadConfig({ env, envFile: false });
      assert.ok(config.warehouse.kind === "snowflake");
      const counts = async () => {
        const session = await openSnowflakeSession(
          config.warehouse as typeof config.warehouse & {
            kind: "snowflake";
          },
          { log: new Logger({ level: "error", sink: () => {} }) },
        );
        try {
          const out: Record<string, number> = {};
          for (
            const table of [
              "RAW.TOP_TRACKS",
              "ANALYTICS.TOP_TRACKS",
              "ANALYTICS.AUDIO_FEATURES",
              "ANALYTICS.INTER_TOP_WEEKLY_AUDIO_FEATURES",
            ]
          ) {
            const [row] = await session.execute(`SELECT COUNT(*) AS N FROM SPOTIFY.${table}`);
            out[table] = Number(row!.N);
          }
          return out;
        } finally {
          await session.close();
        }
      };
      const after1 = await counts();
      assert.equal(after1["RAW.TOP_TRACKS"], expectedRows);
      assert.equal(after1["ANALYTICS.TOP_TRACKS"], expectedRows);
      assert.ok(after1["ANALYTICS.INTER_TOP_WEEKLY_AUDIO_FEATURES"]! >= 1);

      // Day 1, second run: same data → nothing uploaded, nothing loaded, same model rows.
      const second = await task("pipeline.ts", ["--date", DATE], env, dataDir);
      assert.equal(second.code, 0, second.stderr + second.stdout);
      const run2 = await latestRun(dataDir);
      assert.notEqual(run2, run1);
      const receipt2 = await readJson<PutReceipt>(`${run2}/upload/receipt.json`);
      assert.equal(receipt2.skipped, true);
      assert.equal(receipt2.sha256, receipt1.sha256);
      const load2 = await readJson<LoadReport>(`${run2}/load/report.json`);
      assert.deepEqual([load2.files_loaded, load2.files_skipped, load2.rows_loaded], [0, 1, 0]);
      assert.deepEqual(await counts(), after1);
    } finally {
      await fakesnow?.stop();
      await moto.stop();
      await mock.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
