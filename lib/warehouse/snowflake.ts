/**
 * The Snowflake warehouse loader (`prod` profile), with npm:snowflake-sdk, imported here lazily
 * so tasks that never load data never load the driver.
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

import type { Connection, ConnectionOptions, SnowflakeError } from "snowflake-sdk";
import type { StoreConfig, WarehouseConfig } from "../config.ts";
import { ConfigError, StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { LOAD_METADATA_COLUMNS, snowflakeType } from "../streams/columns.ts";
import { oneLine } from "../text.ts";
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

/** The Snowflake settings from {@link WarehouseConfig}. */
export type SnowflakeWarehouseConfig = Extract<WarehouseConfig, { kind: "snowflake" }>;

/** Options of {@link openSnowflakeWarehouse}. */
export interface OpenSnowflakeWarehouseOptions {
  log: Logger;
  /** The object store the stage points at (S3 bucket and prefix). */
  store: StoreConfig;
}

/** Name of the top-tracks raw table in SNOWFLAKE_DATABASE.SNOWFLAKE_SCHEMA. */
export const RAW_TABLE = "TOP_TRACKS";

/** A stream's raw table name in SNOWFLAKE_DATABASE.SNOWFLAKE_SCHEMA. */
export function rawTableName(stream: Pick<StreamDef, "rawTable">): string {
  return stream.rawTable.toUpperCase();
}

/** A stream's raw table's columns: the Parquet columns, then SOURCE_FILE and LOADED_AT. */
export function rawColumns(stream: StreamDef): readonly (readonly [name: string, type: string])[] {
  return [...stream.columns, ...LOAD_METADATA_COLUMNS].map((c) =>
    [c.name.toUpperCase(), snowflakeType(c)] as const
  );
}

/** The top-tracks raw table's columns. */
export const RAW_COLUMNS = rawColumns(STREAMS.top_tracks);

/** Login retries after a network error (the driver's default 7 takes minutes). */
const LOGIN_RETRIES = 1;
/** Grace on top of the server-side statement timeout before the client gives up. */
const CLIENT_GRACE_MS = 10_000;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,254}$/;
const STAGE_PATH = /^[A-Za-z0-9_=.\-]+(\/[A-Za-z0-9_=.\-]+)*$/;

/** Quotes a validated identifier as Snowflake stores an unquoted one (upper case). */
export function quoteIdent(name: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new ConfigError(`"${name}" is not a valid Snowflake identifier`);
  }
  return `"${name.toUpperCase()}"`;
}

/** `"DB"."SCHEMA"."NAME"` of an object in the configured database and schema. */
export function qualified(config: SnowflakeWarehouseConfig, name: string): string {
  return `${quoteIdent(config.database)}.${quoteIdent(config.schema)}.${quoteIdent(name)}`;
}

/** A stream's raw table's `CREATE TABLE IF NOT EXISTS` statement (default: top tracks). */
export function createRawTableSql(
  config: SnowflakeWarehouseConfig,
  stream: StreamDef = STREAMS.top_tracks,
): string {
  const columns = rawColumns(stream).map(([name, type]) => `  ${quoteIdent(name)} ${type}`)
    .join(",\n");
  return `CREATE TABLE IF NOT EXISTS ${qualified(config, rawTableName(stream))} (\n${columns}\n)`;
}

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

/** Options of {@link openSnowflakeSession}. */
export interface OpenSnowflakeSessionOptions {
  log: Logger;
  /** Role to use instead of SNOWFLAKE_ROLE (the setup runs as ACCOUNTADMIN). */
  role?: string;
  /** Connect without a database/schema (the setup creates them). */
  noDefaultNamespace?: boolean;
}

/** A connected Snowflake session: runs statements with a bounded wait, maps errors. */
export interface SnowflakeSession {
  /** Runs one statement; `binds` are sent as bind values. Rows as objects keyed by column. */
  execute(
    sql: string,
    binds?: (string | number | boolean | null)[],
  ): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/**
 * Opens a Snowflake session: loads the driver, resolves the credentials, connects with bounded
 * retries and sets `STATEMENT_TIMEOUT_IN_SECONDS`.
 */
export async function openSnowflakeSession(
  config: SnowflakeWarehouseConfig,
  options: OpenSnowflakeSessionOptions,
): Promise<SnowflakeSession> {
  const log = options.log.child({ warehouse: "snowflake" });
  for (const secret of [config.password, config.token, config.privateKeyPassphrase]) {
    log.addSecret(secret);
  }
  const auth = await authOptions(config);
  if (auth.privateKey) log.addSecret(auth.privateKey);
  await gzipRequestsConsistently();
  const sdk = (await import("snowflake-sdk")).default;
  sdk.configure({ logLevel: "OFF", additionalLogToConsole: false });

  const timeoutMs = config.timeoutSeconds * 1000;
  const connectionOptions: ConnectionOptions = {
    account: config.account,
    username: config.user,
    ...auth,
    ...(options.role ?? config.role ? { role: options.role ?? config.role } : {}),
    warehouse: config.warehouse,
    ...(options.noDefaultNamespace ? {} : { database: config.database, schema: config.schema }),
    ...(config.host ? { host: config.host } : {}),
    ...(config.port ? { port: config.port } : {}),
    ...(config.protocol ? { protocol: config.protocol } : {}),
    application: "spotify_pipeline",
    // HTTP timeout per request: longer than the server-side statement timeout, so a slow statement
    // ends with Snowflake's own timeout error (000630) instead of a client timeout, which the
    // driver would retry. Few login retries: an unreachable host fails in seconds.
    timeout: timeoutMs + CLIENT_GRACE_MS,
    sfRetryMaxLoginRetries: LOGIN_RETRIES,
  } as ConnectionOptions;
  const connection = sdk.createConnection(connectionOptions);
  const where = describeTarget(config);
  try {
    await withDeadline(
      new Promise<void>((resolve, reject) =>
        connection.connect((error) => error ? reject(error) : resolve())
      ),
      timeoutMs + CLIENT_GRACE_MS,
      () =>
        new StorageError(
          `Snowflake did not answer the login within ${config.timeoutSeconds} s (${where})`,
        ),
    );
  } catch (error) {
    destroy(connection);
    throw loginError(error, config, auth.fingerprint);
  }
  log.debug("connected to Snowflake", { account: config.account, user: config.user });
  const session = new Session(connection, config, log);
  try {
    // an integer from the validated config (statement parameters are not bindable)
    await session.execute(
      `ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = ${Math.trunc(config.timeoutSeconds)}`,
    );
  } catch (error) {
    await session.close();
    throw error;
  }
  return session;
}

/** A connected session. */
class Session implements SnowflakeSession {
  #connection: Connection;
  #config: SnowflakeWarehouseConfig;
  #log: Logger;
  #closed = false;

  constructor(connection: Connection, config: SnowflakeWarehouseConfig, log: Logger) {
    this.#connection = connection;
    this.#config = config;
    this.#log = log;
  }

  execute(
    sql: string,
    binds?: (string | number | boolean | null)[],
  ): Promise<Record<string, unknown>[]> {
    // the server cancels at timeoutSeconds (STATEMENT_TIMEOUT_IN_SECONDS); the client stops waiting
    // once the HTTP timeout has passed too (the driver retries network failures of a statement in
    // the background: its retry count is not configurable in snowflake-sdk 2.3.6)
    const timeoutMs = this.#config.timeoutSeconds * 1000 + 2 * CLIENT_GRACE_MS;
    let statementHandle: { cancel(cb?: (error: unknown) => void): void } | undefined;
    this.#log.debug("snowflake statement", { sql: firstLine(sql) });
    const run = new Promise<Record<string, unknown>[]>((resolve, reject) => {
      statementHandle = this.#connection.execute({
        sqlText: sql,
        ...(binds ? { binds } : {}),
        complete: (error, _statement, rows) => {
          if (error) reject(statementError(error, sql, this.#config));
          else resolve((rows ?? []) as Record<string, unknown>[]);
        },
      });
    });
    return withDeadline(run, timeoutMs, () => {
      statementHandle?.cancel(() => {});
      return new StorageError(
        `Snowflake statement did not finish within ${this.#config.timeoutSeconds} s: ${
          firstLine(sql)
        }`,
        { hint: "Raise SNOWFLAKE_TIMEOUT_SECONDS or check the warehouse." },
      );
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => {
      try {
        this.#connection.destroy(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/** The S3 location the external stage must read: `s3://<S3_BUCKET>/<S3_PREFIX>/`. */
export function stageLocation(store: Extract<StoreConfig, { kind: "s3" }>): string {
  return `s3://${store.bucket}/${store.prefix ? store.prefix + "/" : ""}`;
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

interface AuthOptions {
  authenticator: string;
  privateKey?: string;
  password?: string;
  token?: string;
  /** `SHA256:<base64>` of the public key (what Snowflake shows as RSA_PUBLIC_KEY_FP). */
  fingerprint?: string;
}

/** Connection options for the configured authenticator; decrypts the private key up front. */
async function authOptions(config: SnowflakeWarehouseConfig): Promise<AuthOptions> {
  switch (config.authenticator) {
    case "SNOWFLAKE_JWT": {
      const { privateKey, fingerprint } = await loadPrivateKey(config);
      return { authenticator: "SNOWFLAKE_JWT", privateKey, fingerprint };
    }
    case "SNOWFLAKE":
      return { authenticator: "SNOWFLAKE", password: config.password };
    case "PROGRAMMATIC_ACCESS_TOKEN":
      return { authenticator: "PROGRAMMATIC_ACCESS_TOKEN", token: config.token };
    case "OAUTH":
      return { authenticator: "OAUTH", token: config.token };
  }
}

/** A loaded private key: unencrypted PKCS#8 PEM and its public key's fingerprint. */
export interface LoadedPrivateKey {
  privateKey: string;
  fingerprint: string;
  /** Base64 DER (SPKI) public key, as `ALTER USER ... SET RSA_PUBLIC_KEY` takes it. */
  publicKeyBase64: string;
}

/**
 * Reads the key-pair private key (file or PEM text), decrypting it with the passphrase.
 * @throws {ConfigError} naming the setting when the key is missing, unreadable, not a private
 *   key, encrypted without a passphrase, or the passphrase is wrong.
 */
export async function loadPrivateKey(config: SnowflakeWarehouseConfig): Promise<LoadedPrivateKey> {
  const source = config.privateKeyPath
    ? `SNOWFLAKE_PRIVATE_KEY_PATH ("${config.privateKeyPath}")`
    : "SNOWFLAKE_PRIVATE_KEY";
  let pem: string;
  if (config.privateKeyPath) {
    try {
      pem = await Deno.readTextFile(config.privateKeyPath);
    } catch (error) {
      throw new ConfigError(
        `${source}: cannot read the private key file (${
          error instanceof Error ? error.name : error
        })`,
      );
    }
  } else if (config.privateKey) {
    // a PEM in an env var often arrives with literal "\n"
    pem = config.privateKey.includes("\\n")
      ? config.privateKey.replaceAll("\\n", "\n")
      : config.privateKey;
  } else {
    throw new ConfigError(
      "SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY is required for key-pair auth",
    );
  }
  const encrypted = pem.includes("ENCRYPTED PRIVATE KEY") || /Proc-Type: 4,ENCRYPTED/.test(pem);
  if (!/-----BEGIN (ENCRYPTED |RSA )?PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError(
      `${source} is not a PEM private key (expected "-----BEGIN PRIVATE KEY-----" or "-----BEGIN ENCRYPTED PRIVATE KEY-----", PKCS#8)`,
    );
  }
  if (encrypted && !config.privateKeyPassphrase) {
    throw new ConfigError(
      `${source} is encrypted: set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE`,
    );
  }
  const crypto = await import("node:crypto");
  let key: import("node:crypto").KeyObject;
  try {
    key = crypto.createPrivateKey({
      key: pem,
      format: "pem",
      ...(encrypted ? { passphrase: config.privateKeyPassphrase } : {}),
    });
  } catch {
    throw new ConfigError(
      encrypted
        ? `${source}: cannot decrypt the private key: SNOWFLAKE_PRIVATE_KEY_PASSPHRASE is wrong`
        : `${source}: cannot read the private key (corrupt or unsupported PEM)`,
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new ConfigError(
      `${source}: Snowflake key-pair auth needs an RSA key, found ${key.asymmetricKeyType}`,
    );
  }
  const der = crypto.createPublicKey(key).export({ type: "spki", format: "der" });
  const fingerprint = "SHA256:" + crypto.createHash("sha256").update(der).digest("base64");
  return {
    privateKey: key.export({ type: "pkcs8", format: "pem" }) as string,
    fingerprint,
    publicKeyBase64: der.toString("base64"),
  };
}

function describeTarget(config: SnowflakeWarehouseConfig): string {
  const host = config.host ?? `${config.account}.snowflakecomputing.com`;
  return `${config.protocol ?? "https"}://${host}${config.port ? `:${config.port}` : ""}`;
}

/** Clear error for a failed login. */
let requestsFixed = false;

/**
 * snowflake-sdk 2.3 gzips each request body in `zlib.gzip`'s callback and sets
 * `Content-Encoding: gzip` there, but builds the request from the uncompressed body before that
 * callback runs (`lib/http/base.js`, `prepareRequestOptions`): whether the header reaches the
 * wire is a race. On Node and Deno 2.9 the callback comes after the request is sent (plain body,
 * no header); on Deno 2.5 (Deno Deploy's runtime) it comes in between — a plain JSON body
 * labelled gzip, which Snowflake cannot read, so every login fails. The SDK's own axios instance
 * is wrapped here so each body leaves gzipped with its header, whatever the timing.
 */
async function gzipRequestsConsistently(): Promise<void> {
  if (requestsFixed) return;
  requestsFixed = true;
  const { gzipSync } = await import("node:zlib");
  type Instance = { request: (config: Record<string, unknown>) => Promise<unknown> };
  // a CommonJS module with `exports.default = axios`: Deno's default export is `exports`
  const mod = await import("snowflake-sdk/dist/lib/http/axios_instance.js") as unknown as {
    default: Instance | { default: Instance };
  };
  const instance = "default" in mod.default ? mod.default.default : mod.default;
  const request = instance.request.bind(instance);
  instance.request = (config) => {
    const data = config.data;
    const isGzip = data instanceof Uint8Array && data[0] === 0x1f && data[1] === 0x8b;
    if (data !== undefined && data !== null && !isGzip) {
      // a Buffer from gzipSync, as the SDK's own gzip gives
      config.data = gzipSync(
        typeof data === "string" || data instanceof Uint8Array ? data : JSON.stringify(data),
      );
      const headers = (config.headers ?? {}) as Record<string, string>;
      headers["Content-Encoding"] = "gzip";
      config.headers = headers;
    }
    return request(config);
  };
}

function loginError(error: unknown, config: SnowflakeWarehouseConfig, fingerprint?: string): Error {
  if (error instanceof StorageError || error instanceof ConfigError) return error;
  const e = error as SnowflakeError & { response?: { status?: number; statusCode?: number } };
  const code = String(e?.code ?? "");
  const message = oneLine(e?.message ?? String(error));
  const where = describeTarget(config);
  const who = `user ${config.user} on account ${config.account}`;
  const status = e?.response?.status ?? e?.response?.statusCode ?? httpStatusOf(message);
  const causeCode = (e?.cause as { code?: string } | undefined)?.code ?? "";
  if (/ENOTFOUND|EAI_AGAIN/.test(`${causeCode} ${message}`) && !config.host) {
    return new StorageError(
      `Unknown Snowflake account "${config.account}": ${where} does not resolve`,
      {
        hint: "SNOWFLAKE_ACCOUNT is <orgname>-<account_name> (or the account locator with region).",
        cause: error,
      },
    );
  }
  if (status === 403 || status === 404) {
    return new StorageError(
      `Unknown Snowflake account "${config.account}": ${where} refused the login (HTTP ${status})`,
      {
        hint: "SNOWFLAKE_ACCOUNT is <orgname>-<account_name> (or the account locator with region).",
        cause: error,
      },
    );
  }
  if (code === "390144" || /JWT token is invalid/i.test(message)) {
    return new StorageError(
      `Snowflake rejected the key-pair login for ${who} (390144 JWT token is invalid)`,
      {
        hint:
          `The public key set with ALTER USER ${config.user} SET RSA_PUBLIC_KEY must match the private key${
            fingerprint
              ? ` (its fingerprint is ${fingerprint}; compare DESC USER ${config.user} → RSA_PUBLIC_KEY_FP)`
              : ""
          }, and SNOWFLAKE_USER must name that user.`,
        cause: error,
      },
    );
  }
  if (code === "390100" || /Incorrect username or password/i.test(message)) {
    return new StorageError(`Snowflake rejected the password for ${who} (390100)`, {
      hint: "Check SNOWFLAKE_USER and SNOWFLAKE_PASSWORD.",
      cause: error,
    });
  }
  if (/^3901\d\d$|^3903\d\d$/.test(code)) {
    return new StorageError(`Snowflake refused the login for ${who} (${code}): ${message}`, {
      cause: error,
    });
  }
  if (
    code === "401001" ||
    /ECONNREFUSED|ENOTFOUND|ECONNRESET|ETIMEDOUT|Network error|could not reach/i.test(
      `${causeCode} ${message}`,
    )
  ) {
    return new StorageError(`Cannot reach Snowflake at ${where}: ${causeCode || message}`, {
      hint: "Check the network, SNOWFLAKE_ACCOUNT and SNOWFLAKE_HOST/PORT.",
      cause: error,
    });
  }
  return new StorageError(
    `Snowflake login failed for ${who} at ${where}: ${code ? `${code} ` : ""}${message}`,
    {
      cause: error,
    },
  );
}

/** Clear error for a failed statement. */
function statementError(
  error: unknown,
  sql: string,
  config: SnowflakeWarehouseConfig,
): StorageError {
  const e = error as SnowflakeError;
  const code = String(e?.code ?? "");
  const text = String(e?.message ?? error);
  const message = oneLine(text);
  const what = firstLine(sql);
  const setupHint = "Run `deno task load --setup` (review) then `deno task load --setup --apply`.";
  if (code === "000630" || /statement or warehouse timeout/i.test(message)) {
    return new StorageError(
      `Snowflake statement timed out after ${config.timeoutSeconds} s (SNOWFLAKE_TIMEOUT_SECONDS): ${what}`,
      { cause: error },
    );
  }
  if (/Stage '.*' does not exist or not authorized/i.test(message)) {
    return new StorageError(
      `Snowflake stage ${qualified(config, config.stage)} does not exist or the role cannot use it`,
      { hint: setupHint, cause: error },
    );
  }
  if (
    /Integration '.*' does not exist|not allowed by integration|storage integration/i.test(message)
  ) {
    return new StorageError(
      `Snowflake storage integration ${config.storageIntegration} is missing or does not allow the bucket: ${message}`,
      { hint: setupHint, cause: error },
    );
  }
  if (/File format '.*' does not exist/i.test(message)) {
    return new StorageError(
      `Snowflake file format ${
        qualified(config, config.fileFormat)
      } does not exist or the role cannot use it`,
      { hint: setupHint, cause: error },
    );
  }
  if (/Error assuming AWS_ROLE/i.test(message)) {
    return new StorageError(
      `Snowflake cannot assume the IAM role of storage integration ${config.storageIntegration} (${
        code || "error"
      }): ${message.replace(/^\d{6} \(\w+\): /, "")}`,
      {
        hint: `The role's trust policy (IAM → Roles → ${
          config.awsRoleArn ?? "SNOWFLAKE_AWS_ROLE_ARN"
        } → Trust relationships) must allow sts:AssumeRole to the integration's STORAGE_AWS_IAM_USER_ARN with sts:ExternalId = its STORAGE_AWS_EXTERNAL_ID: compare with \`DESC INTEGRATION ${config.storageIntegration}\` (\`deno task load --setup --apply\` prints the policy to paste; IAM takes a few seconds to apply a change).`,
        cause: error,
      },
    );
  }
  if (/Failed to access remote file: access denied|Access Denied|AccessDenied/i.test(message)) {
    return new StorageError(
      `Snowflake was denied access to the stage's S3 files (${code || "error"}): ${
        message.replace(/^\d{6} \(\w+\): /, "")
      }`,
      {
        hint:
          "The IAM role's permissions policy must allow s3:GetObject and s3:GetObjectVersion on the bucket/prefix's objects and s3:ListBucket on the bucket for that prefix; if it does, check its trust policy against `DESC INTEGRATION` (docs/production.md, \"S3 bucket and IAM role\").",
        cause: error,
      },
    );
  }
  if (/^COPY INTO/i.test(sql.trim())) {
    // Snowflake's COPY error text names the file, line/row and column of the first error
    const firstRows = text.replace(/^\d{6} \(\w+\): /, "").split("\n").map((l) => l.trim())
      .filter(Boolean).slice(0, 4).join(" | ");
    return new StorageError(`COPY INTO failed (${code || "error"}): ${firstRows}`, {
      hint: "Check the Parquet file's columns and types against the raw table.",
      cause: error,
    });
  }
  if (code === "401001" || /Network error|ECONNREFUSED|ECONNRESET/i.test(message)) {
    return new StorageError(`Lost the connection to Snowflake during: ${what}`, { cause: error });
  }
  return new StorageError(
    `Snowflake statement failed (${code || "error"}): ${message} — in: ${what}`,
    {
      cause: error,
    },
  );
}

function httpStatusOf(message: string): number | undefined {
  const m = /\b(?:status(?: code)?|HTTP)\s*:?\s*(\d{3})\b/i.exec(message);
  return m ? Number(m[1]) : undefined;
}

function firstLine(sql: string): string {
  const line = sql.trim().split("\n")[0] ?? "";
  return line.length > 120 ? line.slice(0, 117) + "..." : line;
}

function destroy(connection: Connection): void {
  try {
    connection.destroy(() => {});
  } catch {
    // not connected
  }
}

/** Rejects with `onTimeout()` when `promise` has not settled after `ms`. */
function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
