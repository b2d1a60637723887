/**
 * The Snowflake warehouse loader (`prod` profile), on a session of `snowflake_session.ts` (the
 * driver is imported only when a session opens).
 *
 * Each load: create the raw table if missing (the DuckDB raw table's columns), then one
 *
 * ```sql
 * COPY INTO "DB"."SCHEMA"."TOP_TRACKS"
 *   FROM @"DB"."SCHEMA"."STAGE"/<common folder of the files>/
 *   FILES = ('<path>', ...)
 *   FILE_FORMAT = (FORMAT_NAME = 'DB.SCHEMA.FORMAT')
 *   MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
 *   INCLUDE_METADATA = (SOURCE_FILE = METADATA$FILENAME, LOADED_AT = METADATA$START_SCAN_TIME)
 *   ON_ERROR = ABORT_STATEMENT
 * ```
 *
 * `source_file`/`loaded_at` come from INCLUDE_METADATA, the copy option made for exactly this: it
 * only works together with MATCH_BY_COLUMN_NAME, whereas a transforming COPY (`FROM (SELECT
 * $1:col, METADATA$FILENAME ...)`) cannot use MATCH_BY_COLUMN_NAME and would have to list and
 * cast all 31 Parquet columns by hand. Snowflake's load metadata (64 days) makes a file that
 * was already loaded load nothing; the COPY result rows become the {@link LoadReport}. A file the
 * metadata no longer covers (never loaded, uploaded over 64 days before) is skipped by COPY as
 * "load status uncertain": when the raw table's SOURCE_FILE has no row from it, it is copied
 * again with LOAD_UNCERTAIN_FILES = TRUE.
 *
 * Identifiers come from validated settings and are upper-cased and double-quoted (the same
 * object as the unquoted name). COPY's stage path and FILES are not bindable positions in
 * Snowflake SQL: they are checked against a strict pattern and written as escaped literals.
 * @module
 */

import type { StoreConfig } from "../config.ts";
import { ConfigError, StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { STREAMS } from "../streams/registry.ts";
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
import {
  createRawTableSql,
  qualified,
  quoteIdent,
  RAW_TABLE,
  rawColumns,
  rawTableName,
  type SnowflakeWarehouseConfig,
  stageLocation,
} from "./_snowflake_names.ts";
import { openSnowflakeSession, type SnowflakeSession } from "./snowflake_session.ts";

/**
 * An ISO 8601 UTC time as a SQL literal (the range of a statement; checked, so never more than a
 * time).
 */
function isoLiteral(iso: string): string {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/.test(iso)) {
    throw new RangeError(`"${iso}" is not an ISO 8601 UTC time`);
  }
  return `'${iso}'`;
}

/** Options of {@link openSnowflakeWarehouse}. */
export interface OpenSnowflakeWarehouseOptions {
  log: Logger;
  /** The object store the stage points at (S3 bucket and prefix). */
  store: StoreConfig;
}

const STAGE_PATH = /^[A-Za-z0-9_=.\-]+(\/[A-Za-z0-9_=.\-]+)*$/;

/**
 * Connects to Snowflake (key pair, password, programmatic access token or OAuth), sets the
 * statement timeout, and returns a loader into the raw table.
 *
 * @example
 * const warehouse = await openSnowflakeWarehouse(config.warehouse, { log, store: config.store });
 * const report = await warehouse.load([{ uri, key, sha256, bytes, run_id }]);
 */
export async function openSnowflakeWarehouse(
  config: SnowflakeWarehouseConfig,
  options: OpenSnowflakeWarehouseOptions,
): Promise<Warehouse> {
  if (options.store.kind !== "s3") {
    throw new ConfigError(
      "The Snowflake warehouse loads from an S3 stage: the object store must be S3 (PIPELINE_PROFILE=prod)",
    );
  }
  const session = await openSnowflakeSession(config, { log: options.log });
  return new SnowflakeWarehouse(session, config, options.store, options.log);
}

/** The URL the external stage reads now (`SHOW STAGES`), or `undefined` when it does not exist. */
export async function currentStageUrl(
  session: SnowflakeSession,
  config: SnowflakeWarehouseConfig,
): Promise<string | undefined> {
  const rows = await session.execute(
    `SHOW STAGES IN SCHEMA ${quoteIdent(config.database)}.${quoteIdent(config.schema)}`,
  );
  const name = quoteIdent(config.stage).slice(1, -1);
  const row = rows.map(lowerKeys).find((r) => String(r.name ?? "") === name);
  return row ? String(row.url ?? "") : undefined;
}

/** Whether two stage URLs name the same location (a trailing slash aside). */
export function sameStageUrl(a: string, b: string): boolean {
  const norm = (u: string) => u.trim().replace(/\/+$/, "");
  return norm(a) === norm(b);
}

/** Loads staged files into the raw table with COPY INTO. */
class SnowflakeWarehouse implements Warehouse {
  #session: SnowflakeSession;
  #config: SnowflakeWarehouseConfig;
  #store: Extract<StoreConfig, { kind: "s3" }>;
  #log: Logger;
  #stageChecked = false;

  constructor(
    session: SnowflakeSession,
    config: SnowflakeWarehouseConfig,
    store: Extract<StoreConfig, { kind: "s3" }>,
    log: Logger,
  ) {
    this.#session = session;
    this.#config = config;
    this.#store = store;
    this.#log = log.child({ warehouse: "snowflake" });
  }

  /**
   * One COPY INTO per stream's raw table (created if missing, and brought up to the stream's
   * columns first). Each COPY is atomic and Snowflake's load metadata makes a re-run load
   * nothing twice.
   */
  async load(
    files: FileToLoad[],
    options: LoadOptions = { migrationUser: "unknown" },
  ): Promise<LoadReport> {
    const results: FileLoadResult[] = [];
    const tables: string[] = [];
    const migrations: string[] = [];
    if (files.length) await this.#checkStage();
    for (const [name, def] of Object.entries(STREAMS)) {
      const group = files.filter((f) => f.stream === name);
      if (group.length === 0) continue;
      const table = `${this.#config.database}.${this.#config.schema}.${rawTableName(def)}`
        .toUpperCase();
      tables.push(table);
      await this.#session.execute(createRawTableSql(this.#config, def));
      migrations.push(...await this.#migrate(def, table, options.migrationUser));
      results.push(...(await this.#copy(def, table, group)).map((r) => ({ ...r, table })));
    }
    return loadReport("snowflake", {
      table: tables.join(", ") ||
        `${this.#config.database}.${this.#config.schema}.${RAW_TABLE}`.toUpperCase(),
      files: results,
      migrations,
    });
  }

  /** The user's imported streams with `ts` in [from, to): their key fields. */
  async loadedStreamKeys(userId: string, from: string, to: string): Promise<LoadedStreamKey[]> {
    const def = STREAMS.streaming_history;
    await this.#session.execute(createRawTableSql(this.#config, def));
    const rows = await this.#session.execute(
      `SELECT DATE_PART(epoch_millisecond, TS) AS TS_MS, ${
        LOADED_KEY_COLUMNS.map((c) => c.toUpperCase()).join(", ")
      } FROM ${qualified(this.#config, rawTableName(def))}
       WHERE USER_ID = ? AND TS >= ${isoLiteral(from)}::TIMESTAMP_TZ AND TS < ${
        isoLiteral(to)
      }::TIMESTAMP_TZ`,
      [userId],
    );
    return rows.map((r) => {
      const out: Record<string, unknown> = { ts_ms: Number(r.TS_MS) };
      for (const c of LOADED_KEY_COLUMNS) out[c] = r[c.toUpperCase()] ?? null;
      return out as unknown as LoadedStreamKey;
    });
  }

  /** Every track with an id in the raw tables, with its title and primary artist. */
  async knownTracks(): Promise<KnownTrack[]> {
    for (const def of Object.values(STREAMS)) {
      await this.#session.execute(createRawTableSql(this.#config, def));
    }
    const rows = await this.#session.execute(knownTracksSql({
      first: (list) => `${list}[0]::VARCHAR`,
      table: (s) => qualified(this.#config, rawTableName(s)),
    }));
    return rows.map((r) => ({
      track_id: String(r.TRACK_ID),
      track_name: String(r.TRACK_NAME),
      artist_name: String(r.ARTIST_NAME),
    }));
  }

  /**
   * The stage must read where the files are: a stage left on an old S3_BUCKET/S3_PREFIX would
   * find none of them, and COPY would report "0 files processed" as if they were loaded.
   */
  async #checkStage(): Promise<void> {
    if (this.#stageChecked) return;
    const want = stageLocation(this.#store);
    const url = await currentStageUrl(this.#session, this.#config);
    if (url !== undefined && !sameStageUrl(url, want)) {
      throw new StorageError(
        `Snowflake stage ${
          qualified(this.#config, this.#config.stage)
        } reads ${url}, but S3_BUCKET/S3_PREFIX put the files under ${want}: COPY INTO would find none of them`,
        {
          hint:
            "Run `deno task load --setup --apply` to point the stage (and the integration's allowed location) at the new location, or set S3_BUCKET/S3_PREFIX back.",
        },
      );
    }
    this.#stageChecked = true;
  }

  /** Adds the columns the raw table lacks; a new USER_ID is filled for the rows already there. */
  async #migrate(stream: StreamDef, table: string, user: string): Promise<string[]> {
    const rows = await this.#session.execute(
      `SELECT COLUMN_NAME FROM ${quoteIdent(this.#config.database)}.INFORMATION_SCHEMA.COLUMNS ` +
        `WHERE TABLE_SCHEMA = '${this.#config.schema.toUpperCase()}' AND TABLE_NAME = '${
          rawTableName(stream)
        }'`,
    );
    const have = new Set(
      rows.map((r) => String(Object.values(r)[0] ?? "").toUpperCase()),
    );
    const changes: string[] = [];
    if (have.size === 0) return changes; // just created with every column
    for (const [column, type] of rawColumns(stream)) {
      if (have.has(column)) continue;
      const target = qualified(this.#config, rawTableName(stream));
      await this.#session.execute(`ALTER TABLE ${target} ADD COLUMN ${quoteIdent(column)} ${type}`);
      let note = `${table}: added ${column}`;
      if (column === "USER_ID") {
        if (!/^[A-Za-z0-9_.\-@+]{1,128}$/.test(user)) {
          throw new StorageError(
            `Cannot migrate ${table}: user id "${user}" has unexpected characters`,
          );
        }
        await this.#session.execute(
          `UPDATE ${target} SET ${quoteIdent(column)} = '${user}' WHERE ${
            quoteIdent(column)
          } IS NULL`,
        );
        note += ` (existing rows set to "${user}")`;
      }
      changes.push(note);
      this.#log.info(`Migrated ${note}`);
    }
    return changes;
  }

  async #copy(stream: StreamDef, table: string, files: FileToLoad[]): Promise<FileLoadResult[]> {
    const results = await this.#copyOnce(stream, table, files, false);
    // Snowflake keeps load metadata 64 days: a file never loaded whose S3 LAST_MODIFIED is older
    // (a late resume, a backfill of old uploads) is skipped without a word. The raw table's
    // SOURCE_FILE proves which skipped files never loaded: those are copied again with
    // LOAD_UNCERTAIN_FILES = TRUE (a file it knows is still skipped, so nothing loads twice).
    const skipped = files.filter((_, i) => results[i]!.status === "SKIPPED");
    if (skipped.length === 0) return results;
    const paths = skipped.map((f) => this.#stagePath(f));
    const binds = paths.map(() => "?").join(", ");
    const present = new Set(
      (await this.#session.execute(
        `SELECT DISTINCT ${quoteIdent("SOURCE_FILE")} AS F FROM ${
          qualified(this.#config, rawTableName(stream))
        } WHERE ${quoteIdent("SOURCE_FILE")} IN (${binds})`,
        paths,
      )).map((r) => String(lowerKeys(r).f ?? "")),
    );
    const unseen = skipped.filter((_, i) => !present.has(paths[i]!));
    if (unseen.length === 0) return results;
    this.#log.warn(
      `COPY INTO ${table} skipped ${unseen.length} file(s) the raw table has no row from (load status uncertain: Snowflake's load metadata lasts 64 days); copying them with LOAD_UNCERTAIN_FILES = TRUE`,
      { files: unseen.map((f) => f.uri) },
    );
    const again = await this.#copyOnce(stream, table, unseen, true);
    return results.map((r) => {
      const i = unseen.findIndex((f) => f.uri === r.file);
      return i >= 0 ? again[i]! : r;
    });
  }

  async #copyOnce(
    stream: StreamDef,
    table: string,
    files: FileToLoad[],
    loadUncertain: boolean,
  ): Promise<FileLoadResult[]> {
    const paths = files.map((f) => this.#stagePath(f));
    const folder = commonFolder(paths);
    const sql = copySql(this.#config, folder, paths.map((p) => p.slice(folder.length)), stream, {
      loadUncertain,
    });
    const started = performance.now();
    let rows: Record<string, unknown>[];
    try {
      rows = await this.#session.execute(sql);
    } catch (error) {
      if (error instanceof StorageError && error.message.startsWith("COPY INTO failed")) {
        throw new StorageError(
          `COPY INTO ${table} failed for ${files.map((f) => f.uri).join(", ")}: ${
            error.message.replace(/^COPY INTO failed /, "")
          }`,
          { hint: error.hint, cause: error.cause },
        );
      }
      throw error;
    }
    const results = parseCopyResult(rows, files, paths);
    const failed = results.find((r) =>
      r.status === "LOAD_FAILED" || r.status === "PARTIALLY_LOADED"
    );
    if (failed) {
      throw new StorageError(
        `COPY INTO ${table} ${failed.status} for ${failed.file}: ${
          failed.first_error ?? "no error text"
        }`,
        { hint: "Check the Parquet file's columns and types against the raw table." },
      );
    }
    this.#log.info("COPY INTO finished", {
      table,
      files_loaded: results.filter((r) => r.status === "LOADED").length,
      files_skipped: results.filter((r) => r.status === "SKIPPED").length,
      rows_loaded: results.reduce((n, r) => n + r.rows_loaded, 0),
      ms: Math.round(performance.now() - started),
    });
    return results;
  }

  close(): Promise<void> {
    return this.#session.close();
  }

  /** Path of a file relative to the stage's URL (`s3://bucket/prefix/`). */
  #stagePath(file: FileToLoad): string {
    const stageUrl = stageLocation(this.#store);
    if (!file.uri.startsWith(stageUrl)) {
      throw new StorageError(
        `Cannot load ${file.uri}: the stage ${this.#config.stage} reads ${stageUrl} (S3_BUCKET/S3_PREFIX)`,
      );
    }
    const path = file.uri.slice(stageUrl.length);
    if (!STAGE_PATH.test(path)) {
      throw new StorageError(
        `Cannot load ${file.uri}: the key must contain only letters, digits, "_", "-", ".", "=" and "/"`,
      );
    }
    return path;
  }
}

/** The COPY INTO statement for files under `folder` of the stage. */
export function copySql(
  config: SnowflakeWarehouseConfig,
  folder: string,
  files: string[],
  stream: StreamDef = STREAMS.top_tracks,
  options: { loadUncertain?: boolean } = {},
): string {
  for (const f of [folder, ...files]) {
    if (f && !STAGE_PATH.test(f.replace(/\/$/, ""))) {
      throw new StorageError(`Refusing stage path "${f}": unexpected characters`);
    }
  }
  const literal = (s: string) => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
  const formatName = [config.database, config.schema, config.fileFormat]
    .map((p) => quoteIdent(p).slice(1, -1))
    .join(".");
  return [
    `COPY INTO ${qualified(config, rawTableName(stream))}`,
    `  FROM @${qualified(config, config.stage)}/${folder}`,
    `  FILES = (${files.map(literal).join(", ")})`,
    `  FILE_FORMAT = (FORMAT_NAME = ${literal(formatName)})`,
    `  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE`,
    `  INCLUDE_METADATA = (SOURCE_FILE = METADATA$FILENAME, LOADED_AT = METADATA$START_SCAN_TIME)`,
    `  ON_ERROR = ABORT_STATEMENT`,
    ...(options.loadUncertain ? ["  LOAD_UNCERTAIN_FILES = TRUE"] : []),
  ].join("\n");
}

/**
 * COPY's result rows as per-file results. A file Snowflake skipped because its load metadata says
 * it was loaded is either absent from the rows or reported as LOAD_SKIPPED; when every file was
 * skipped the only row is `{status: "Copy executed with 0 files processed."}`.
 */
export function parseCopyResult(
  rows: Record<string, unknown>[],
  files: FileToLoad[],
  paths: string[],
): FileLoadResult[] {
  const byFile = new Map<number, Record<string, unknown>>();
  for (const row of rows) {
    const r = lowerKeys(row);
    if (typeof r.file !== "string") continue;
    const file = r.file;
    const index = paths.findIndex((p, i) =>
      file === files[i]!.uri || file.endsWith("/" + p) || file === p
    );
    if (index >= 0) byFile.set(index, r);
  }
  return files.map((f, i) => {
    const r = byFile.get(i);
    if (!r) return { file: f.uri, status: "SKIPPED", rows_parsed: 0, rows_loaded: 0 };
    const status = String(r.status ?? "").toUpperCase();
    const result: FileLoadResult = {
      file: f.uri,
      status: status === "LOADED"
        ? "LOADED"
        : status === "PARTIALLY_LOADED"
        ? "PARTIALLY_LOADED"
        : status === "LOAD_FAILED"
        ? "LOAD_FAILED"
        : "SKIPPED",
      rows_parsed: Number(r.rows_parsed ?? 0),
      rows_loaded: status === "LOADED" || status === "PARTIALLY_LOADED"
        ? Number(r.rows_loaded ?? 0)
        : 0,
    };
    if (r.first_error !== null && r.first_error !== undefined && result.status !== "SKIPPED") {
      const where = [
        r.first_error_line !== null && r.first_error_line !== undefined
          ? `line ${r.first_error_line}`
          : "",
        r.first_error_column_name ? `column ${r.first_error_column_name}` : "",
      ].filter(Boolean).join(", ");
      result.first_error = `${String(r.first_error)}${where ? ` (${where})` : ""}`;
    }
    return result;
  });
}

function lowerKeys(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k.toLowerCase(), v]));
}

/** Longest common folder (ending in "/", or "") of stage paths. */
function commonFolder(paths: string[]): string {
  const folders = paths.map((p) => p.slice(0, p.lastIndexOf("/") + 1));
  let common = folders[0] ?? "";
  for (const f of folders) {
    while (!f.startsWith(common)) {
      common = common.slice(0, common.slice(0, -1).lastIndexOf("/") + 1);
    }
  }
  return common;
}
