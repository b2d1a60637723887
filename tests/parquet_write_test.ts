/**
 * Parquet writing: the explicit schema as DuckDB reads it back (types, values, nulls, row count),
 * the content fingerprint (stable across run_id/fetched_at and row order, different when data
 * changes), batched writing, and the write step's hand-off file.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { loadConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/sha256.ts";
import { Logger } from "../lib/log.ts";
import { contentSha256 } from "../lib/parquet/rows.ts";
import { TOP_TRACKS_COLUMNS, topTracksKey } from "../lib/parquet/schema.ts";
import { encodeTopTracksParquet, writeTopTracksParquetFile } from "../lib/parquet/writer.ts";
import { createRun } from "../lib/run.ts";
import { runStep } from "../lib/steps.ts";
import { duckdbType } from "../lib/streams/columns.ts";
import { TOP_TRACKS } from "../lib/streams/top_tracks.ts";
import type { WriteOutput } from "../lib/steps/write.ts";
import type { EnrichedRow } from "../lib/types.ts";
import { sampleEnrichedRows, sampleEnrichOutput, syntheticRows } from "./_enriched_rows.ts";

type Row = Record<string, unknown>;

/** Runs a query on a fresh in-memory DuckDB and returns JSON-shaped rows. */
async function query(sql: string, params: string[] = []): Promise<Row[]> {
  const db = await DuckDBInstance.create(":memory:");
  const con = await db.connect();
  try {
    const reader = await con.runAndReadAll(sql, params);
    return reader.getRowObjectsJson() as Row[];
  } finally {
    con.closeSync();
    db.closeSync();
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "parquet_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeSample(dir: string, rows: EnrichedRow[], name = "t.parquet") {
  const path = join(dir, name);
  const result = await writeTopTracksParquetFile(path, rows);
  return { path, result };
}

Deno.test("written Parquet has the explicit schema: DuckDB reads DATE, TIMESTAMPTZ, DOUBLE, INTEGER, BOOLEAN, VARCHAR[]", async () => {
  await withTempDir(async (dir) => {
    const { path } = await writeSample(dir, sampleEnrichedRows());
    const described = await query("DESCRIBE SELECT * FROM read_parquet($1)", [path]);
    const types = Object.fromEntries(described.map((r) => [r.column_name, r.column_type]));
    assert.deepEqual(Object.keys(types), TOP_TRACKS_COLUMNS.map((c) => c.name));
    assert.equal(types.snapshot_date, "DATE");
    assert.equal(types.fetched_at, "TIMESTAMP WITH TIME ZONE");
    for (const f of ["danceability", "energy", "loudness", "tempo", "valence"]) {
      assert.equal(types[f], "DOUBLE", f);
    }
    for (const i of ["rank", "key", "mode", "time_signature", "popularity", "duration_ms"]) {
      assert.equal(types[i], "INTEGER", i);
    }
    assert.equal(types.explicit, "BOOLEAN");
    assert.equal(types.artist_ids, "VARCHAR[]");
    assert.equal(types.artist_names, "VARCHAR[]");
    for (const s of ["track_id", "time_range", "features_source", "match_method", "run_id"]) {
      assert.equal(types[s], "VARCHAR", s);
    }
    for (const c of TOP_TRACKS_COLUMNS) assert.equal(duckdbType(c), types[c.name], c.name);
    const [meta] = await query(
      "SELECT compression FROM parquet_metadata($1) WHERE path_in_schema = 'track_id'",
      [path],
    );
    assert.equal(meta?.compression, "ZSTD");
  });
});

Deno.test("written Parquet keeps every value and null of the rows, in (time_range, rank) order", async () => {
  await withTempDir(async (dir) => {
    const rows = sampleEnrichedRows({ fetchedAt: "2026-01-31T06:00:01.234567Z" });
    const shuffled = rows.toReversed();
    const { path, result } = await writeSample(dir, shuffled);
    assert.equal(result.rows, 21);
    const back = await query(
      `SELECT *, strftime(snapshot_date, '%Y-%m-%d') AS d, epoch_us(fetched_at) AS us
       FROM read_parquet($1)`,
      [path],
    );
    assert.equal(back.length, rows.length);
    back.forEach((got, i) => {
      const want = rows[i]!;
      assert.equal(got.d, want.snapshot_date);
      assert.equal(got.rank, want.rank);
      assert.equal(got.track_id, want.track_id);
      assert.equal(got.track_name, want.track_name);
      assert.deepEqual(got.artist_ids, want.artist_ids);
      assert.deepEqual(got.artist_names, want.artist_names);
      assert.equal(got.album_name, want.album_name);
      assert.equal(got.duration_ms, want.duration_ms);
      assert.equal(got.explicit, want.explicit);
      assert.equal(got.popularity, want.popularity);
      assert.equal(got.isrc, want.isrc);
      assert.equal(got.features_source, want.features_source);
      assert.equal(got.match_method, want.match_method);
      assert.equal(got.run_id, want.run_id);
      for (const f of ["danceability", "energy", "key", "loudness", "mode", "tempo"] as const) {
        assert.equal(got[f], want[f], `${want.track_id} ${f}`);
      }
      // microseconds kept: 2026-01-31T06:00:01.234567Z
      assert.equal(String(got.us), String(Date.parse("2026-01-31T06:00:01Z") * 1000 + 234567));
    });
    // tracks without features have nulls, not zeros
    const unmatched = back.filter((r) => r.match_method === "none");
    assert.equal(unmatched.length, rows.filter((r) => r.match_method === "none").length);
    assert.ok(unmatched.length >= 5);
    for (const r of unmatched) {
      assert.equal(r.danceability, null);
      assert.equal(r.key, null);
      assert.equal(r.time_signature, null);
    }
    // the 16 assembled tracks have no ISRC: null
    assert.equal(back.filter((r) => r.isrc === null).length, 16);
  });
});

Deno.test("content_sha256 ignores run_id, fetched_at and row order, and is stored in the file", async () => {
  await withTempDir(async (dir) => {
    const a = sampleEnrichedRows({
      runId: "20260131T060000Z-aaaa",
      fetchedAt: "2026-01-31T06:00:00Z",
    });
    const b = sampleEnrichedRows({
      runId: "20260131T180000Z-bbbb",
      fetchedAt: "2026-01-31T18:00:00Z",
    })
      .toReversed()
      .map((r) => Object.fromEntries(Object.entries(r).toReversed()) as EnrichedRow);
    const wa = await writeSample(dir, a, "a.parquet");
    const wb = await writeSample(dir, b, "b.parquet");
    assert.equal(wa.result.contentSha256, wb.result.contentSha256);
    assert.equal(wa.result.contentSha256, contentSha256(TOP_TRACKS, a));
    assert.notEqual(wa.result.sha256, wb.result.sha256, "the files differ (run_id, fetched_at)");
    const kv = await query(
      "SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata($1)",
      [wa.path],
    );
    const meta = Object.fromEntries(kv.map((r) => [r.k, r.v]));
    assert.equal(meta.content_sha256, wa.result.contentSha256);
  });
});

Deno.test("content_sha256 changes when the data changes", () => {
  const base = contentSha256(TOP_TRACKS, sampleEnrichedRows());
  const changed = (edit: (r: EnrichedRow) => void) => {
    const rows = sampleEnrichedRows();
    edit(rows[3]!);
    return contentSha256(TOP_TRACKS, rows);
  };
  assert.notEqual(changed((r) => (r.danceability = 0.123)), base);
  assert.notEqual(changed((r) => (r.popularity = null)), base);
  assert.notEqual(changed((r) => (r.artist_names = [...r.artist_names, "Someone"])), base);
  assert.notEqual(changed((r) => (r.rank = 99)), base);
  assert.notEqual(contentSha256(TOP_TRACKS, sampleEnrichedRows().slice(1)), base);
  assert.notEqual(
    contentSha256(TOP_TRACKS, sampleEnrichedRows({ snapshotDate: "2026-02-01" })),
    base,
  );
});

Deno.test("in-memory and file writers give the same bytes; batches make several row groups", async () => {
  await withTempDir(async (dir) => {
    const rows = syntheticRows(500);
    const inMemory = await encodeTopTracksParquet(rows);
    const { path, result } = await writeSample(dir, rows);
    assert.equal(inMemory.sha256, result.sha256);
    assert.equal(inMemory.bytes, result.bytes);
    assert.equal(await sha256Hex(await Deno.readFile(path)), result.sha256);
    assert.equal(inMemory.sha256, await sha256Hex(inMemory.data));

    const batched = join(dir, "batched.parquet");
    const r2 = await writeTopTracksParquetFile(batched, rows, { batchRows: 64, rowGroupRows: 100 });
    assert.equal(r2.contentSha256, result.contentSha256);
    const [groups] = await query(
      "SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata($1)",
      [batched],
    );
    assert.equal(groups?.n, "5");
    const [diff] = await query(
      `SELECT count(*) AS n FROM (
         SELECT * FROM read_parquet($1) EXCEPT ALL SELECT * FROM read_parquet($2))`,
      [batched, path],
    );
    assert.equal(diff?.n, "0");
    const [count] = await query("SELECT count(*) AS n FROM read_parquet($1)", [batched]);
    assert.equal(count?.n, "500");
  });
});

Deno.test("no rows still makes a valid Parquet file with the schema", async () => {
  await withTempDir(async (dir) => {
    const { path, result } = await writeSample(dir, []);
    assert.equal(result.rows, 0);
    const [count] = await query("SELECT count(*) AS n FROM read_parquet($1)", [path]);
    assert.equal(count?.n, "0");
    const described = await query("DESCRIBE SELECT * FROM read_parquet($1)", [path]);
    assert.equal(described.length, TOP_TRACKS_COLUMNS.length);
  });
});

Deno.test("a row that does not fit the schema is rejected, naming the row and column", async () => {
  await withTempDir(async (dir) => {
    const rows = sampleEnrichedRows();
    (rows[2] as unknown as Record<string, unknown>).danceability = "0.5";
    await assert.rejects(
      () => writeSample(dir, rows),
      (e: Error) =>
        e instanceof TypeError && /row \d+ \(short_term #3\)/.test(e.message) &&
        e.message.includes('"danceability" expected a finite number, found "0.5"'),
    );
    const missing = sampleEnrichedRows();
    delete (missing[0] as Partial<EnrichedRow>).track_id;
    await assert.rejects(() => writeSample(dir, missing), /"track_id" expected a value/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no file and no temp file left behind");
  });
});

Deno.test("topTracksKey() is the Hive-style lake key of a user's snapshot date", () => {
  assert.equal(
    topTracksKey("2026-01-31", "alice"),
    "top_tracks/user_id=alice/snapshot_date=2026-01-31/top_tracks.parquet",
  );
  // an id that is not key-safe goes in as a stable hash (the id itself is in every row)
  assert.match(
    topTracksKey("2026-01-31", "a/b"),
    /^top_tracks\/user_id=u[0-9a-f]{16}\/snapshot_date=2026-01-31\/top_tracks\.parquet$/,
  );
  assert.throws(() => topTracksKey("2026-1-31", "alice"), RangeError);
});

Deno.test("write step turns enrich/tracks.json into top_tracks.parquet and write.json", async () => {
  await withTempDir(async (dir) => {
    const config = loadConfig({ env: { PIPELINE_DATA_DIR: dir }, envFile: false });
    const run = await createRun(config, { date: "2026-01-31", streams: ["top_tracks"] });
    await run.writeJson("enrich", "tracks.json", sampleEnrichOutput({ runId: run.id }));
    const log = new Logger({ level: "error", sink: () => {} });
    const outcome = await runStep("write", { config, run, log, flags: {} });

    const written = (await run.readJson("write", "write.json")) as WriteOutput;
    assert.equal(written.snapshot_date, "2026-01-31");
    assert.equal(written.files.length, 1);
    const out = written.files[0]!;
    assert.equal(out.stream, "top_tracks");
    assert.equal(out.key, "top_tracks/user_id=sample/snapshot_date=2026-01-31/top_tracks.parquet");
    assert.equal(out.file, `write/${out.key}`);
    assert.equal(out.rows, 21);
    const bytes = await Deno.readFile(run.path(out.file));
    assert.equal(out.bytes, bytes.length);
    assert.equal(out.sha256, await sha256Hex(bytes));
    assert.equal(out.content_sha256, contentSha256(TOP_TRACKS, sampleEnrichedRows()));
    assert.deepEqual(outcome.counts, {
      rows: 21,
      files: 1,
      bytes: bytes.length,
      top_tracks_rows: 21,
      top_tracks_files: 1,
    });
    assert.match(String(outcome.summary?.text), /21 rows/);
    assert.equal(run.manifest.steps.write?.status, "succeeded");
    const [count] = await query("SELECT count(*) AS n FROM read_parquet($1)", [
      run.path(out.file),
    ]);
    assert.equal(count?.n, "21");
  });
});

Deno.test("write step: a bad enrich file is a ConfigError naming the file", async () => {
  await withTempDir(async (dir) => {
    const config = loadConfig({ env: { PIPELINE_DATA_DIR: dir }, envFile: false });
    const run = await createRun(config, { date: "2026-01-31", streams: ["top_tracks"] });
    const log = new Logger({ level: "error", sink: () => {} });
    await assert.rejects(
      () => runStep("write", { config, run, log, flags: {} }),
      (e: Error) => e instanceof ConfigError && e.message.includes("no enrich output"),
    );
    const output = sampleEnrichOutput();
    output.rows[4]!.rank = 1.5;
    await run.writeJson("enrich", "tracks.json", output);
    await assert.rejects(
      () => runStep("write", { config, run, log, flags: {} }),
      (e: Error) =>
        e instanceof ConfigError && e.message.includes("enrich/tracks.json") &&
        e.message.includes('"rank" expected a 32-bit integer, found 1.5'),
    );
    const mixed = sampleEnrichOutput();
    mixed.rows[0]!.snapshot_date = "2026-01-30";
    await run.writeJson("enrich", "tracks.json", mixed);
    await assert.rejects(
      () => runStep("write", { config, run, log, flags: {} }),
      /mixes snapshot dates: expected every row on 2026-01-31, found 2026-01-30/,
    );
  });
});
