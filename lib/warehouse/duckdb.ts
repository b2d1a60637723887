/**
 * The warehouse of the `local` profile: an embedded DuckDB file (default
 * `$PIPELINE_DATA_DIR/warehouse.duckdb`) loaded the way Snowflake loads from its external stage
 * with `COPY INTO`:
 *
 * - each stream's raw table (`raw.top_tracks`, `raw.recently_played`, `raw.top_artists`) is
 *   append-only: the stream's Parquet columns, then `source_file` (the lake key, like
 *   Snowflake's `METADATA$FILENAME`) and `loaded_at` (one timestamp per load);
 * - a raw table that lacks a column of its stream (a warehouse from before `user_id`) gains it
 *   in place, in the load's transaction; rows loaded before get `user_id` from the token store's
 *   user (`sample` for sample data) — idempotent, nothing lost;
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
import { type DuckDBConnection, DuckDBInstance, listValue } from "@duckdb/node-api";
import type { WarehouseConfig } from "../config.ts";
import { IntegrityError, StorageError } from "../errors.ts";
import { sha256Hex } from "../sha256.ts";
import type { Logger } from "../log.ts";
import { duckdbType, LOAD_METADATA_COLUMNS } from "../streams/columns.ts";
import { STREAM_NAMES, STREAMS } from "../streams/registry.ts";
import type { StreamDef } from "../streams/stream.ts";
import {
  type FileLoadResult,
  type FileToLoad,
  type KnownTrack,
  knownTracksSql,
  LOADED_KEY_COLUMNS,
  type LoadedStreamKey,
  type LoadOptions,
  type LoadReport,
  loadReport,
  type Warehouse,
} from "./warehouse.ts";

/** The top-tracks raw table, schema-qualified. */
export const RAW_TABLE = "raw.top_tracks";
/** The load-history table, schema-qualified. */
export const LOAD_HISTORY_TABLE = "raw._load_history";

/** A stream's raw table, schema-qualified. */
export function rawTable(stream: Pick<StreamDef, "rawTable">): string {
  return `raw.${stream.rawTable}`;
}

/** A stream's raw table's columns and DuckDB types: the Parquet columns, then the load metadata. */
export function rawColumns(stream: StreamDef): readonly (readonly [name: string, type: string])[] {
  return [...stream.columns, ...LOAD_METADATA_COLUMNS].map((c) => [c.name, duckdbType(c)] as const);
}

/** `raw.top_tracks`' columns and DuckDB types. */
export const RAW_COLUMNS = rawColumns(STREAMS.top_tracks);

const DDL = [
  "CREATE SCHEMA IF NOT EXISTS raw",
  ...STREAM_NAMES.map((name) =>
    `CREATE TABLE IF NOT EXISTS ${rawTable(STREAMS[name])} (\n${
      rawColumns(STREAMS[name]).map(([column, type]) => `  ${quote(column)} ${type}`).join(",\n")
    }\n)`
  ),
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
    instance = await DuckDBInstance.create(path, { memory_limit: "192MB" });
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
      `Cannot prepare the raw tables in the DuckDB warehouse ${path}: ${(error as Error).message}`,
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
   * Loads the files into their streams' raw tables in one transaction, skipping files already
   * loaded (same uri and sha256), after bringing the raw tables up to their streams' columns.
   * Any failure rolls the whole load back.
   * @throws {StorageError} naming the file that failed (missing, changed, not readable as the
   * expected Parquet columns).
   */
  async load(
    files: FileToLoad[],
    options: LoadOptions = { migrationUser: "unknown" },
  ): Promise<LoadReport> {
    if (this.#closed) throw new StorageError(`The DuckDB warehouse ${this.path} is closed`);
    const con = this.#connection;
    const results: FileLoadResult[] = [];
    let migrations: string[] = [];
    await con.run("BEGIN TRANSACTION");
    try {
      migrations = await this.#migrate(options.migrationUser);
      const seen = await this.#loadedBefore(files);
      for (const file of files) {
        const id = `${file.uri}\n${file.sha256}`;
        const already = seen.has(id);
        seen.add(id);
        const table = rawTable(STREAMS[file.stream]);
        if (already) {
          results.push({
            file: file.key,
            table,
            status: "SKIPPED",
            rows_parsed: 0,
            rows_loaded: 0,
          });
          this.#log.info(`Already loaded, skipped: ${file.key}`, { uri: file.uri });
          continue;
        }
        const rows = await this.#loadFile(file);
        results.push({
          file: file.key,
          table,
          status: "LOADED",
          rows_parsed: rows,
          rows_loaded: rows,
        });
        this.#log.info(`Loaded ${rows} rows from ${file.key} into ${table}`, { uri: file.uri });
      }
      await con.run("COMMIT");
    } catch (error) {
      await con.run("ROLLBACK").catch(() => {});
      throw error;
    }
    const tables = [...new Set(files.map((f) => rawTable(STREAMS[f.stream])))];
    return loadReport("duckdb", {
      table: tables.join(", ") || RAW_TABLE,
      files: results,
      migrations,
    });
  }

  /** The user's imported streams with `ts` in [from, to): their key fields. */
  async loadedStreamKeys(userId: string, from: string, to: string): Promise<LoadedStreamKey[]> {
    if (this.#closed) throw new StorageError(`The DuckDB warehouse ${this.path} is closed`);
    const reader = await this.#connection.runAndReadAll(
      `SELECT CAST(epoch_ms(ts) AS DOUBLE) AS ts_ms, ${LOADED_KEY_COLUMNS.join(", ")}
       FROM ${rawTable(STREAMS.streaming_history)}
       WHERE user_id = $1 AND ts >= $2::TIMESTAMPTZ AND ts < $3::TIMESTAMPTZ`,
      [userId, from, to],
    );
    return reader.getRowObjectsJS() as unknown as LoadedStreamKey[];
  }

  /** Every track with an id in the raw tables, with its title and primary artist. */
  async knownTracks(): Promise<KnownTrack[]> {
    if (this.#closed) throw new StorageError(`The DuckDB warehouse ${this.path} is closed`);
    const reader = await this.#connection.runAndReadAll(
      knownTracksSql({ first: (list) => `${list}[1]`, table: rawTable }),
    );
    return reader.getRowObjectsJS() as unknown as KnownTrack[];
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

  /**
   * Adds the columns a raw table lacks (in the load's transaction); a new `user_id` is filled
   * for the rows already there.
   * @returns what changed, e.g. `raw.top_tracks: added user_id (21 rows set to "sample")`.
   */
  async #migrate(user: string): Promise<string[]> {
    const changes: string[] = [];
    // every raw table's columns in one query
    const reader = await this.#connection.runAndReadAll(
      "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'raw'",
    );
    const have = new Set(reader.getRowsJS().map((r) => String(r[0])));
    for (const name of STREAM_NAMES) {
      const stream = STREAMS[name];
      const table = rawTable(stream);
      for (const [column, type] of rawColumns(stream)) {
        if (have.has(`${stream.rawTable}.${column}`)) continue;
        await this.#connection.run(`ALTER TABLE ${table} ADD COLUMN ${quote(column)} ${type}`);
        let note = `${table}: added ${column}`;
        if (column === "user_id") {
          const result = await this.#connection.run(
            `UPDATE ${table} SET user_id = $1 WHERE user_id IS NULL`,
            [user],
          );
          note += ` (${result.rowsChanged} existing row(s) set to "${user}")`;
        }
        changes.push(note);
        this.#log.info(`Migrated ${note}`);
      }
    }
    return changes;
  }

  /** Which of the files were loaded before (same uri and sha256), as `uri\nsha256`, in one query. */
  async #loadedBefore(files: readonly FileToLoad[]): Promise<Set<string>> {
    if (files.length === 0) return new Set();
    const reader = await this.#connection.runAndReadAll(
      `SELECT file_uri || chr(10) || sha256 FROM ${LOAD_HISTORY_TABLE}
       WHERE file_uri IN (SELECT unnest($1::VARCHAR[]))`,
      [listValue(files.map((f) => f.uri))],
    );
    return new Set(reader.getRowsJS().map((r) => String(r[0])));
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
      throw new IntegrityError(
        `Cannot load ${file.uri}: its sha256 is ${sha256}, the upload receipt says ${file.sha256} (the file changed since upload)`,
        { hint: "Run upload again (`deno task upload`), then load." },
      );
    }
    const stream = STREAMS[file.stream];
    const table = rawTable(stream);
    const columns = stream.columns.map((c) => quote(c.name)).join(", ");
    let rows: number;
    try {
      const result = await this.#connection.run(
        `INSERT INTO ${table} (${columns}, source_file, loaded_at)
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
        `Cannot load ${file.uri} into ${table} (${this.path}): ${(error as Error).message}`,
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
