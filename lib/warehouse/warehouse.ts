/**
 * The warehouse-loader interface the load step uses: an embedded DuckDB file (`local`) or
 * Snowflake through an external stage and `COPY INTO` (`prod`). Both behave alike: an
 * append-only raw table, and a file already loaded (same uri and content) loads nothing.
 * @module
 */

import type { StreamName } from "../streams/names.ts";

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

/** A warehouse loader. */
export interface Warehouse {
  /** Loads the files (skipping already-loaded ones) in one transaction/statement. */
  load(files: FileToLoad[], options?: LoadOptions): Promise<LoadReport>;
  close(): Promise<void>;
}
