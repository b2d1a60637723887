/**
 * The warehouse of the `local` profile: an embedded DuckDB file (default
 * `$PIPELINE_DATA_DIR/warehouse.duckdb`) loaded the way Snowflake loads from its external stage
 * with `COPY INTO`:
 *
 * - `raw.top_tracks` is append-only: the Parquet columns, then `source_file` (the lake key, like
 *   Snowflake's `METADATA$FILENAME`) and `loaded_at` (one timestamp per load);
 * - `raw._load_history` remembers every file loaded, keyed by (uri, sha256) like Snowflake's load
 *   metadata: the same file again loads nothing and is reported `SKIPPED`; a changed file (new
 *   sha256) loads again;
 * - a load is one transaction: every file or none.
 *
 * Only one process can hold a DuckDB file open for writing; a file held by another process is a
 * {@link StorageError} naming the file and the holder.
 * @module
 */

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { WarehouseConfig } from "../config.ts";
import { StorageError } from "../errors.ts";
import { sha256Hex } from "../fs_atomic.ts";
import type { Logger } from "../log.ts";
import { TOP_TRACKS_COLUMNS } from "../parquet/schema.ts";
import type { FileLoadResult, FileToLoad, LoadReport, Warehouse } from "./warehouse.ts";

/** The raw table, schema-qualified. */
export const RAW_TABLE = "raw.top_tracks";
/** The load-history table, schema-qualified. */
export const LOAD_HISTORY_TABLE = "raw._load_history";

/** `raw.top_tracks`' columns and DuckDB types: the Parquet columns, then the load metadata. */
export const RAW_COLUMNS: readonly (readonly [name: string, type: string])[] = [
  ...TOP_TRACKS_COLUMNS.map((c) => [c.name, c.duckdb] as const),
  ["source_file", "VARCHAR"],
  ["loaded_at", "TIMESTAMP WITH TIME ZONE"],
];

const PARQUET_COLUMNS = TOP_TRACKS_COLUMNS.map((c) => quote(c.name));

const DDL = [
  "CREATE SCHEMA IF NOT EXISTS raw",
  `CREATE TABLE IF NOT EXISTS ${RAW_TABLE} (\n${
    RAW_COLUMNS.map(([name, type]) => `  ${quote(name)} ${type}`).join(",\n")
  }\n)`,
  `CREATE TABLE IF NOT EXISTS ${LOAD_HISTORY_TABLE} (
  file_uri VARCHAR NOT NULL,
  sha256 VARCHAR NOT NULL,
  file_key VARCHAR NOT NULL,
  bytes BIGINT NOT NULL,
  run_id VARCHAR,
  rows_loaded BIGINT NOT NULL,
  loaded_at TIMESTAMP WITH TIME ZONE NOT NULL,
  PRIMARY KEY (file_uri, sha256)
)`,
];

/** Options of {@link openDuckDbWarehouse}. */
export interface OpenDuckDbWarehouseOptions {
  log: Logger;
}

/**
 * Opens (creating if needed) the DuckDB warehouse file and its raw tables.
 * @throws {StorageError} when the file is locked by another process or cannot be opened.
 */
export async function openDuckDbWarehouse(
  config: Extract<WarehouseConfig, { kind: "duckdb" }>,
  options: OpenDuckDbWarehouseOptions,
): Promise<DuckDbWarehouse> {
  const path = config.path;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (error) {
    throw new StorageError(
      `Cannot create the folder of the DuckDB warehouse ${path}: ${(error as Error).message}`,
      { hint: "Check DUCKDB_PATH (or PIPELINE_DATA_DIR).", cause: error },
    );
  }
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(path);
  } catch (error) {
    throw openError(path, error);
  }
  let connection: DuckDBConnection | undefined;
  try {
    connection = await instance.connect();
    for (const sql of DDL) await connection.run(sql);
  } catch (error) {
    connection?.closeSync();
    instance.closeSync();
    throw new StorageError(
      `Cannot prepare ${RAW_TABLE} in the DuckDB warehouse ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return new DuckDbWarehouse(path, instance, connection, options.log);
}

/** A DuckDB warehouse file, open for loading. Close it: only one process may hold the file. */
export class DuckDbWarehouse implements Warehouse {
  /** Absolute path of the DuckDB file. */
  readonly path: string;
  #instance: DuckDBInstance;
  #connection: DuckDBConnection;
  #log: Logger;
  #closed = false;

  constructor(path: string, instance: DuckDBInstance, connection: DuckDBConnection, log: Logger) {
    this.path = path;
    this.#instance = instance;
    this.#connection = connection;
    this.#log = log;
  }

  /**
   * Loads the files into `raw.top_tracks` in one transaction, skipping files already loaded
   * (same uri and sha256). Any failure rolls the whole load back.
   * @throws {StorageError} naming the file that failed (missing, changed, not readable as the
   * expected Parquet columns).
   */
  async load(files: FileToLoad[]): Promise<LoadReport> {
    if (this.#closed) throw new StorageError(`The DuckDB warehouse ${this.path} is closed`);
    const con = this.#connection;
    const results: FileLoadResult[] = [];
    await con.run("BEGIN TRANSACTION");
    try {
      const seen = new Set<string>();
      for (const file of files) {
        const id = `${file.uri}\n${file.sha256}`;
        const already = seen.has(id) || await this.#loadedBefore(file);
        seen.add(id);
        if (already) {
          results.push({ file: file.key, status: "SKIPPED", rows_parsed: 0, rows_loaded: 0 });
          this.#log.info(`Already loaded, skipped: ${file.key}`, { uri: file.uri });
          continue;
        }
        const rows = await this.#loadFile(file);
        results.push({ file: file.key, status: "LOADED", rows_parsed: rows, rows_loaded: rows });
        this.#log.info(`Loaded ${rows} rows from ${file.key} into ${RAW_TABLE}`, {
          uri: file.uri,
        });
      }
      await con.run("COMMIT");
    } catch (error) {
      await con.run("ROLLBACK").catch(() => {});
      throw error;
    }
    return {
      warehouse: "duckdb",
      table: RAW_TABLE,
      files_loaded: results.filter((r) => r.status === "LOADED").length,
      files_skipped: results.filter((r) => r.status === "SKIPPED").length,
      rows_loaded: results.reduce((n, r) => n + r.rows_loaded, 0),
      files: results,
    };
  }

  /** Releases the file (idempotent). */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#connection.closeSync();
      this.#instance.closeSync();
    }
    return Promise.resolve();
  }

  async #loadedBefore(file: FileToLoad): Promise<boolean> {
    const reader = await this.#connection.runAndReadAll(
      `SELECT count(*)::INTEGER AS n FROM ${LOAD_HISTORY_TABLE} WHERE file_uri = $1 AND sha256 = $2`,
      [file.uri, file.sha256],
    );
    return Number(reader.getRowsJS()[0]?.[0] ?? 0) > 0;
  }

  async #loadFile(file: FileToLoad): Promise<number> {
    const path = localPath(file);
    let data: Uint8Array;
    try {
      data = await Deno.readFile(path);
    } catch (error) {
      throw new StorageError(
        `Cannot load ${file.uri}: ${
          error instanceof Deno.errors.NotFound ? "no such file" : (error as Error).message
        }`,
        { hint: "Run upload again (`deno task upload`), then load.", cause: error },
      );
    }
    const sha256 = await sha256Hex(data);
    if (sha256 !== file.sha256) {
      throw new StorageError(
        `Cannot load ${file.uri}: its sha256 is ${sha256}, the upload receipt says ${file.sha256} (the file changed since upload)`,
        { hint: "Run upload again (`deno task upload`), then load." },
      );
    }
    const columns = PARQUET_COLUMNS.join(", ");
    let rows: number;
    try {
      const result = await this.#connection.run(
        `INSERT INTO ${RAW_TABLE} (${columns}, source_file, loaded_at)
         SELECT ${columns}, $2, current_timestamp FROM read_parquet($1)`,
        [path, file.key],
      );
      rows = result.rowsChanged;
      await this.#connection.run(
        `INSERT INTO ${LOAD_HISTORY_TABLE}
           (file_uri, sha256, file_key, bytes, run_id, rows_loaded, loaded_at)
         VALUES ($1, $2, $3, $4, $5, $6, current_timestamp)`,
        [file.uri, file.sha256, file.key, data.length, file.run_id, rows],
      );
    } catch (error) {
      throw new StorageError(
        `Cannot load ${file.uri} into ${RAW_TABLE} (${this.path}): ${(error as Error).message}`,
        { cause: error },
      );
    }
    return rows;
  }
}

/** The local path of a `file://` URI (the lake folder's files). */
function localPath(file: FileToLoad): string {
  if (!file.uri.startsWith("file://")) {
    throw new StorageError(
      `The DuckDB warehouse loads files of the lake folder (file://...), not ${file.uri}`,
      { hint: "The local profile uploads to the lake folder; prod loads into Snowflake." },
    );
  }
  return fileURLToPath(file.uri);
}

function openError(path: string, error: unknown): StorageError {
  const message = error instanceof Error ? error.message : String(error);
  if (/Could not set lock on file/i.test(message)) {
    const holder = /Conflicting lock is held in (.+?) \(PID (\d+)\)/.exec(message);
    const who = holder ? `${holder[1]} (PID ${holder[2]})` : "another process";
    return new StorageError(
      `The DuckDB warehouse ${path} is locked by ${who}: DuckDB lets one process write a file at a time`,
      {
        hint:
          "Close the other session (DuckDB CLI, Python, dbt, a running pipeline) and run load again.",
        cause: error,
      },
    );
  }
  return new StorageError(`Cannot open the DuckDB warehouse ${path}: ${message}`, {
    hint: "Check DUCKDB_PATH (or PIPELINE_DATA_DIR).",
    cause: error,
  });
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
