/**
 * The Snowflake loader and setup with the real Node driver (npm:snowflake-sdk) against fakesnow
 * (Snowflake SQL on DuckDB) behind the test-only protocol adapter, reading a real Parquet file
 * from moto (S3) through DuckDB's httpfs. What the adapter bridges is listed in
 * `tests/fakesnow_adapter.py`; fakesnow + DuckDB run every statement.
 */

import assert from "node:assert/strict";
import { type Config, loadConfig } from "../lib/config.ts";
import { ConfigError, StorageError } from "../lib/errors.ts";
import { Logger, type LogRecord } from "../lib/log.ts";
import { openS3Store } from "../lib/store/s3.ts";
import { openSnowflakeWarehouse } from "../lib/warehouse/snowflake.ts";
import { openSnowflakeSession } from "../lib/warehouse/snowflake_session.ts";
import { runSnowflakeSetup } from "../lib/warehouse/snowflake_setup.ts";
import type { FileToLoad } from "../lib/warehouse/warehouse.ts";
import { encodeTopTracksParquet } from "../lib/parquet/writer.ts";
import { sampleEnrichedRows } from "./_enriched_rows.ts";
import {
  freePort,
  generateKeyPair,
  type ProdStandInsOptions,
  PROJECT_ROOT,
  rejectsWith,
  type StartFakesnowOptions,
  startProdStandIns,
  TEST_ROLE_ARN,
  withAwsEnv,
} from "./stand_ins.ts";

const BUCKET = "spotify-lake";
const KEY = "top_tracks/snapshot_date=2026-01-31/top_tracks.parquet";
const ROLE_ARN = TEST_ROLE_ARN;

function testLogger(records: LogRecord[] = []): Logger {
  return new Logger({ level: "debug", format: "json", sink: (r) => records.push(r) });
}

/**
 * A top-tracks Parquet file built by DuckDB (Python, in the venv) from the bundled Spotify sample
 * (API shape) joined to the bundled audio-features CSV, in the write step's columns — used for a
 * file the write step would refuse to produce (`badRank`: a string in the integer column).
 */
async function buildParquet(
  out: string,
  options: { runId: string; badRank?: boolean } = { runId: "20260131T060000Z-ab12" },
): Promise<void> {
  const script = `
import duckdb, sys
sample, csv, out, run_id, bad = sys.argv[1:6]
con = duckdb.connect()
rank = "'not-a-number'" if bad == "1" else "i.rank::INTEGER"
con.execute(f"""
COPY (
  WITH doc AS (SELECT CAST(json_extract(content, '$.items') AS JSON[]) AS items FROM read_text('{sample}')),
  items AS (SELECT unnest(items) AS t, generate_subscripts(items, 1) AS rank FROM doc),
  f AS (SELECT * FROM read_csv('{csv}', header = true))
  SELECT
    DATE '2026-01-31' AS snapshot_date,
    'short_term' AS time_range,
    {rank} AS rank,
    i.t->>'$.id' AS track_id,
    i.t->>'$.name' AS track_name,
    json_extract_string(i.t, '$.artists[*].id') AS artist_ids,
    json_extract_string(i.t, '$.artists[*].name') AS artist_names,
    i.t->>'$.album.id' AS album_id,
    i.t->>'$.album.name' AS album_name,
    i.t->>'$.album.release_date' AS album_release_date,
    (i.t->>'$.duration_ms')::INTEGER AS duration_ms,
    (i.t->>'$.explicit')::BOOLEAN AS explicit,
    (i.t->>'$.popularity')::INTEGER AS popularity,
    i.t->>'$.external_ids.isrc' AS isrc,
    TIMESTAMPTZ '2026-01-31 06:00:01.234+00' AS fetched_at,
    '{run_id}' AS run_id,
    f.danceability::DOUBLE AS danceability, f.energy::DOUBLE AS energy, f.key::INTEGER AS key,
    f.loudness::DOUBLE AS loudness, f.mode::INTEGER AS mode, f.speechiness::DOUBLE AS speechiness,
    f.acousticness::DOUBLE AS acousticness, f.instrumentalness::DOUBLE AS instrumentalness,
    f.liveness::DOUBLE AS liveness, f.valence::DOUBLE AS valence, f.tempo::DOUBLE AS tempo,
    f.time_signature::INTEGER AS time_signature,
    CASE WHEN f.track_id IS NULL THEN 'none' ELSE 'csv' END AS features_source,
    CASE WHEN f.track_id IS NULL THEN 'none' ELSE 'id' END AS match_method
  FROM items i LEFT JOIN f ON f.track_id = (i.t->>'$.id')
  ORDER BY i.rank
) TO '{out}' (FORMAT parquet)
""")
`;
  const result = await new Deno.Command(`${PROJECT_ROOT}/.venv/bin/python`, {
    args: [
      "-c",
      script,
      `${PROJECT_ROOT}/data/sample_top_tracks_short_term.json`,
      `${PROJECT_ROOT}/data/audio_features_sample.csv`,
      out,
      options.runId,
      options.badRank ? "1" : "0",
    ],
  }).output();
  if (!result.success) {
    throw new Error(
      `building the Parquet file failed:\n${new TextDecoder().decode(result.stderr)}`,
    );
  }
}

async function uploadFile(config: Config, key: string, path: string, runId: string) {
  assert.ok(config.store.kind === "s3");
  const store = await openS3Store(config.store, { log: testLogger() });
  try {
    const receipt = await store.put(key, await Deno.readFile(path));
    return { ...receipt, stream: "top_tracks", run_id: runId } satisfies FileToLoad & {
      skipped: boolean;
    };
  } finally {
    await store.close();
  }
}

Deno.test("Snowflake setup, COPY INTO and errors against fakesnow + moto", async (t) => {
  await using w = await startProdStandIns({
    bucket: BUCKET,
    fakesnow: { passwords: { PIPELINE_USER: "the-right-password-0123" } },
  });
  const { pair, dataDir } = w;
  const baseEnv = await w.env();
  const configWith = (extra: Record<string, string> = {}) =>
    loadConfig({ env: { ...baseEnv, ...extra }, envFile: false });
  const config = configWith();
  assert.ok(config.warehouse.kind === "snowflake");
  const sf = config.warehouse;
  /** The warehouse of `c` (another setting than the suite's), opened as the load step does. */
  const openOther = (c: typeof config, log = testLogger()) =>
    openSnowflakeWarehouse(c.warehouse as typeof sf, { log, store: c.store });

  {
    await withAwsEnv({}, async () => {
      await t.step(
        "load --setup prints the SQL for review, with the user's public key",
        async () => {
          let text = "";
          await runSnowflakeSetup(config, {
            apply: false,
            log: testLogger(),
            write: (s) => text += s + "\n",
          });
          assert.match(text, /CREATE STORAGE INTEGRATION IF NOT EXISTS "SPOTIFY_S3_INTEGRATION"/);
          assert.match(text, /STORAGE_ALLOWED_LOCATIONS = \('s3:\/\/spotify-lake\/lake\/'\)/);
          assert.match(
            text,
            /CREATE OR REPLACE FILE FORMAT .* TYPE = PARQUET USE_LOGICAL_TYPE = TRUE/,
          );
          assert.match(text, /CREATE STAGE IF NOT EXISTS "SPOTIFY"."RAW"."SPOTIFY_S3_STAGE"/);
          assert.match(text, /"sts:ExternalId": "<STORAGE_AWS_EXTERNAL_ID>"/);
          const publicKeyBody = pair.publicKeyPem.replace(/-----[A-Z ]+-----|\s/g, "");
          assert.ok(text.includes(`SET RSA_PUBLIC_KEY = '${publicKeyBody}'`));
          assert.ok(!text.includes(pair.passphrase));
        },
      );

      await t.step(
        "load --setup --apply runs it on fakesnow (twice: idempotent) and prints the trust policy",
        async () => {
          for (let i = 0; i < 2; i++) {
            let text = "";
            await runSnowflakeSetup(config, {
              apply: true,
              log: testLogger(),
              write: (s) => text += s + "\n",
            });
            const json = text.slice(
              text.indexOf("{", text.indexOf("Now set this as the trust policy")),
            );
            const policy = JSON.parse(json);
            const statement = policy.Statement[0];
            assert.match(statement.Principal.AWS, /^arn:aws:iam::\d{12}:user\//);
            assert.match(statement.Condition.StringEquals["sts:ExternalId"], /SFCRole=/);
            assert.equal(statement.Action, "sts:AssumeRole");
          }
          const session = await openSnowflakeSession(sf, { log: testLogger() });
          try {
            const stages = await session.execute("SHOW STAGES IN SCHEMA SPOTIFY.RAW");
            assert.deepEqual(
              stages.map((s) => [s.name, s.url]),
              [["SPOTIFY_S3_STAGE", "s3://spotify-lake/lake/"]],
            );
            const tables = await session.execute(
              "SELECT table_name FROM SPOTIFY.INFORMATION_SCHEMA.TABLES WHERE table_schema = ?",
              ["RAW"],
            );
            assert.deepEqual(tables.map((r) => r.TABLE_NAME).sort(), [
              "RECENTLY_PLAYED",
              "STREAMING_HISTORY",
              "TOP_ARTISTS",
              "TOP_TRACKS",
            ]);
          } finally {
            await session.close();
          }
        },
      );

      // the write step's own Parquet (lib/parquet) of the bundled sample's 21 enriched rows
      const sampleRows = sampleEnrichedRows({ snapshotDate: "2026-01-31" });
      const parquet = `${dataDir}/top_tracks.parquet`;
      await Deno.writeFile(parquet, (await encodeTopTracksParquet(sampleRows)).data);
      const file = await uploadFile(config, KEY, parquet, sampleRows[0]!.run_id);

      await t.step("COPY INTO loads the rows of a Parquet file uploaded to S3", async () => {
        const records: LogRecord[] = [];
        const warehouse = await openSnowflakeWarehouse(sf, {
          log: testLogger(records),
          store: config.store,
        });
        try {
          const report = await warehouse.load([file]);
          assert.deepEqual(report, {
            warehouse: "snowflake",
            table: "SPOTIFY.RAW.TOP_TRACKS",
            files_loaded: 1,
            files_skipped: 0,
            rows_loaded: 21,
            files: [{
              file: `s3://spotify-lake/lake/${KEY}`,
              table: "SPOTIFY.RAW.TOP_TRACKS",
              status: "LOADED",
              rows_parsed: 21,
              rows_loaded: 21,
            }],
          });
        } finally {
          await warehouse.close();
        }
        const session = await openSnowflakeSession(sf, { log: testLogger() });
        try {
          const rows = await session.execute(
            `SELECT snapshot_date, rank, track_id, artist_ids, explicit, fetched_at, danceability,
                    features_source, source_file, loaded_at
               FROM SPOTIFY.RAW.TOP_TRACKS WHERE rank <= ? ORDER BY rank`,
            [2],
          );
          assert.equal(rows.length, 2);
          for (const [i, row] of rows.entries()) {
            const expected = sampleRows.find((r) => r.rank === i + 1)!;
            assert.equal(row.TRACK_ID, expected.track_id);
            assert.equal(Number(row.RANK), i + 1);
            assert.deepEqual(row.ARTIST_IDS, expected.artist_ids);
            assert.equal(row.EXPLICIT, expected.explicit);
            assert.equal(row.DANCEABILITY, expected.danceability);
            assert.equal(row.FEATURES_SOURCE, expected.features_source);
            assert.equal(
              new Date(row.SNAPSHOT_DATE as string).toISOString().slice(0, 10),
              "2026-01-31",
            );
            assert.equal(new Date(row.FETCHED_AT as string).toISOString(), expected.fetched_at);
            assert.equal(row.SOURCE_FILE, KEY);
            assert.ok(row.LOADED_AT, "loaded_at is filled from METADATA$START_SCAN_TIME");
          }
          const [count] = await session.execute(
            "SELECT COUNT(*) AS n, COUNT(danceability) AS with_features FROM SPOTIFY.RAW.TOP_TRACKS",
          );
          assert.deepEqual(
            [Number(count!.N), Number(count!.WITH_FEATURES)],
            [21, sampleRows.filter((r) => r.danceability !== null).length],
          );
        } finally {
          await session.close();
        }
      });

      await t.step("a second load of the same file loads nothing new", async () => {
        const warehouse = await openSnowflakeWarehouse(sf, {
          log: testLogger(),
          store: config.store,
        });
        try {
          const report = await warehouse.load([file]);
          assert.equal(report.files_loaded, 0);
          assert.equal(report.files_skipped, 1);
          assert.equal(report.rows_loaded, 0);
          assert.equal(report.files[0]!.status, "SKIPPED");
        } finally {
          await warehouse.close();
        }
        const session = await openSnowflakeSession(sf, { log: testLogger() });
        try {
          const [count] = await session.execute("SELECT COUNT(*) AS n FROM SPOTIFY.RAW.TOP_TRACKS");
          assert.equal(Number(count!.N), 21);
        } finally {
          await session.close();
        }
      });

      await t.step(
        "a raw table from before user_id gains it on the next load, old rows filled with the token store's user; again: no change",
        async () => {
          const session = await openSnowflakeSession(sf, { log: testLogger() });
          try {
            // the table as an earlier version created it: every column but USER_ID
            await session.execute("ALTER TABLE SPOTIFY.RAW.TOP_TRACKS DROP COLUMN USER_ID");
          } finally {
            await session.close();
          }
          for (const round of [1, 2]) {
            const warehouse = await openSnowflakeWarehouse(sf, {
              log: testLogger(),
              store: config.store,
            });
            try {
              const report = await warehouse.load([file], { migrationUser: "wizzler" });
              assert.equal(report.files_skipped, 1, "the file itself is not loaded again");
              if (round === 1) {
                assert.deepEqual(report.migrations, [
                  'SPOTIFY.RAW.TOP_TRACKS: added USER_ID (existing rows set to "wizzler")',
                ]);
              } else assert.equal(report.migrations, undefined);
            } finally {
              await warehouse.close();
            }
          }
          const check = await openSnowflakeSession(sf, { log: testLogger() });
          try {
            const rows = await check.execute(
              "SELECT user_id, COUNT(*) AS n FROM SPOTIFY.RAW.TOP_TRACKS GROUP BY user_id",
            );
            assert.deepEqual(rows.map((r) => [r.USER_ID, Number(r.N)]), [["wizzler", 21]]);
          } finally {
            await check.close();
          }
        },
      );

      await t.step("a COPY error names the file and the first error", async () => {
        const bad = `${dataDir}/bad.parquet`;
        await buildParquet(bad, { runId: "20260201T060000Z-cd34", badRank: true });
        const badFile = await uploadFile(
          config,
          "top_tracks/snapshot_date=2026-02-01/top_tracks.parquet",
          bad,
          "20260201T060000Z-cd34",
        );
        const warehouse = await openSnowflakeWarehouse(sf, {
          log: testLogger(),
          store: config.store,
        });
        try {
          const error = await rejectsWith(() => warehouse.load([badFile]), StorageError);
          assert.match(
            error.message,
            /^COPY INTO SPOTIFY.RAW.TOP_TRACKS failed for s3:\/\/spotify-lake\/lake\/top_tracks\/snapshot_date=2026-02-01\/top_tracks.parquet: \(100038\): .*'not-a-number'/,
          );
          assert.ok(!error.message.includes("\n"));
        } finally {
          await warehouse.close();
        }
      });

      await t.step(
        "a statement running past SNOWFLAKE_TIMEOUT_SECONDS is cancelled with a clear error",
        async () => {
          const quick = configWith({ SNOWFLAKE_TIMEOUT_SECONDS: "1" });
          const session = await openSnowflakeSession(quick.warehouse as typeof sf, {
            log: testLogger(),
          });
          try {
            // 21^8 rows: far more than one second of work for DuckDB
            const t8 = Array.from({ length: 8 }, (_, i) => `SPOTIFY.RAW.TOP_TRACKS t${i}`).join(
              ", ",
            );
            const error = await rejectsWith(
              () => session.execute(`SELECT COUNT(*) AS n FROM ${t8}`),
              StorageError,
            );
            assert.match(
              error.message,
              /^Snowflake statement timed out after 1 s \(SNOWFLAKE_TIMEOUT_SECONDS\)/,
            );
            // the session is still usable
            const [row] = await session.execute("SELECT 1 AS ok");
            assert.equal(Number(row!.OK), 1);
          } finally {
            await session.close();
          }
        },
      );

      await t.step("a missing stage is a clear StorageError", async () => {
        const other = configWith({ SNOWFLAKE_STAGE: "NO_SUCH_STAGE" });
        assert.ok(other.warehouse.kind === "snowflake");
        const warehouse = await openSnowflakeWarehouse(other.warehouse, {
          log: testLogger(),
          store: other.store,
        });
        try {
          const error = await rejectsWith(() => warehouse.load([file]), StorageError);
          assert.match(error.message, /stage "SPOTIFY"."RAW"."NO_SUCH_STAGE" does not exist/);
          assert.match(error.hint ?? "", /load --setup/);
        } finally {
          await warehouse.close();
        }
      });

      await t.step(
        "a key that is not the user's registered key is refused with 390144",
        async () => {
          const otherKey = await generateKeyPair("other-passphrase-42");
          const otherPath = `${dataDir}/other_key.p8`;
          await Deno.writeTextFile(otherPath, otherKey.privateKeyPem);
          const other = configWith({
            SNOWFLAKE_PRIVATE_KEY_PATH: otherPath,
            SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: otherKey.passphrase,
          });
          assert.ok(other.warehouse.kind === "snowflake");
          const error = await rejectsWith(
            () => openOther(other),
            StorageError,
          );
          assert.match(
            error.message,
            /rejected the key-pair login for user PIPELINE_USER .*390144/,
          );
          assert.match(error.hint ?? "", /fingerprint is SHA256:/);
        },
      );

      await t.step(
        "password auth: the right password logs in, a wrong one is refused with 390100",
        async () => {
          const right = configWith({
            SNOWFLAKE_AUTHENTICATOR: "SNOWFLAKE",
            SNOWFLAKE_PASSWORD: "the-right-password-0123",
          });
          const session = await openSnowflakeSession(right.warehouse as typeof sf, {
            log: testLogger(),
          });
          await session.close();
          const wrong = configWith({
            SNOWFLAKE_AUTHENTICATOR: "SNOWFLAKE",
            SNOWFLAKE_PASSWORD: "a-wrong-password-0123",
          });
          const records: LogRecord[] = [];
          const error = await rejectsWith(
            () => openSnowflakeSession(wrong.warehouse as typeof sf, { log: testLogger(records) }),
            StorageError,
          );
          assert.match(error.message, /rejected the password for user PIPELINE_USER .*390100/);
          assert.ok(
            !JSON.stringify([error.message, error.hint, records]).includes("a-wrong-password"),
          );
        },
      );

      await t.step(
        "a wrong passphrase or a missing one is a ConfigError naming the setting",
        async () => {
          const wrong = configWith({ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: "not-the-passphrase" });
          const error = await rejectsWith(
            () => openOther(wrong),
            ConfigError,
          );
          assert.match(error.message, /SNOWFLAKE_PRIVATE_KEY_PASSPHRASE is wrong/);
          const env = { ...baseEnv };
          delete env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE;
          const missing = loadConfig({ env, envFile: false });
          const error2 = await rejectsWith(
            () => openOther(missing),
            ConfigError,
          );
          assert.match(error2.message, /is encrypted: set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE/);
        },
      );

      await t.step("an unknown account is a clear StorageError", async () => {
        const other = configWith({ SNOWFLAKE_ACCOUNT: "NOSUCHORG-NOSUCHACCT" });
        const error = await rejectsWith(
          () => openOther(other),
          StorageError,
        );
        assert.match(error.message, /Unknown Snowflake account "NOSUCHORG-NOSUCHACCT"/);
      });

      await t.step(
        "a Snowflake endpoint that is down fails in seconds, without a retry storm",
        async () => {
          const other = configWith({ SNOWFLAKE_PORT: String(freePort()) });
          const started = performance.now();
          const error = await rejectsWith(
            () => openOther(other),
            StorageError,
          );
          assert.match(error.message, /Cannot reach Snowflake at http:\/\/127.0.0.1:\d+/);
          console.log(`  endpoint down → error in ${Math.round(performance.now() - started)} ms`);
        },
      );
    });
  }
});

/** Sets (creates or updates) an IAM role's trust policy in moto; `undefined` deletes the role. */
async function setRoleTrust(motoUrl: string, policy: unknown | undefined): Promise<void> {
  const code = `import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
name = sys.argv[2]
doc = sys.argv[3]
try:
    iam.get_role(RoleName=name)
    exists = True
except iam.exceptions.NoSuchEntityException:
    exists = False
if doc == "-":
    if exists:
        iam.delete_role(RoleName=name)
elif exists:
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=doc)
else:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc)
`;
  const out = await new Deno.Command(`${PROJECT_ROOT}/.venv/bin/python`, {
    args: ["-c", code, motoUrl, ROLE_ARN.split("/").at(-1)!, policy ? JSON.stringify(policy) : "-"],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** The prod stand-ins (fakesnow with `options`) and the config for an S3 prefix. */
async function snowflakeWorld(
  options: Partial<StartFakesnowOptions> = {},
  more: Partial<Pick<ProdStandInsOptions, "moto" | "prepare">> = {},
) {
  const w = await startProdStandIns({ bucket: BUCKET, fakesnow: options, ...more });
  const { moto, dataDir } = w;
  const configFor = async (prefix: string) =>
    loadConfig({ env: await w.env(prefix), envFile: false });
  /** The sample's 21 enriched rows as the write step's Parquet, uploaded under `KEY`. */
  const uploadSample = async (config: Config) => {
    const rows = sampleEnrichedRows({ snapshotDate: "2026-01-31" });
    const parquet = `${dataDir}/top_tracks.parquet`;
    await Deno.writeFile(parquet, (await encodeTopTracksParquet(rows)).data);
    return await uploadFile(config, KEY, parquet, rows[0]!.run_id);
  };
  /** One load through a new warehouse connection. */
  const load = async (config: Config, files: FileToLoad[], records?: LogRecord[]) => {
    assert.ok(config.warehouse.kind === "snowflake");
    const warehouse = await openSnowflakeWarehouse(config.warehouse, {
      log: testLogger(records),
      store: config.store,
    });
    try {
      return await warehouse.load(files);
    } finally {
      await warehouse.close();
    }
  };
  return {
    moto,
    configFor,
    uploadSample,
    load,
    [Symbol.asyncDispose]: () => w[Symbol.asyncDispose](),
  };
}

Deno.test("Snowflake assuming the integration's AWS role (trust policy from moto's IAM) and a stage left on an old S3_PREFIX: each a StorageError saying what to fix; fixed, the rows load once", async (t) => {
  await using w = await snowflakeWorld({ checkTrust: true });
  const { moto, load } = w;
  const config = await w.configFor("lake");
  assert.ok(config.warehouse.kind === "snowflake");
  const sf = config.warehouse;
  await withAwsEnv({}, async () => {
    {
      let text = "";
      await runSnowflakeSetup(config, { apply: true, log: testLogger(), write: (s) => text += s });
      const trust = JSON.parse(text.slice(text.indexOf("{", text.indexOf("Now set this"))));
      const file = await w.uploadSample(config);

      await t.step(
        "no such role in IAM: Snowflake's 003167 text, with the trust-policy hint",
        async () => {
          await setRoleTrust(moto.url, undefined);
          const error = await rejectsWith(() => load(config, [file]), StorageError);
          assert.match(
            error.message,
            /^Snowflake cannot assume the IAM role of storage integration SPOTIFY_S3_INTEGRATION \(003167\): Error assuming AWS_ROLE: User: arn:aws:iam::\d{12}:user\/\S+ is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role\/snowflake-spotify-reader/,
          );
          assert.match(error.hint ?? "", /DESC INTEGRATION SPOTIFY_S3_INTEGRATION/);
          assert.match(error.hint ?? "", /STORAGE_AWS_EXTERNAL_ID/);
          assert.ok(!/Parquet/.test(error.message + error.hint), "not a Parquet-columns problem");
        },
      );

      await t.step(
        "a trust policy with another external id: the documented text, the same hint",
        async () => {
          const wrong = structuredClone(trust);
          wrong.Statement[0].Condition.StringEquals["sts:ExternalId"] = "not-the-integrations-id";
          await setRoleTrust(moto.url, wrong);
          const error = await rejectsWith(() => load(config, [file]), StorageError);
          assert.match(
            error.message,
            /Error assuming AWS_ROLE\. Please verify the role and externalId are configured correctly in your AWS policy\./,
          );
          assert.match(error.hint ?? "", /Trust relationships/);
        },
      );

      await t.step("the policy `load --setup --apply` printed: the file loads", async () => {
        await setRoleTrust(moto.url, trust);
        const report = await load(config, [file]);
        assert.deepEqual([report.files_loaded, report.rows_loaded], [1, 21]);
      });

      const moved = await w.configFor("lake2");
      const movedFile = await w.uploadSample(moved);
      await t.step(
        "S3_PREFIX changed, stage not: a StorageError naming both locations, nothing loaded",
        async () => {
          const error = await rejectsWith(() => load(moved, [movedFile]), StorageError);
          assert.equal(
            error.message,
            'Snowflake stage "SPOTIFY"."RAW"."SPOTIFY_S3_STAGE" reads s3://spotify-lake/lake/, but S3_BUCKET/S3_PREFIX put the files under s3://spotify-lake/lake2/: COPY INTO would find none of them',
          );
          assert.match(error.hint ?? "", /load --setup --apply/);
        },
      );

      await t.step(
        "load --setup --apply points the stage at the new location; the file loads",
        async () => {
          let out = "";
          await runSnowflakeSetup(moved, {
            apply: true,
            log: testLogger(),
            write: (s) => out += s,
          });
          assert.match(
            out,
            /reads s3:\/\/spotify-lake\/lake\/; S3_BUCKET\/S3_PREFIX say s3:\/\/spotify-lake\/lake2\/: replacing it/,
          );
          const session = await openSnowflakeSession(sf, { log: testLogger() });
          try {
            const stages = await session.execute("SHOW STAGES IN SCHEMA SPOTIFY.RAW");
            assert.deepEqual(stages.map((s) => s.url), ["s3://spotify-lake/lake2/"]);
          } finally {
            await session.close();
          }
          const report = await load(moved, [movedFile]);
          assert.deepEqual([report.files_loaded, report.rows_loaded], [1, 21]);
          // and the first file is still known: loading it again loads nothing
          const again = await load(moved, [movedFile]);
          assert.deepEqual([again.files_loaded, again.files_skipped], [0, 1]);
        },
      );
    }
  });
});

Deno.test("a file never loaded whose S3 copy is older than Snowflake's 64-day load metadata is loaded (LOAD_UNCERTAIN_FILES where the raw table proves it new), once", async () => {
  // the stand-in's clock for the 64-day rule runs 70 days ahead: today's upload looks 70 days old
  await using w = await snowflakeWorld({ clockAheadDays: 70 });
  const config = await w.configFor("lake");
  assert.ok(config.warehouse.kind === "snowflake");
  const sf = config.warehouse;
  await withAwsEnv({}, async () => {
    await runSnowflakeSetup(config, { apply: true, log: testLogger(), write: () => {} });
    const file = await w.uploadSample(config);
    const records: LogRecord[] = [];
    const first = await w.load(config, [file], records);
    assert.deepEqual([first.files_loaded, first.files_skipped, first.rows_loaded], [1, 0, 21]);
    assert.ok(
      records.some((r) => r.level === "warn" && /load status uncertain/.test(r.msg)),
      "the retry is logged",
    );
    const second = await w.load(config, [file]);
    assert.deepEqual([second.files_loaded, second.files_skipped, second.rows_loaded], [0, 1, 0]);
    const session = await openSnowflakeSession(sf, { log: testLogger() });
    try {
      const count = await session.execute("SELECT COUNT(*) AS N FROM SPOTIFY.RAW.TOP_TRACKS");
      assert.equal(Number(count[0]?.N), 21, "loaded once");
    } finally {
      await session.close();
    }
  });
});

Deno.test("Snowflake denied reading the stage's S3 files (moto enforcing IAM on the stand-in's key): a StorageError pointing at the role's permissions policy", async () => {
  const keys: Record<string, { id: string; secret: string }> = {};
  // moto enforces IAM after 7 unauthenticated requests: the bucket and two users with their keys
  await using w = await snowflakeWorld({}, {
    moto: { enforceIamAfter: 7 },
    async prepare(moto) {
      const code = `import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
def user(name, actions):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": actions}]}))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
print(json.dumps({"writer": user("writer", ["s3:*"]), "stage": user("stage", ["s3:ListBucket"])}))
`;
      const out = await new Deno.Command(`${PROJECT_ROOT}/.venv/bin/python`, {
        args: ["-c", code, moto.url],
      }).output();
      if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
      Object.assign(keys, JSON.parse(new TextDecoder().decode(out.stdout)));
      // the stage reads with a key that may list the bucket but not read its objects
      return { s3Key: keys.stage! };
    },
  });
  const config = await w.configFor("lake");
  await withAwsEnv(
    { AWS_ACCESS_KEY_ID: keys.writer!.id, AWS_SECRET_ACCESS_KEY: keys.writer!.secret },
    async () => {
      await runSnowflakeSetup(config, { apply: true, log: testLogger(), write: () => {} });
      const file = await w.uploadSample(config);
      const error = await rejectsWith(() => w.load(config, [file]), StorageError);
      assert.equal(
        error.message,
        "Snowflake was denied access to the stage's S3 files (091003): Failure using stage area. Cause: [Access Denied (Status Code: 403; Error Code: AccessDenied)]",
      );
      assert.match(error.hint ?? "", /s3:GetObject/);
      assert.ok(!/Parquet/.test(error.message + error.hint), "not a Parquet-columns problem");
    },
  );
});
