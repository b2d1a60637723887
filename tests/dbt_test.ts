/**
 * The dbt project and the transform step, end to end on a temporary DuckDB warehouse: raw rows
 * are inserted into `raw.top_tracks` (the load step's table) with npm:@duckdb/node-api, then the
 * real `dbt build` runs from the project's venv. dbt invocations cost seconds each, so one
 * scenario walks through them in order: first build → re-run day + new day (incremental) →
 * full refresh → bad rows; plus `dbt parse` for the snowflake target.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Config, loadConfig, PROJECT_ROOT } from "../lib/config.ts";
import { runDbt } from "../lib/dbt/runner.ts";
import { ensureVenv, TEST_VENV_LOCKS } from "../lib/dbt/venv.ts";
import { DbtError, ExitCode } from "../lib/errors.ts";
import { Logger } from "../lib/log.ts";
import { createRun } from "../lib/run.ts";
import { runStep } from "../lib/steps.ts";
import { LOAD_METADATA_COLUMNS } from "../lib/streams/columns.ts";
import { TOP_TRACKS_COLUMNS } from "../lib/streams/top_tracks.ts";
import { openDuckDbWarehouse } from "../lib/warehouse/duckdb.ts";

/** One row of `raw.top_tracks` (the columns the load step creates). */
interface RawRow {
  snapshot_date: string;
  time_range?: string;
  rank: number;
  track_id: string | null;
  run_id: string;
  loaded_at: string;
  /** Audio features; none given = the track had no features. */
  features?: {
    danceability: number;
    energy: number;
    valence: number;
    tempo: number;
    loudness: number;
    source?: string;
    match?: string;
  };
}

/** The raw top-tracks columns `loadRaw` fills, in the order of its values (user_id first). */
const RAW_COLUMNS = [
  "user_id",
  ...TOP_TRACKS_COLUMNS.map((c) => c.name).filter((n) => n !== "user_id"),
  ...LOAD_METADATA_COLUMNS.map((c) => c.name),
];

/** Creates the raw tables as the load step does (its DuckDB warehouse DDL). */
async function createRawTables(path: string): Promise<void> {
  const warehouse = await openDuckDbWarehouse({ kind: "duckdb", path }, {
    log: new Logger({ level: "error", sink: () => {} }),
  });
  await warehouse.close();
}

function lit(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(lit).join(", ")}]`;
  return `'${String(value).replaceAll("'", "''")}'`;
}

async function withDuckDb<T>(
  path: string,
  body: (sql: (text: string) => Promise<Record<string, unknown>[]>) => Promise<T>,
): Promise<T> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    return await body(async (text) => (await connection.runAndReadAll(text)).getRowObjectsJS());
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Appends one load's rows, as the load step would (one loaded_at per file). */
async function loadRaw(path: string, rows: RawRow[]): Promise<void> {
  const values = rows.map((r) => {
    const f = r.features;
    return `(${
      [
        "u1",
        r.snapshot_date,
        r.time_range ?? "short_term",
        r.rank,
        r.track_id,
        `Track ${r.track_id}`,
        [`artist_${r.track_id}`],
        [`Artist ${r.track_id}`],
        `album_${r.track_id}`,
        `Album ${r.track_id}`,
        "2020-01-01",
        200000,
        false,
        null,
        null,
        r.loaded_at,
        r.run_id,
        f?.danceability,
        f?.energy,
        f ? 5 : null,
        f?.loudness,
        f ? 1 : null,
        f ? 0.05 : null,
        f ? 0.125 : null,
        f ? 0 : null,
        f ? 0.25 : null,
        f?.valence,
        f?.tempo,
        f ? 4 : null,
        f ? (f.source ?? "csv") : "none",
        f ? (f.match ?? "id") : "none",
        `top_tracks/snapshot_date=${r.snapshot_date}/top_tracks.parquet`,
        r.loaded_at,
      ].map(lit).join(", ")
    })`;
  });
  await createRawTables(path);
  await withDuckDb(path, async (sql) => {
    await sql(
      `insert into raw.top_tracks (${RAW_COLUMNS.join(", ")}) values ${values.join(",\n")}`,
    );
  });
}

// Hand-picked features (dyadic fractions, so sums and means are exact in binary floating point).
const F1 = { danceability: 0.5, energy: 0.75, valence: 0.25, tempo: 120, loudness: -6 };
const F2 = { danceability: 0.25, energy: 0.5, valence: 0.5, tempo: 100, loudness: -8 };
const F4 = { danceability: 1, energy: 1, valence: 0.75, tempo: 140, loudness: -4 };
const F5 = {
  danceability: 0.25,
  energy: 0.25,
  valence: 0,
  tempo: 90,
  loudness: -10,
  source: "spotify",
};

// Week of Monday 2026-11-23 (ISO 2026-W48).
const LOAD_A: RawRow[] = [
  {
    snapshot_date: "2026-11-23",
    rank: 1,
    track_id: "t1",
    features: F1,
    run_id: "A",
    loaded_at: "2026-11-23 00:05:00+00",
  },
  {
    snapshot_date: "2026-11-23",
    rank: 2,
    track_id: "t2",
    features: { ...F2, match: "name" },
    run_id: "A",
    loaded_at: "2026-11-23 00:05:00+00",
  },
  {
    snapshot_date: "2026-11-23",
    rank: 3,
    track_id: "t3",
    run_id: "A",
    loaded_at: "2026-11-23 00:05:00+00",
  },
];
const LOAD_B: RawRow[] = [
  {
    snapshot_date: "2026-11-24",
    rank: 1,
    track_id: "t2",
    features: { ...F2, match: "name" },
    run_id: "B",
    loaded_at: "2026-11-24 00:05:00+00",
  },
  {
    snapshot_date: "2026-11-24",
    rank: 2,
    track_id: "t1",
    features: F1,
    run_id: "B",
    loaded_at: "2026-11-24 00:05:00+00",
  },
  {
    snapshot_date: "2026-11-24",
    rank: 3,
    track_id: "t4",
    features: F4,
    run_id: "B",
    loaded_at: "2026-11-24 00:05:00+00",
  },
];
// 2026-11-24 re-run later that day with a different, shorter list: it must replace run B's rows.
const LOAD_C: RawRow[] = [
  {
    snapshot_date: "2026-11-24",
    rank: 1,
    track_id: "t4",
    features: F4,
    run_id: "C",
    loaded_at: "2026-11-24 09:00:00+00",
  },
  {
    snapshot_date: "2026-11-24",
    rank: 2,
    track_id: "t5",
    features: F5,
    run_id: "C",
    loaded_at: "2026-11-24 09:00:00+00",
  },
];
const LOAD_D: RawRow[] = [
  {
    snapshot_date: "2026-11-25",
    rank: 1,
    track_id: "t1",
    features: F1,
    run_id: "D",
    loaded_at: "2026-11-25 00:05:00+00",
  },
  {
    snapshot_date: "2026-11-25",
    rank: 2,
    track_id: "t5",
    features: F5,
    run_id: "D",
    loaded_at: "2026-11-25 00:05:00+00",
  },
];

interface Weekly {
  snapshot_days: number;
  track_days: number;
  distinct_tracks: number;
  tracks_with_features: number;
  feature_coverage: number;
  danceability_mean: number;
  danceability_min: number;
  danceability_max: number;
  tempo_mean: number;
  loudness_mean: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function readModels(path: string) {
  return await withDuckDb(path, async (sql) => {
    const count = async (text: string) => Number((await sql(text))[0]!.n);
    const duplicates = {
      top_tracks: await count(
        `select count(*) - count(distinct (snapshot_date, time_range, rank)) as n from main.top_tracks`,
      ),
      audio_features: await count(
        `select count(*) - count(distinct track_id) as n from main.audio_features`,
      ),
      weekly: await count(
        `select count(*) - count(distinct (week_start, time_range)) as n from main.inter_top_weekly_audio_features`,
      ),
    };
    const topTracks = await sql(
      `select cast(snapshot_date as varchar) as snapshot_date, rank, track_id, track_name, run_id
       from main.top_tracks order by snapshot_date, rank`,
    );
    const audioFeatures = await sql(
      `select track_id, danceability, features_source, match_method, run_id,
              cast(observed_on as varchar) as observed_on
       from main.audio_features order by track_id`,
    );
    const weekly = await sql(
      `select cast(week_start as varchar) as week_start, iso_year, iso_week, time_range,
              snapshot_days, track_days, distinct_tracks, tracks_with_features, feature_coverage,
              danceability_mean, danceability_min, danceability_max, tempo_mean, loudness_mean
       from main.inter_top_weekly_audio_features order by week_start, time_range`,
    );
    return { duplicates, topTracks, audioFeatures, weekly };
  });
}

function assertWeekly(actual: Record<string, unknown> | undefined, expected: Weekly): void {
  assert.ok(actual, "no weekly row");
  for (const [key, value] of Object.entries(expected)) {
    const got = Number(actual[key]);
    assert.ok(
      Math.abs(got - value) < 1e-9,
      `${key}: expected ${value}, got ${got} (row ${
        JSON.stringify(actual, (_k, v) => typeof v === "bigint" ? Number(v) : v)
      })`,
    );
  }
}

function testLogger(lines: string[]): Logger {
  return new Logger({ format: "pretty", level: "debug", sink: (_r, line) => lines.push(line) });
}

async function transform(config: Config, date: string, flags: Record<string, boolean> = {}) {
  const lines: string[] = [];
  const run = await createRun(config, { date });
  try {
    const outcome = await runStep("transform", { config, run, log: testLogger(lines), flags });
    return { run, outcome };
  } catch (error) {
    console.error(lines.join("\n"));
    throw error;
  }
}

Deno.test("dbt build: latest load of a day wins, incremental runs touch only new days, full refresh rebuilds, bad rows fail the step", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "dbt_test_" });
  const config = loadConfig({ env: { PIPELINE_DATA_DIR: dataDir }, envFile: false });
  assert.equal(config.warehouse.kind, "duckdb");
  const warehouse = config.warehouse.kind === "duckdb" ? config.warehouse.path : "";
  assert.equal(warehouse, join(dataDir, "warehouse.duckdb"));

  try {
    await t.step(
      "first build: every model, tests pass, the week's numbers as computed by hand",
      async () => {
        await loadRaw(warehouse, LOAD_A);
        await loadRaw(warehouse, LOAD_B);
        const { run, outcome } = await transform(config, "2026-11-24");

        assert.equal(outcome.counts?.models, 12);
        assert.equal(outcome.counts?.tests_failed, 0);
        assert.ok(
          (outcome.counts?.tests_passed ?? 0) >= 50,
          `tests_passed=${outcome.counts?.tests_passed}`,
        );
        // t3 has no features: the relationships test top_tracks → audio_features warns
        assert.equal(outcome.counts?.tests_warned, 1);
        const saved = JSON.parse(
          await Deno.readTextFile(run.path("transform", "run_results.json")),
        );
        assert.equal(saved.target, "duckdb");
        assert.equal(saved.schema, "main");
        assert.deepEqual(saved.warned, [
          "relationships_top_tracks_track_id__track_id__ref_audio_features_",
        ]);
        assert.ok(
          saved.nodes.some((n: { name: string; status: string }) =>
            n.name ===
              "inter_top_weekly_audio_features::weekly_features_rerun_day_latest_load_wins" &&
            n.status === "pass"
          ),
          "the unit tests run in the build",
        );
        // dbt's phases account for its wall time, each from dbt's own events
        const phases = saved.phases_s as Record<string, number>;
        assert.deepEqual(Object.keys(phases), ["startup", "parse", "execute", "exit"]);
        assert.ok(Object.values(phases).every((v) => v >= 0), JSON.stringify(phases));
        const sum = Object.values(phases).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - saved.wall_s) < 0.05, `${sum} vs ${saved.wall_s}`);
        assert.ok(phases.startup! > 0.3 && phases.execute! > 0.1, JSON.stringify(phases));
        assert.match(String(outcome.summary?.text), /s: start-up \d+\.\d, parse \d+\.\d, run /);
        assert.equal(run.manifest.steps.transform?.status, "succeeded");

        const m = await readModels(warehouse);
        assert.deepEqual(m.duplicates, { top_tracks: 0, audio_features: 0, weekly: 0 });
        assert.equal(m.topTracks.length, 6);
        assert.deepEqual(m.audioFeatures.map((r) => r.track_id), ["t1", "t2", "t4"]);
        assert.equal(m.weekly.length, 1);
        // rows with features: A t1, A t2, B t2, B t1, B t4
        const dance = [F1, F2, F2, F1, F4].map((f) => f.danceability);
        assertWeekly(m.weekly[0], {
          snapshot_days: 2,
          track_days: 6,
          distinct_tracks: 4,
          tracks_with_features: 3,
          feature_coverage: 3 / 4,
          danceability_mean: mean(dance),
          danceability_min: 0.25,
          danceability_max: 1,
          tempo_mean: mean([F1, F2, F2, F1, F4].map((f) => f.tempo)),
          loudness_mean: mean([F1, F2, F2, F1, F4].map((f) => f.loudness)),
        });
        assert.equal(m.weekly[0]!.week_start, "2026-11-23");
        assert.equal(Number(m.weekly[0]!.iso_week), 48);

        const text = String(outcome.summary?.text);
        assert.match(text, /ISO week 2026-W48 \(from 2026-11-23\)/);
        assert.match(text, /danceability\s+0\.500/);
        assert.match(text, /with features\s+3 \(75%\)/);
      },
    );

    await t.step(
      "a re-run day replaces that day's rows; the incremental run leaves other days alone",
      async () => {
        // mark a day the next run must not touch: an incremental run that rebuilt it would undo this
        await withDuckDb(warehouse, async (sql) => {
          await sql(
            `update main.top_tracks set track_name = 'untouched' where snapshot_date = '2026-11-23'`,
          );
        });
        await loadRaw(warehouse, LOAD_C);
        await loadRaw(warehouse, LOAD_D);
        await transform(config, "2026-11-25");

        const m = await readModels(warehouse);
        assert.deepEqual(m.duplicates, { top_tracks: 0, audio_features: 0, weekly: 0 });
        assert.deepEqual(
          m.topTracks.map((r) => `${r.snapshot_date} ${r.rank} ${r.track_id} ${r.run_id}`),
          [
            "2026-11-23 1 t1 A",
            "2026-11-23 2 t2 A",
            "2026-11-23 3 t3 A",
            "2026-11-24 1 t4 C",
            "2026-11-24 2 t5 C",
            "2026-11-25 1 t1 D",
            "2026-11-25 2 t5 D",
          ],
          "run C replaced all of run B's rows for 2026-11-24, rank 3 included",
        );
        assert.ok(
          m.topTracks.filter((r) => r.snapshot_date === "2026-11-23")
            .every((r) => r.track_name === "untouched"),
          "2026-11-23 was not reprocessed",
        );
        assert.deepEqual(
          m.audioFeatures.map((r) =>
            `${r.track_id} ${r.run_id} ${r.observed_on} ${r.features_source}/${r.match_method}`
          ),
          [
            "t1 D 2026-11-25 csv/id",
            "t2 B 2026-11-24 csv/name",
            "t4 C 2026-11-24 csv/id",
            "t5 D 2026-11-25 spotify/id",
          ],
        );
        // the week now: A (t1 t2 t3), C (t4 t5), D (t1 t5); run B no longer counts
        const featured = [F1, F2, F4, F5, F1, F5];
        assertWeekly(m.weekly[0], {
          snapshot_days: 3,
          track_days: 7,
          distinct_tracks: 5,
          tracks_with_features: 4,
          feature_coverage: 4 / 5,
          danceability_mean: mean(featured.map((f) => f.danceability)),
          danceability_min: 0.25,
          danceability_max: 1,
          tempo_mean: mean(featured.map((f) => f.tempo)),
          loudness_mean: mean(featured.map((f) => f.loudness)),
        });
      },
    );

    await t.step("--full-refresh rebuilds every model with the same result", async () => {
      const before = await readModels(warehouse);
      await transform(config, "2026-11-25", { "full-refresh": true });
      const after = await readModels(warehouse);
      assert.ok(
        after.topTracks.every((r) => r.track_name === `Track ${r.track_id}`),
        "rebuilt from raw",
      );
      const strip = (rows: Record<string, unknown>[]) =>
        rows.map(({ track_name: _, ...rest }) => rest);
      assert.deepEqual(strip(after.topTracks), strip(before.topTracks));
      assert.deepEqual(after.audioFeatures, before.audioFeatures);
      assert.deepEqual(after.weekly, before.weekly);
    });

    await t.step(
      "bad rows (danceability 1.7, a null track_id) fail the step naming the tests",
      async () => {
        await loadRaw(warehouse, [
          {
            snapshot_date: "2026-11-26",
            rank: 1,
            track_id: "t6",
            features: { ...F1, danceability: 1.7 },
            run_id: "E",
            loaded_at: "2026-11-26 00:05:00+00",
          },
          {
            snapshot_date: "2026-11-26",
            rank: 2,
            track_id: null,
            run_id: "E",
            loaded_at: "2026-11-26 00:05:00+00",
          },
        ]);
        const run = await createRun(config, { date: "2026-11-26" });
        const lines: string[] = [];
        const error = await runStep("transform", { config, run, log: testLogger(lines), flags: {} })
          .then(() => assert.fail("transform succeeded on bad rows"), (e: unknown) => e);
        assert.ok(error instanceof DbtError, String(error));
        assert.match(
          error.message,
          /test accepted_range_stg_spotify__top_tracks_danceability__1__0 failed \(1 failing row\)/,
        );
        assert.match(
          error.message,
          /test not_null_stg_spotify__top_tracks_track_id failed \(1 failing row\)/,
        );
        // downstream of stg_spotify__top_tracks: the owner's three, and the features of plays
        assert.match(error.message, /5 models skipped/);
        assert.equal(run.manifest.steps.transform?.exit_code, ExitCode.dbt);
        const saved = JSON.parse(
          await Deno.readTextFile(run.path("transform", "run_results.json")),
        );
        assert.equal(saved.tests.failed, 2);
      },
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dbt parse for the snowflake target: profile renders from SNOWFLAKE_* settings, models go to DBT_SCHEMA, the source to SNOWFLAKE_SCHEMA", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dbt_sf_test_" });
  try {
    const local = loadConfig({ env: { PIPELINE_DATA_DIR: dataDir }, envFile: false });
    const keyFile = join(dataDir, "rsa_key.p8");
    await Deno.writeTextFile(keyFile, "not parsed by dbt parse\n");
    const config: Config = {
      ...local,
      profile: "prod",
      warehouse: {
        kind: "snowflake",
        account: "myorg-acct",
        user: "PIPELINE",
        authenticator: "SNOWFLAKE_JWT",
        privateKeyPath: keyFile,
        privateKeyPassphrase: "secret-passphrase",
        role: "SPOTIFY_PIPELINE",
        warehouse: "SPOTIFY_WH",
        database: "SPOTIFY",
        schema: "RAW",
        stage: "SPOTIFY_S3_STAGE",
        fileFormat: "SPOTIFY_PARQUET",
        storageIntegration: "SPOTIFY_S3_INTEGRATION",
        timeoutSeconds: 30,
      },
      dbt: { ...local.dbt, target: "snowflake", schema: "ANALYTICS" },
    };
    const lines: string[] = [];
    const log = testLogger(lines);
    const venv = await ensureVenv(config.dbt, {
      log,
      locks: TEST_VENV_LOCKS.map((lock) => join(PROJECT_ROOT, lock)),
    });
    const summary = await runDbt(config, { log, venv, command: "parse" });
    assert.equal(summary.exit_code, 0, lines.join("\n"));
    assert.ok(!lines.join("\n").includes("secret-passphrase"));

    const manifest = JSON.parse(
      await Deno.readTextFile(join(dataDir, "dbt", "target", "manifest.json")),
    );
    assert.equal(manifest.metadata.adapter_type, "snowflake");
    const nodes = Object.values(manifest.nodes) as {
      resource_type: string;
      name: string;
      database: string;
      schema: string;
    }[];
    const models = nodes.filter((n) => n.resource_type === "model");
    assert.deepEqual(models.map((n) => n.name).sort(), [
      "audio_features",
      "daily_listening",
      "inter_top_weekly_audio_features",
      "inter_track_audio_features",
      "inter_weekly_listening_audio_features",
      "plays",
      "stg_spotify__recently_played",
      "stg_spotify__streaming_history",
      "stg_spotify__top_artists",
      "stg_spotify__top_tracks",
      "top_artists",
      "top_tracks",
    ]);
    assert.ok(models.every((n) => n.database === "SPOTIFY" && n.schema === "ANALYTICS"));
    const source = manifest.sources["source.spotify_pipeline.spotify.top_tracks"];
    assert.equal(
      `${source.database}.${source.schema}.${source.identifier}`,
      "SPOTIFY.RAW.top_tracks",
    );
    assert.equal(source.loaded_at_field, "loaded_at");
    assert.equal(source.freshness.warn_after.count, 36);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** One raw play (what the load step appends to raw.recently_played). */
interface RawPlay {
  user: string;
  at: string;
  track: string;
  ms: number;
  artists: string[];
  danceability?: number;
  file: string;
  loadedAt: string;
}

async function loadPlays(path: string, plays: RawPlay[]): Promise<void> {
  await createRawTables(path);
  const columns = [
    "user_id",
    "played_at",
    "track_id",
    "track_name",
    "artist_ids",
    "artist_names",
    "duration_ms",
    "explicit",
    "fetched_at",
    "run_id",
    "danceability",
    "features_source",
    "match_method",
    "source_file",
    "loaded_at",
  ];
  const values = plays.map((p) =>
    `(${
      [
        p.user,
        p.at,
        p.track,
        `Track ${p.track}`,
        p.artists,
        p.artists.map((a) => `Artist ${a}`),
        p.ms,
        false,
        p.loadedAt,
        `run_${p.file}`,
        p.danceability ?? null,
        p.danceability === undefined ? "none" : "csv",
        p.danceability === undefined ? "none" : "id",
        p.file,
        p.loadedAt,
      ].map(lit).join(", ")
    })`
  );
  await withDuckDb(path, async (sql) => {
    await sql(
      `insert into raw.recently_played (${columns.join(", ")}) values ${values.join(",\n")}`,
    );
  });
}

Deno.test("dbt build: plays deduplicated per user, daily listening and play-weighted weekly means as computed by hand; models from before user_id are rebuilt", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dbt_listening_test_" });
  const config = loadConfig({ env: { PIPELINE_DATA_DIR: dataDir }, envFile: false });
  const warehouse = config.warehouse.kind === "duckdb" ? config.warehouse.path : "";
  const L1 = "2026-11-24 00:15:00+00";
  const L2 = "2026-11-24 09:30:00+00";
  const plays: RawPlay[] = [
    {
      user: "u1",
      at: "2026-11-23 23:50:00+00",
      track: "t1",
      ms: 180_000,
      artists: ["a1"],
      danceability: 0.5,
      file: "f1",
      loadedAt: L1,
    },
    {
      user: "u1",
      at: "2026-11-24 00:10:00+00",
      track: "t2",
      ms: 240_000,
      artists: ["a1", "a2"],
      danceability: 0.25,
      file: "f1",
      loadedAt: L1,
    },
    // the same play again, in the next poll's overlapping window
    {
      user: "u1",
      at: "2026-11-24 00:10:00+00",
      track: "t2",
      ms: 240_000,
      artists: ["a1", "a2"],
      danceability: 0.25,
      file: "f2",
      loadedAt: L2,
    },
    {
      user: "u1",
      at: "2026-11-24 00:20:00+00",
      track: "t1",
      ms: 180_000,
      artists: ["a1"],
      danceability: 0.5,
      file: "f2",
      loadedAt: L2,
    },
    {
      user: "u1",
      at: "2026-11-24 09:00:00+00",
      track: "t3",
      ms: 120_000,
      artists: ["a3"],
      file: "f2",
      loadedAt: L2,
    },
    // another user's identical play stays another row
    {
      user: "u2",
      at: "2026-11-23 23:50:00+00",
      track: "t1",
      ms: 180_000,
      artists: ["a1"],
      danceability: 0.5,
      file: "f3",
      loadedAt: L2,
    },
  ];
  try {
    await loadPlays(warehouse, plays);
    // a model built before user_id existed (on_schema_change: fail would stop the build)
    await withDuckDb(warehouse, async (sql) => {
      await sql(
        "create table main.top_tracks as select date '2026-11-01' as snapshot_date, 1 as rank",
      );
    });
    const { outcome } = await transform(config, "2026-11-24");
    assert.equal(outcome.counts?.tests_failed, 0);

    await withDuckDb(warehouse, async (sql) => {
      const columns = await sql(
        "select column_name from information_schema.columns where table_schema = 'main' and table_name = 'top_tracks'",
      );
      assert.ok(
        columns.some((c) => c.column_name === "user_id"),
        "top_tracks rebuilt with user_id",
      );
      assert.equal(Number((await sql("select count(*) as n from main.top_tracks"))[0]!.n), 0);

      const p = await sql(
        `select user_id, strftime(played_at at time zone 'UTC', '%Y-%m-%d %H:%M') as at, track_id,
                source_file, source
         from main.plays order by user_id, played_at`,
      );
      assert.deepEqual(p.map((r) => `${r.user_id} ${r.at} ${r.track_id} ${r.source_file}`), [
        "u1 2026-11-23 23:50 t1 f1",
        "u1 2026-11-24 00:10 t2 f1",
        "u1 2026-11-24 00:20 t1 f2",
        "u1 2026-11-24 09:00 t3 f2",
        "u2 2026-11-23 23:50 t1 f3",
      ]);
      assert.ok(p.every((r) => r.source === "recently_played"));

      const daily = await sql(
        `select user_id, cast(play_date as varchar) as d, plays, minutes, distinct_tracks,
                distinct_artists
         from main.daily_listening order by user_id, play_date`,
      );
      assert.deepEqual(
        daily.map((r) =>
          [r.user_id, r.d, r.plays, r.minutes, r.distinct_tracks, r.distinct_artists].map(String)
            .join(" ")
        ),
        [
          "u1 2026-11-23 1 3 1 1",
          // UTC days: 00:10 and 00:20 belong to the 24th; 4 + 3 + 2 minutes; artists a1 a2 a3
          "u1 2026-11-24 3 9 3 3",
          "u2 2026-11-23 1 3 1 1",
        ],
      );

      const weekly = await sql(
        `select user_id, cast(week_start as varchar) as w, plays, plays_with_features,
                feature_coverage, distinct_tracks, danceability_mean
         from main.inter_weekly_listening_audio_features order by user_id`,
      );
      assert.equal(weekly.length, 2);
      assert.deepEqual(
        weekly.map((r) =>
          [r.user_id, r.w, r.plays, r.plays_with_features, r.distinct_tracks].map(String)
        ),
        [["u1", "2026-11-23", "4", "3", "3"], ["u2", "2026-11-23", "1", "1", "1"]],
      );
      // weighted by plays: t1 twice (0.5), t2 once (0.25) — not the mean of the tracks (0.375)
      assert.ok(Math.abs(Number(weekly[0]!.danceability_mean) - (0.5 + 0.25 + 0.5) / 3) < 1e-12);
      assert.equal(Number(weekly[0]!.feature_coverage), 0.75);
    });

    // the next run with nothing new changes no model's row count
    const before = await withDuckDb(warehouse, (sql) => modelCounts(sql));
    await transform(config, "2026-11-24");
    assert.deepEqual(await withDuckDb(warehouse, (sql) => modelCounts(sql)), before);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

async function modelCounts(
  sql: (text: string) => Promise<Record<string, unknown>[]>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (
    const m of [
      "top_tracks",
      "audio_features",
      "inter_top_weekly_audio_features",
      "plays",
      "daily_listening",
      "top_artists",
      "inter_weekly_listening_audio_features",
    ]
  ) {
    out[m] = Number((await sql(`select count(*) as n from main.${m}`))[0]!.n);
  }
  return out;
}
