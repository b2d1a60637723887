/**
 * Loading into the local DuckDB warehouse, mirroring Snowflake's stage + COPY INTO: rows land in
 * the append-only `raw.top_tracks`; the same file again loads nothing (SKIPPED); a changed file
 * loads again; one transaction per load; a DuckDB file held by another process gives a clear
 * StorageError; Python's duckdb (dbt-duckdb's) reads the file the Node binding wrote.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DuckDBInstance } from "@duckdb/node-api";
import { query } from "./_duckdb.ts";
import { type Config, loadConfig } from "../lib/config.ts";
import { ConfigError, StorageError } from "../lib/errors.ts";
import { Logger } from "../lib/log.ts";
import { createRun, type Run } from "../lib/run.ts";
import { runStep } from "../lib/steps.ts";
import { runLoadSetup } from "../lib/steps/load.ts";
import { FolderStore } from "../lib/store/folder.ts";
import { openDuckDbWarehouse, RAW_COLUMNS } from "../lib/warehouse/duckdb.ts";
import { openWarehouse } from "../lib/warehouse/open.ts";
import type { LoadReport } from "../lib/warehouse/warehouse.ts";
import { encodeTopTracksParquet } from "../lib/parquet/writer.ts";
import {
  sampleEnrichedRows,
  sampleEnrichOutput,
  type SampleRowsOptions,
} from "./_enriched_rows.ts";

const KEY = "top_tracks/user_id=sample/snapshot_date=2026-01-31/top_tracks.parquet";
const PYTHON = fileURLToPath(new URL("../.venv/bin/python", import.meta.url));
const quiet = () => new Logger({ level: "error", sink: () => {} });

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "duckdb_load_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function localConfig(dir: string): Config {
  return loadConfig({ env: { PIPELINE_DATA_DIR: dir }, envFile: false });
}

/** One daily run through write → upload → load, from enrich's output for the given rows. */
async function dailyRun(config: Config, rows: SampleRowsOptions & { edit?: boolean } = {}) {
  const log = quiet();
  const run = await createRun(config, { date: "2026-01-31", streams: ["top_tracks"] });
  const output = sampleEnrichOutput({ ...rows, runId: run.id });
  if (rows.edit) output.rows[0]!.danceability = 0.999;
  await run.writeJson("enrich", "tracks.json", output);
  for (const step of ["write", "upload", "load"] as const) {
    await runStep(step, { config, run, log, flags: {} });
  }
  return { run, report: (await run.readJson("load", "report.json")) as LoadReport };
}

async function loadCount(path: string): Promise<number> {
  const [row] = await query(path, "SELECT count(*)::INTEGER AS n FROM raw.top_tracks");
  return Number(row?.n);
}

Deno.test("load step puts the uploaded file's rows into raw.top_tracks with source_file and loaded_at", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    const { run, report } = await dailyRun(config);
    assert.deepEqual(report, {
      warehouse: "duckdb",
      table: "raw.top_tracks",
      files_loaded: 1,
      files_skipped: 0,
      rows_loaded: 21,
      files: [
        { file: KEY, table: "raw.top_tracks", status: "LOADED", rows_parsed: 21, rows_loaded: 21 },
      ],
    });
    const path = join(dir, "warehouse.duckdb");
    const columns = await query(
      path,
      `SELECT column_name, data_type FROM information_schema.columns
       WHERE table_schema = 'raw' AND table_name = 'top_tracks' ORDER BY ordinal_position`,
    );
    assert.deepEqual(
      columns.map((c) => [c.column_name, c.data_type]),
      RAW_COLUMNS.map(([n, t]) => [n, t]),
    );
    assert.deepEqual(RAW_COLUMNS.slice(-2).map(([n]) => n), ["source_file", "loaded_at"]);
    const rows = await query(
      path,
      `SELECT rank, track_id, artist_names, danceability, popularity, run_id, source_file,
              strftime(snapshot_date, '%Y-%m-%d') AS d, loaded_at IS NOT NULL AS has_loaded_at
       FROM raw.top_tracks ORDER BY rank`,
    );
    const want = sampleEnrichedRows();
    assert.equal(rows.length, 21);
    rows.forEach((r, i) => {
      assert.equal(r.rank, want[i]!.rank);
      assert.equal(r.track_id, want[i]!.track_id);
      assert.deepEqual(r.artist_names, want[i]!.artist_names);
      assert.equal(r.danceability, want[i]!.danceability);
      assert.equal(r.popularity, want[i]!.popularity);
      assert.equal(r.run_id, run.id);
      assert.equal(r.source_file, KEY);
      assert.equal(r.d, "2026-01-31");
      assert.equal(r.has_loaded_at, true);
    });
    const manifest = run.manifest.steps.load;
    assert.equal(manifest?.status, "succeeded");
    assert.deepEqual(manifest?.counts, { files_loaded: 1, files_skipped: 0, rows_loaded: 21 });
    assert.match(
      String(manifest?.summary?.text),
      /21 rows from 1 file\(s\) into raw\.top_tracks in /,
    );
    assert.ok(String(manifest?.summary?.text).includes(path));
  });
});

Deno.test("a second run of the day with the same data loads nothing: upload skipped, file SKIPPED", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    await dailyRun(config, { fetchedAt: "2026-01-31T06:00:00Z" });
    const { run, report } = await dailyRun(config, { fetchedAt: "2026-01-31T18:00:00Z" });
    assert.deepEqual(report.files, [
      { file: KEY, table: "raw.top_tracks", status: "SKIPPED", rows_parsed: 0, rows_loaded: 0 },
    ]);
    assert.equal(report.files_skipped, 1);
    assert.equal(report.rows_loaded, 0);
    assert.equal(await loadCount(join(dir, "warehouse.duckdb")), 21);
    assert.match(String(run.manifest.steps.load?.summary?.text), /nothing new/);
    const [history] = await query(
      join(dir, "warehouse.duckdb"),
      "SELECT count(*)::INTEGER AS n FROM raw._load_history",
    );
    assert.equal(history?.n, 1);
  });
});

Deno.test("the very same file loads once, even twice in one load (load history by uri + sha256)", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    const store = new FolderStore(join(dir, "lake"));
    const parquet = await encodeTopTracksParquet(sampleEnrichedRows());
    const receipt = await store.put(KEY, parquet.data, { sha256: parquet.sha256 });
    const file = { ...receipt, stream: "top_tracks" as const, run_id: "20260131T060000Z-ab12" };
    const wh = await openWarehouse(config, { log: quiet() });
    try {
      const first = await wh.load([file, file]);
      assert.deepEqual(first.files.map((f) => f.status), ["LOADED", "SKIPPED"]);
      assert.equal(first.rows_loaded, 21);
      const second = await wh.load([file]);
      assert.deepEqual(second.files, [
        { file: KEY, table: "raw.top_tracks", status: "SKIPPED", rows_parsed: 0, rows_loaded: 0 },
      ]);
    } finally {
      await wh.close();
    }
    assert.equal(
      await loadCount(config.warehouse.kind === "duckdb" ? config.warehouse.path : ""),
      21,
    );
  });
});

Deno.test("a changed file (new data, new sha256) loads again; raw stays append-only", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    const first = await dailyRun(config);
    const second = await dailyRun(config, { edit: true });
    assert.equal(second.report.files_loaded, 1);
    assert.equal(second.report.rows_loaded, 21);
    const path = join(dir, "warehouse.duckdb");
    assert.equal(await loadCount(path), 42);
    const byRun = await query(
      path,
      `SELECT run_id, count(*)::INTEGER AS n, count(DISTINCT loaded_at)::INTEGER AS loads,
              max(danceability) AS top
       FROM raw.top_tracks GROUP BY run_id ORDER BY min(loaded_at)`,
    );
    assert.deepEqual(byRun.map((r) => [r.run_id, r.n, r.loads]), [
      [first.run.id, 21, 1],
      [second.run.id, 21, 1],
    ]);
    assert.equal(byRun[1]?.top, 0.999);
  });
});

Deno.test("a failing load rolls back: no rows and no history from that load", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(join(dir, "lake"));
    const good = await encodeTopTracksParquet(sampleEnrichedRows());
    const goodReceipt = await store.put(KEY, good.data);
    const badKey = "top_tracks/snapshot_date=2026-02-01/top_tracks.parquet";
    const badReceipt = await store.put(badKey, new TextEncoder().encode("not parquet at all"));
    const wh = await openDuckDbWarehouse(
      { kind: "duckdb", path: join(dir, "warehouse.duckdb") },
      { log: quiet() },
    );
    try {
      await assert.rejects(
        () =>
          wh.load([
            { ...goodReceipt, stream: "top_tracks", run_id: "r" },
            { ...badReceipt, stream: "top_tracks", run_id: "r" },
          ]),
        (e: Error) =>
          e instanceof StorageError && e.message.includes(badReceipt.uri) &&
          e.message.includes("raw.top_tracks"),
      );
      // a file changed since upload (sha256 differs from the receipt) is refused too
      await assert.rejects(
        () =>
          wh.load([{ ...goodReceipt, stream: "top_tracks", sha256: "0".repeat(64), run_id: "r" }]),
        /changed since upload/,
      );
      await assert.rejects(
        () =>
          wh.load([{
            ...goodReceipt,
            stream: "top_tracks",
            uri: "s3://bucket/" + KEY,
            run_id: "r",
          }]),
        /loads files of the lake folder \(file:\/\/\.\.\.\), not s3:\/\/bucket/,
      );
      const report = await wh.load([{ ...goodReceipt, stream: "top_tracks", run_id: "r" }]);
      assert.equal(report.files_loaded, 1, "the good file was not recorded by the failed load");
    } finally {
      await wh.close();
    }
    assert.equal(await loadCount(join(dir, "warehouse.duckdb")), 21);
  });
});

Deno.test("a warehouse file locked by another process is a StorageError naming the file and holder", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "warehouse.duckdb");
    // A second process (deno) opens the file for writing and holds it until its stdin closes.
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { DuckDBInstance } from "@duckdb/node-api";
         const db = await DuckDBInstance.create(${JSON.stringify(path)});
         console.log("ready");
         for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
         db.closeSync();`,
      ],
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const { value } = await reader.read();
      assert.match(String(value), /ready/);
      const config = localConfig(dir);
      await assert.rejects(
        () => openWarehouse(config, { log: quiet() }),
        (e: Error) =>
          e instanceof StorageError && e.kind === "storage" &&
          e.message.includes(`The DuckDB warehouse ${path} is locked by`) &&
          e.message.includes(`(PID ${holder.pid})`),
      );
    } finally {
      await holder.stdin.close();
      await reader.cancel();
      await holder.status;
    }
    // released: it opens now
    const wh = await openWarehouse(localConfig(dir), { log: quiet() });
    await wh.close();
  });
});

Deno.test({
  name: "Python's duckdb (dbt-duckdb's) reads the warehouse file the Node binding wrote",
  ignore: !existsSync(PYTHON),
  fn: async () => {
    await withTempDir(async (dir) => {
      const config = localConfig(dir);
      await dailyRun(config);
      const path = join(dir, "warehouse.duckdb");
      const script = `
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
n, tracks, artists = con.execute(
    "select count(*), count(distinct track_id), max(len(artist_names)) from raw.top_tracks").fetchone()
print(json.dumps({"version": duckdb.__version__, "n": n, "tracks": tracks, "artists": artists}))
`;
      const out = await new Deno.Command(PYTHON, { args: ["-c", script, path] }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const result = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.equal(result.n, 21);
      assert.equal(result.tracks, 21);
      assert.ok(result.artists >= 2);
      // the Node binding and the Python package are the same DuckDB release
      const nodeVersion = (await query(path, "SELECT version() AS v"))[0]?.v;
      assert.equal(`v${result.version}`, nodeVersion);
    });
  },
});

Deno.test("load --setup is for prod: in the local profile it is a ConfigError saying so", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    await assert.rejects(
      () => runLoadSetup(config, { apply: false, log: quiet() }),
      (e: Error) => e instanceof ConfigError && /for the prod profile/.test(e.message),
    );
    // the setup is not part of a run: a load step given --setup/--apply refuses them
    const run: Run = await createRun(config, { date: "2026-01-31" });
    for (const flags of [{ setup: true }, { apply: true }, { setup: true, apply: true }]) {
      await assert.rejects(
        () => runStep("load", { config, run, log: quiet(), flags }),
        (e: Error) => e instanceof ConfigError && /not part of a run/.test(e.message),
      );
    }
    // `deno task load --apply` alone is refused before any run is opened or marked
    const before = JSON.parse(await Deno.readTextFile(join(run.dir, "manifest.json")));
    const env = { PIPELINE_DATA_DIR: dir, PIPELINE_LOG_FORMAT: "json" };
    const command = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fileURLToPath(new URL("../scripts/load.ts", import.meta.url)), "--apply"],
      env,
      stdout: "piped",
      stderr: "piped",
    });
    const out = await command.output();
    assert.equal(out.code, 2);
    assert.match(new TextDecoder().decode(out.stderr), /--apply only goes with --setup/);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(run.dir, "manifest.json"))), before);
  });
});

Deno.test("load step without an upload receipt is a ConfigError naming the missing step", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    const run = await createRun(config, { date: "2026-01-31" });
    await assert.rejects(
      () => runStep("load", { config, run, log: quiet(), flags: {} }),
      (e: Error) => e instanceof ConfigError && e.message.includes("no upload output"),
    );
  });
});

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("a raw table from before user_id gains it on the next load, in the load's transaction; old rows keep every value and get the migration user; again: nothing changes", async () => {
  await withTempDir(async (dir) => {
    const config = localConfig(dir);
    const path = join(dir, "warehouse.duckdb");
    // raw.top_tracks as an earlier version created it (no user_id), with a day already loaded
    const old = RAW_COLUMNS.filter(([name]) => name !== "user_id");
    const db = await DuckDBInstance.create(path);
    const con = await db.connect();
    try {
      await con.run("CREATE SCHEMA raw");
      await con.run(
        `CREATE TABLE raw.top_tracks (${old.map(([n, t]) => `"${n}" ${t}`).join(", ")})`,
      );
      await con.run(
        `INSERT INTO raw.top_tracks (snapshot_date, time_range, rank, track_id, track_name,
           artist_ids, artist_names, duration_ms, explicit, fetched_at, run_id, features_source,
           match_method, source_file, loaded_at)
         SELECT DATE '2026-01-30', 'short_term', i, 'old' || i, 'Old ' || i, ['a'], ['A'], 1000,
                false, now(), 'old-run', 'none', 'none', 'old.parquet', now()
         FROM range(1, 11) t(i)`,
      );
    } finally {
      con.closeSync();
      db.closeSync();
    }

    const { run, report } = await dailyRun(config);
    assert.deepEqual(report.migrations, [
      'raw.top_tracks: added user_id (10 existing row(s) set to "sample")',
    ]);
    assert.ok(run.manifest.warnings.some((w) => w.startsWith("load migrated raw.top_tracks")));
    const byUser = await query(
      path,
      `SELECT user_id, run_id, count(*)::INTEGER AS n, count(track_name)::INTEGER AS named
       FROM raw.top_tracks GROUP BY ALL ORDER BY run_id`,
    );
    // run ids sort before "old-run"
    assert.deepEqual(byUser.map((r) => [r.user_id, r.run_id === "old-run", r.n, r.named]), [
      ["sample", false, 21, 21],
      ["sample", true, 10, 10],
    ]);

    const again = await dailyRun(config, { edit: true });
    assert.equal(again.report.migrations, undefined, "idempotent: nothing to migrate");
    assert.equal(await loadCount(path), 52);
  });
});
