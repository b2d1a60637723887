/**
 * The warehouse-loader interface the load step uses: an embedded DuckDB file (`local`) or
 * Snowflake through an external stage and `COPY INTO` (`prod`). Both behave alike: an
 * append-only raw table, and a file already loaded (same uri and content) loads nothing.
 * @module
 */

/** A file to load, from the upload receipt. */
export interface FileToLoad {
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
  status: "LOADED" | "SKIPPED" | "LOAD_FAILED" | "PARTIALLY_LOADED";
  rows_parsed: number;
  rows_loaded: number;
  first_error?: string;
}

/** The load report, saved in the run folder (`load/report.json`) and the manifest. */
export interface LoadReport {
  warehouse: "duckdb" | "snowflake";
  /** Fully qualified raw table. */
  table: string;
  files_loaded: number;
  files_skipped: number;
  rows_loaded: number;
  files: FileLoadResult[];
}

/** A warehouse loader. */
export interface Warehouse {
  /** Loads the files (skipping already-loaded ones) in one transaction/statement. */
  load(files: FileToLoad[]): Promise<LoadReport>;
  close(): Promise<void>;
}
