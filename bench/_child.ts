/**
 * One measured action of the benchmark, run in its own process (`bench/main.ts` spawns it) so
 * that each measurement starts cold in memory and its peak RSS (`VmHWM`) is its own. Prints one
 * JSON line: the action's time (`ms`, measured around the action itself, after imports), the
 * process's peak RSS (`rss_kb`) and what the action found.
 *
 * Actions: `enrich` (the CSV provider through the enrichment engine, with a cache folder),
 * `scan` (the catalog reader alone), `duckdb` (read_csv + join of the ids: the reference),
 * `parquet` (write N top-tracks rows), `import` (`deno task import` of a folder, in a fresh data
 * folder), `duckdb_json` (DuckDB `read_json` of the same files to Parquet: the reference),
 * `report` (the report on a generated warehouse), `noop` (a baseline process).
 * @module
 */

import { join } from "node:path";
import { createCsvProvider } from "../lib/features/csv_provider.ts";
import { enrichRows } from "../lib/features/enrich.ts";
import { scanCatalog } from "../lib/features/csv_catalog.ts";
import { Logger, type LogRecord } from "../lib/log.ts";
import type { EnrichedRow, FetchOutput } from "../lib/types.ts";

/** Peak and current RSS of this process, in kB. */
export function memory(): { rss_kb: number; hwm_kb: number } {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss_kb: kb("VmRSS"), hwm_kb: kb("VmHWM") };
}

type Args = Record<string, string | number | boolean>;

async function topTracks(path: string): Promise<FetchOutput> {
  return JSON.parse(await Deno.readTextFile(path)) as FetchOutput;
}

async function enrich(args: Args) {
  const top = await topTracks(String(args.top));
  const fresh = args.fresh === true;
  const cacheDir = fresh ? await Deno.makeTempDir({ prefix: "bench_cache_" }) : String(args.cache);
  const records: LogRecord[] = [];
  const log = new Logger({ format: "json", level: "debug", sink: (r) => records.push(r) });
  try {
    const provider = createCsvProvider({ paths: [String(args.csv)], cacheDir });
    const started = performance.now();
    const { coverage } = await enrichRows(top.rows, { providers: [provider], log });
    const ms = performance.now() - started;
    const read = records.find((r) => r.msg.startsWith("Read audio-features catalog"));
    return {
      ms,
      cache: read?.cache,
      reader: read?.reader,
      matched: coverage.matched,
      by_id: coverage.by_id,
      by_name: coverage.by_name,
      catalog_rows: coverage.providers[0]?.catalogs?.[0]?.rows,
    };
  } finally {
    if (fresh) await Deno.remove(cacheDir, { recursive: true });
  }
}

async function scan(args: Args) {
  const top = await topTracks(String(args.top));
  const ids = top.rows.map((r) => r.track_id);
  const names = top.rows.map((r) => ({ title: r.track_name, artist: r.artist_names[0]! }));
  const started = performance.now();
  const found = await scanCatalog(String(args.csv), {
    ids,
    names,
    ...(args.reader === "csv-parse" ? { reader: "csv-parse" as const } : {}),
    ...(args.segments === 1 ? { segments: 1 as const } : {}),
  });
  const ms = performance.now() - started;
  return {
    ms,
    bytes: found.stats.bytes,
    mb_per_s: found.stats.bytes / 1e6 / (ms / 1000),
    reader: found.reader,
    segments: found.segments,
    by_id: found.byId.size,
    rows: found.stats.rows,
  };
}

async function duckdb(args: Args) {
  const top = await topTracks(String(args.top));
  const loadStarted = performance.now();
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const connection = await db.connect();
  const loadMs = performance.now() - loadStarted;
  const ids = top.rows.map((r) => `('${r.track_id.replaceAll("'", "''")}')`).join(",");
  await connection.run(`create temp table wanted(id varchar); insert into wanted values ${ids}`);
  const csv = String(args.csv).replaceAll("'", "''");
  const started = performance.now();
  const reader = await connection.runAndReadAll(
    `select c.track_id, c.artists, c.track_name, c.danceability, c.energy, c.key, c.loudness,
       c.mode, c.speechiness, c.acousticness, c.instrumentalness, c.liveness, c.valence, c.tempo,
       c.time_signature
     from read_csv('${csv}', header = true) c join wanted w on c.track_id = w.id`,
  );
  const ms = performance.now() - started;
  const rows = reader.getRows();
  connection.closeSync();
  db.closeSync();
  return { ms, load_ms: loadMs, rows: rows.length, ids: new Set(rows.map((r) => r[0])).size };
}

/** Deterministic top-tracks rows: `rows` of them over consecutive days (a backfill). */
function backfillRows(count: number): EnrichedRow[] {
  const out: EnrichedRow[] = [];
  const day0 = Date.UTC(2020, 0, 1);
  for (let i = 0; i < count; i++) {
    const day = Math.floor(i / 150);
    const date = new Date(day0 + day * 86_400_000).toISOString().slice(0, 10);
    const k = i % 150;
    const range = (["short_term", "medium_term", "long_term"] as const)[Math.floor(k / 50)]!;
    const track = (i * 7919) % 40_000;
    const matched = track % 5 !== 0;
    out.push({
      user_id: "bench",
      snapshot_date: date,
      time_range: range,
      rank: (k % 50) + 1,
      track_id: `t${String(track).padStart(21, "0")}`,
      track_name: `Track ${track}`,
      artist_ids: [`a${String(track % 3000).padStart(21, "0")}`],
      artist_names: [`Artist ${track % 3000}`],
      album_id: `b${String(track % 9000).padStart(21, "0")}`,
      album_name: `Album ${track % 9000}`,
      album_release_date: "2019-05-17",
      duration_ms: 180_000 + (track % 120_000),
      explicit: track % 11 === 0,
      popularity: null,
      isrc: null,
      fetched_at: `${date}T06:00:00.000Z`,
      run_id: `${date.replaceAll("-", "")}T060000Z-0001`,
      danceability: matched ? (track % 1000) / 1000 : null,
      energy: matched ? (track % 997) / 997 : null,
      key: matched ? track % 12 : null,
      loudness: matched ? -(track % 30) - 0.5 : null,
      mode: matched ? track % 2 : null,
      speechiness: matched ? (track % 89) / 890 : null,
      acousticness: matched ? (track % 101) / 101 : null,
      instrumentalness: matched ? (track % 13) / 1300 : null,
      liveness: matched ? (track % 71) / 142 : null,
      valence: matched ? (track % 83) / 83 : null,
      tempo: matched ? 60 + (track % 140) : null,
      time_signature: matched ? 4 : null,
      features_source: matched ? "csv" : "none",
      match_method: matched ? "id" : "none",
    });
  }
  return out;
}

async function parquet(args: Args) {
  const { writeTopTracksParquetFile } = await import("../lib/parquet/writer.ts");
  const rows = backfillRows(Number(args.rows));
  const before = memory();
  const dir = await Deno.makeTempDir({ prefix: "bench_parquet_" });
  try {
    const started = performance.now();
    const result = await writeTopTracksParquetFile(join(dir, "top_tracks.parquet"), rows);
    const ms = performance.now() - started;
    return {
      ms,
      rows: result.rows,
      bytes: result.bytes,
      rows_per_s: result.rows / (ms / 1000),
      rss_before_kb: before.rss_kb,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `deno task import <dir>` in this process (timed after the imports, like the other actions). */
async function importHistory(args: Args) {
  const dataDir = await Deno.makeTempDir({ prefix: "bench_import_" });
  Deno.env.set("PIPELINE_DATA_DIR", dataDir);
  Deno.env.set("PIPELINE_PROFILE", "local");
  Deno.env.set("SPOTIFY_SOURCE", "sample");
  Deno.env.set("FEATURES_PROVIDERS", "csv");
  Deno.env.set("PIPELINE_LOG_LEVEL", "warn");
  const { main } = await import("../scripts/import.ts");
  const { loadConfig } = await import("../lib/config.ts");
  const { openRun } = await import("../lib/run.ts");
  try {
    const started = performance.now();
    const code = await main(["--user", "bench", String(args.dir)]);
    const ms = performance.now() - started;
    if (code !== 0) throw new Error(`import exited ${code}`);
    const run = await openRun(loadConfig({ env: { PIPELINE_DATA_DIR: dataDir }, envFile: false }));
    const steps = Object.fromEntries(
      Object.entries(run.manifest.steps).map(([k, v]) => [k, v?.duration_ms]),
    );
    return {
      ms,
      rows: run.manifest.steps.load?.counts?.rows_loaded,
      read: run.manifest.steps.import?.counts?.rows_read,
      steps,
    };
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** DuckDB's `read_json` of the same files to one Parquet file (zstd): the reference. */
async function duckdbJson(args: Args) {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const dir = await Deno.makeTempDir({ prefix: "bench_duckdb_json_" });
  const db = await DuckDBInstance.create(":memory:");
  const con = await db.connect();
  try {
    const out = join(dir, "history.parquet");
    const started = performance.now();
    await con.run(
      `COPY (SELECT * FROM read_json('${
        String(args.dir)
      }/*.json', format = 'array')) TO '${out}' (FORMAT parquet, COMPRESSION zstd)`,
    );
    const ms = performance.now() - started;
    const rows = (await con.runAndReadAll(`SELECT count(*)::INTEGER FROM '${out}'`)).getRowsJS();
    return { ms, rows: Number(rows[0]?.[0]) };
  } finally {
    con.closeSync();
    db.closeSync();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The report (`buildReport` + publish) on a given warehouse, timed after the imports. */
async function report(args: Args) {
  const dataDir = await Deno.makeTempDir({ prefix: "bench_report_" });
  const { loadConfig } = await import("../lib/config.ts");
  const { buildReport, publishReport, reportPath } = await import("../lib/report/build.ts");
  try {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dataDir, DUCKDB_PATH: String(args.warehouse) },
      envFile: false,
    });
    const log = new Logger({ level: "warn", sink: () => {} });
    const started = performance.now();
    const built = await buildReport(config, { log });
    await publishReport(reportPath(config), built.html);
    const ms = performance.now() - started;
    return { ms, bytes: built.html.length, charts: built.charts_drawn, empty: built.charts_empty };
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

const ACTIONS: Record<string, (args: Args) => Promise<Record<string, unknown>>> = {
  report,
  import: importHistory,
  duckdb_json: duckdbJson,
  enrich,
  scan,
  duckdb,
  parquet,
  noop: () => Promise.resolve({ ms: 0 }),
};

if (import.meta.main) {
  const [action, json] = Deno.args;
  const run = ACTIONS[action ?? ""];
  if (!run) {
    console.error(`usage: _child.ts <${Object.keys(ACTIONS).join("|")}> '<json args>'`);
    Deno.exit(2);
  }
  const result = await run(JSON.parse(json ?? "{}") as Args);
  console.log(JSON.stringify({ ...result, ...memory() }));
}
