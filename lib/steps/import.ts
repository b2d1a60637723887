/**
 * The import step (first step of an import run, `deno task import <path>...`): reads the privacy
 * export's streaming-history files named in the run's manifest and writes the new streams as
 * `streaming_history` Parquet files, one per UTC month, for upload and load.
 *
 * 1. every history file is read whole, one at a time (memory bounded by one file), its rows
 *    spilled to the run folder by month; files that are not a history are listed as skipped, and
 *    a file that cannot be read stops the step naming the file (and the row): nothing is written;
 * 2. account-data rows (names only) get a track id only from an unambiguous (normalised title,
 *    primary artist) match against the tracks the warehouse and this export know by URI;
 * 3. audio features for every distinct track, through the features cache (each looked up once);
 * 4. month by month: rows repeating a key (ts, what was played) are one stream (the longest
 *    `ms_played` wins), streams already in the warehouse are left out (a re-import adds nothing),
 *    and the rest become `import/<key>` Parquet files listed in `import/write.json`.
 * @module
 */

import type { Config } from "../config.ts";
import { CancelledError, ConfigError } from "../errors.ts";
import { FeaturesCache, featuresCachePath } from "../features/cache.ts";
import { coverageCounts, enrichRows, type TrackRef } from "../features/enrich.ts";
import { nameKeys } from "../features/normalize.ts";
import { listExportFiles } from "../import/export_files.ts";
import {
  type HistoryFormat,
  type HistoryRow,
  longestPerKey,
  parseHistoryFile,
  playedUri,
} from "../import/history.ts";
import { MonthSpill } from "../import/month_spill.ts";
import type { Logger } from "../log.ts";
import type { Run } from "../run.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import { FEATURE_SPEC_NAMES } from "../streams/_shared_columns.ts";
import { columnsAt, type WriteOutput, type WrittenFile, writtenFile } from "../streams/handoff.ts";
import type { Row } from "../streams/stream.ts";
import { monthOf, STREAMING_HISTORY, streamKeyOf } from "../streams/streaming_history.ts";
import { openWarehouse } from "../warehouse/open.ts";
import type { Warehouse } from "../warehouse/warehouse.ts";
import { providersFromConfig, saveCache } from "./enrich.ts";
import { formatBytes } from "./_format.ts";

/** One history file's outcome, in the step's summary. */
interface FileReport {
  file: string;
  format: HistoryFormat;
  rows: number;
  tracks: number;
  episodes: number;
  audiobooks: number;
  unknown: number;
}

const AMBIGUOUS = "";

/** Runs the import step. */
export async function importStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, signal } = ctx;
  const request = run.manifest.import;
  if (!request) {
    throw new ConfigError(`Run ${run.id} is not an import run (its manifest names no export)`, {
      hint: "Start one with `deno task import <path>...`.",
    });
  }
  const stream = STREAMING_HISTORY;
  const userId = request.user_id;
  const spill = await MonthSpill.create(run.path("import", ".spill"), columnsAt(stream, "fetch"));
  try {
    // 1. read
    const listing = await listExportFiles(request.paths);
    const files: FileReport[] = [];
    const skipped = listing.skipped.map((s) => ({ ...s }));
    const byUri = new Map<string, { name: string; artist: string }>();
    /** Name-only tracks' (title, artist), by `nameOnlyKey`: matched once every file is read. */
    const nameOnly = new Map<string, { name: string; artist: string }>();
    try {
      for (const file of listing.files) {
        if (signal?.aborted) throw new CancelledError();
        let read;
        try {
          read = parseHistoryFile(await file.text(), {
            file: file.name,
            sourceFile: file.label,
            userId,
          });
        } catch (error) {
          if ((error as { problem?: string }).problem === "not_history") {
            skipped.push({ name: file.name, reason: "not a streaming history" });
            continue;
          }
          throw error;
        }
        files.push({ file: file.name, format: read.format, ...read.counts });
        const rows = read.rows.map((r) => toRow(r, run.id));
        for (const r of read.rows) {
          if (r.track_id && r.track_name && r.artist_name && !byUri.has(r.track_id)) {
            byUri.set(r.track_id, { name: r.track_name, artist: r.artist_name });
          }
          if (r.content_type === "track" && !r.track_id && r.track_name && r.artist_name) {
            nameOnly.set(nameOnlyKey(r), { name: r.track_name, artist: r.artist_name });
          }
        }
        await spill.append(rows, (row) => monthOf(String(row.ts)));
        log.info(`Read ${read.counts.rows} streams from ${file.name} (${read.format})`, {
          file: file.label,
          ...read.counts,
        });
      }
    } finally {
      listing.close();
    }
    if (files.length === 0) {
      throw new ConfigError(
        `No streaming history in ${
          request.paths.join(", ")
        }: expected Spotify's privacy-export files (Streaming_History_Audio_*.json, endsong_*.json, StreamingHistory*.json) or the zip they come in${
          skipped.length ? ` (${skipped.length} file(s) skipped: not a streaming history)` : ""
        }`,
      );
    }

    const warehouse = await openWarehouse(config, { log });
    try {
      // 2. names → ids, once per distinct (title, artist)
      const byName = new Map<string, string>();
      if (nameOnly.size > 0) {
        const index = await nameIndex(warehouse, byUri);
        for (const [k, t] of nameOnly) {
          const id = index.get(nameKeys(t.name, t.artist)?.full ?? "");
          if (id) byName.set(k, id);
        }
      }
      // 3. features of every distinct track: by URI, or matched by name
      const tracks = new Map<string, TrackRef>();
      for (const [id, t] of byUri) {
        tracks.set(id, { track_id: id, track_name: t.name, artist_names: [t.artist] });
      }
      for (const [k, id] of byName) {
        const t = nameOnly.get(k)!;
        if (!tracks.has(id)) {
          tracks.set(id, { track_id: id, track_name: t.name, artist_names: [t.artist] });
        }
      }
      const features = await featuresOf(config, [...tracks.values()], { log, signal });

      // 4. month by month
      const written: WrittenFile[] = [];
      const counts = {
        files: files.length,
        skipped_files: skipped.length,
        rows_read: 0,
        duplicates: 0,
        already_loaded: 0,
        name_matched: 0,
        name_unmatched: 0,
        rows: 0,
        parquet_files: 0,
        bytes: 0,
      };
      const { writeParquetFile } = await import("../parquet/writer.ts");
      let loaded: { year: string; keys: Set<string> } | undefined;
      for (const [month] of spill.months()) {
        if (signal?.aborted) throw new CancelledError();
        const year = month.slice(0, 4);
        if (loaded?.year !== year) {
          const from = `${year}-01-01T00:00:00.000Z`;
          const to = `${Number(year) + 1}-01-01T00:00:00.000Z`;
          const keys = new Set<string>();
          for (const k of await warehouse.loadedStreamKeys(userId, from, to)) {
            keys.add(streamKeyOf({ ...k, ts: new Date(k.ts_ms).toISOString() }));
          }
          loaded = { year, keys };
        }
        const rows = await spill.read(month);
        counts.rows_read += rows.length;
        for (const row of rows) {
          if (row.content_type === "track" && row.track_id === null) {
            const id = byName.get(nameOnlyKey(row));
            if (id) {
              row.track_id = id;
              row.track_match = "name";
              counts.name_matched++;
            } else counts.name_unmatched++;
          }
        }
        const unique = [...longestPerKey(rows, streamKeyOf).values()];
        counts.duplicates += rows.length - unique.length;
        const fresh = unique.filter((r) => !loaded!.keys.has(streamKeyOf(r)));
        counts.already_loaded += unique.length - fresh.length;
        if (fresh.length === 0) continue;
        for (const row of fresh) {
          Object.assign(row, features.byTrack.get(String(row.track_id)) ?? NO_FEATURES);
        }
        for (
          const { key, rows: part } of stream.partition(fresh, { snapshotDate: run.snapshotDate })
        ) {
          const file = `import/${key}`;
          const result = await writeParquetFile(stream, run.path(file), part);
          written.push(writtenFile(stream, key, file, result));
          counts.rows += result.rows;
          counts.bytes += result.bytes;
          counts.parquet_files++;
        }
      }
      const output: WriteOutput = {
        run_id: run.id,
        snapshot_date: run.snapshotDate,
        files: written,
      };
      const meta = await run.writeJson("import", "write.json", output);
      const text = summaryText(run, { files, skipped, counts, written });
      log.info(text.split("\n")[0]!, counts);
      return {
        counts: { ...counts, [`${stream.name}_rows`]: counts.rows },
        summary: {
          text,
          files,
          skipped,
          features: features.coverage,
        },
        outputs: [...written.map((f) => f.file), meta],
      };
    } finally {
      await warehouse.close();
    }
  } finally {
    await spill.remove();
  }
}

/** A history row as the stream's row (before the audio features). */
function toRow(r: HistoryRow, runId: string): Row {
  return {
    user_id: r.user_id,
    ts: r.ts,
    ms_played: r.ms_played,
    content_type: r.content_type,
    uri: playedUri(r),
    track_id: r.track_id,
    track_match: r.track_id ? "uri" : null,
    track_name: r.track_name,
    artist_name: r.artist_name,
    album_name: r.album_name,
    episode_name: r.episode_name,
    show_name: r.show_name,
    audiobook_uri: r.audiobook_uri,
    audiobook_title: r.audiobook_title,
    audiobook_chapter_title: r.audiobook_chapter_title,
    platform: r.platform,
    conn_country: r.conn_country,
    reason_start: r.reason_start,
    reason_end: r.reason_end,
    shuffle: r.shuffle,
    skipped: r.skipped,
    offline: r.offline,
    offline_timestamp: r.offline_timestamp,
    incognito_mode: r.incognito_mode,
    export_file: r.source_file,
    run_id: runId,
  };
}

/** A name-only track row's (title, artist), as the key of its name match. */
function nameOnlyKey(row: { track_name?: unknown; artist_name?: unknown }): string {
  return `${String(row.track_name ?? "")}\t${String(row.artist_name ?? "")}`;
}

/**
 * Normalised (title, primary artist) → track id, from the warehouse's tracks and the export's
 * own URIs; a key two different ids share is ambiguous and matches nothing.
 */
async function nameIndex(
  warehouse: Warehouse,
  byUri: ReadonlyMap<string, { name: string; artist: string }>,
): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const add = (id: string, name: string, artist: string) => {
    const keys = nameKeys(name, artist);
    if (!keys) return;
    const have = index.get(keys.full);
    index.set(keys.full, have === undefined || have === id ? id : AMBIGUOUS);
  };
  for (const t of await warehouse.knownTracks()) add(t.track_id, t.track_name, t.artist_name);
  for (const [id, t] of byUri) add(id, t.name, t.artist);
  for (const [k, v] of index) if (v === AMBIGUOUS) index.delete(k);
  return index;
}

const NO_FEATURES: Row = Object.fromEntries(
  FEATURE_SPEC_NAMES.map((
    n,
  ) => [n, n === "features_source" || n === "match_method" ? "none" : null]),
);

/** Each track's feature columns, through the features cache. */
async function featuresOf(
  config: Config,
  tracks: TrackRef[],
  options: { log: Logger; signal?: AbortSignal },
): Promise<{ byTrack: Map<string, Row>; coverage?: Record<string, number> }> {
  const byTrack = new Map<string, Row>();
  if (tracks.length === 0) return { byTrack };
  const { log, signal } = options;
  const providers = await providersFromConfig(config, { log });
  const cache = config.features.cache
    ? await FeaturesCache.open(featuresCachePath(config), { log })
    : FeaturesCache.disabled();
  const result = await enrichRows(tracks, {
    providers,
    log,
    signal,
    known: cache.known(tracks.map((t) => t.track_id)),
    position: () => "imported",
  });
  cache.record(result.decided, result.complete);
  await saveCache(cache, log);
  for (const row of result.rows) {
    const r = row as unknown as Row;
    byTrack.set(
      row.track_id,
      Object.fromEntries(FEATURE_SPEC_NAMES.map((n) => [n, r[n] ?? null])),
    );
  }
  log.info(`Audio features for ${result.coverage.matched} of ${tracks.length} imported tracks`, {
    cached: result.coverage.cached,
  });
  return { byTrack, coverage: { ...coverageCounts(result.coverage), tracks: tracks.length } };
}

function summaryText(
  run: Run,
  { files, skipped, counts, written }: {
    files: FileReport[];
    skipped: { name: string; reason: string }[];
    counts: Record<string, number>;
    written: WrittenFile[];
  },
): string {
  const lines = [
    `Import: ${counts.rows} new streams in ${counts.parquet_files} Parquet file(s) (${
      formatBytes(counts.bytes!)
    }) from ${files.length} history file(s); ${counts.rows_read} read, ${counts.duplicates} duplicate(s), ${counts.already_loaded} already loaded`,
    ...files.map((f) =>
      `  ${
        f.format.padEnd(8)
      } ${f.file}: ${f.rows} streams (${f.tracks} tracks, ${f.episodes} episodes, ${f.audiobooks} audiobooks, ${f.unknown} unknown)`
    ),
  ];
  if (counts.name_matched || counts.name_unmatched) {
    lines.push(
      `  account data: ${counts.name_matched} stream(s) matched to a track id by name, ${counts.name_unmatched} kept with names only`,
    );
  }
  if (skipped.length) {
    lines.push(
      `  skipped ${skipped.length} file(s): ${
        skipped.map((s) => `${s.name} (${s.reason})`).slice(0, 5).join(", ")
      }${skipped.length > 5 ? ", ..." : ""}`,
    );
  }
  if (written.length === 0) {
    lines.push(`  nothing new: every stream is already in the warehouse (run ${run.id})`);
  }
  return lines.join("\n");
}
