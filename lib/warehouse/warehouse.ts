/**
 * The warehouse-loader interface the load step uses: an embedded DuckDB file (`local`) or
 * Snowflake through an external stage and `COPY INTO` (`prod`). Both behave alike: an
 * append-only raw table, and a file already loaded (same uri and content) loads nothing.
 * @module
 */

import type { StreamName } from "../streams/names.ts";
import { STREAMS } from "../streams/registry.ts";
import type { StreamDef } from "../streams/stream.ts";

/** A file to load, from the upload receipt. */
export interface FileToLoad {
  /** The stream whose raw table the file goes to. */
  stream: StreamName;
  /** `file:///...` or `s3://bucket/key`. */
  uri: string;
  key: string;
  sha256: string;
  bytes: number;
  run_id: string;
}

/** Outcome for one file, modelled on Snowflake's COPY result rows. */
export interface FileLoadResult {
  file: string;
  /** Fully qualified raw table the file went to. */
  table?: string;
  status: "LOADED" | "SKIPPED" | "LOAD_FAILED" | "PARTIALLY_LOADED";
  rows_parsed: number;
  rows_loaded: number;
  first_error?: string;
}

/** The load report, saved in the run folder (`load/report.json`) and the manifest. */
export interface LoadReport {
  warehouse: "duckdb" | "snowflake";
  /** Fully qualified raw table(s) loaded into, comma-separated. */
  table: string;
  /** Schema changes made before the load (e.g. `raw.top_tracks: added user_id`). */
  migrations?: string[];
  files_loaded: number;
  files_skipped: number;
  rows_loaded: number;
  files: FileLoadResult[];
}

/**
 * The load report of per-file results (counts derived from them); no files: an empty report (a
 * load with nothing to load).
 */
export function loadReport(
  warehouse: LoadReport["warehouse"],
  options: { table?: string; files?: FileLoadResult[]; migrations?: string[] } = {},
): LoadReport {
  const files = options.files ?? [];
  return {
    warehouse,
    table: options.table ?? "",
    ...(options.migrations?.length ? { migrations: options.migrations } : {}),
    files_loaded: files.filter((r) => r.status === "LOADED").length,
    files_skipped: files.filter((r) => r.status === "SKIPPED").length,
    rows_loaded: files.reduce((n, r) => n + r.rows_loaded, 0),
    files,
  };
}

/** Options of {@link Warehouse.load}. */
export interface LoadOptions {
  /** Fills `user_id` of rows loaded before the column existed (the token store's user). */
  migrationUser: string;
}

/** A track the warehouse knows by id, with its title and primary artist (name matches). */
export interface KnownTrack {
  track_id: string;
  track_name: string;
  artist_name: string;
}

/** One loaded streaming-history row's key fields (see `streamKeyOf`). */
export interface LoadedStreamKey {
  /** Milliseconds since 1970 (UTC). */
  ts_ms: number;
  uri: string | null;
  audiobook_uri: string | null;
  content_type: string;
  track_name: string | null;
  artist_name: string | null;
  show_name: string | null;
  episode_name: string | null;
  audiobook_title: string | null;
  audiobook_chapter_title: string | null;
}

/** A warehouse loader. */
export interface Warehouse {
  /** Loads the files (skipping already-loaded ones) in one transaction/statement. */
  load(files: FileToLoad[], options?: LoadOptions): Promise<LoadReport>;
  /**
   * The key fields of the user's `streaming_history` rows already loaded with `ts` in
   * [`from`, `to`) (ISO 8601): what an import leaves out.
   */
  loadedStreamKeys(userId: string, from: string, to: string): Promise<LoadedStreamKey[]>;
  /** Every track with an id in the raw tables (top tracks, plays, imported history). */
  knownTracks(): Promise<KnownTrack[]>;
  close(): Promise<void>;
}

/** The columns {@link Warehouse.loadedStreamKeys} reads, as SQL select items. */
export const LOADED_KEY_COLUMNS = [
  "uri",
  "audiobook_uri",
  "audiobook_title",
  "content_type",
  "track_name",
  "artist_name",
  "show_name",
  "episode_name",
  "audiobook_chapter_title",
] as const;

/**
 * The distinct (track_id, track_name, primary artist) of every raw table with tracks (the first
 * of `artist_names`, or `artist_name`; for streaming_history, the rows whose id came from the
 * export's URI).
 * @param sql.first the SQL of a list column's first element (the dialects differ)
 * @param sql.table the SQL of a stream's raw table
 */
export function knownTracksSql(sql: {
  first: (listColumn: string) => string;
  table: (stream: StreamDef) => string;
}): string {
  const has = (s: StreamDef, name: string) => s.columns.some((c) => c.name === name);
  const parts = Object.values(STREAMS)
    .filter((s) => has(s, "track_id") && has(s, "track_name"))
    .map((s) =>
      `SELECT track_id, track_name, ${
        has(s, "artist_names") ? sql.first("artist_names") : "artist_name"
      } AS artist_name FROM ${sql.table(s)}` +
      ` WHERE track_id IS NOT NULL AND track_name IS NOT NULL` +
      (has(s, "track_match") ? ` AND track_match = 'uri'` : "")
    );
  return `SELECT DISTINCT track_id, track_name, artist_name FROM (${
    parts.join(" UNION ALL ")
  }) AS t WHERE artist_name IS NOT NULL`;
}
