/**
 * Snowflake names and DDL from the validated settings: identifiers upper-cased and double-quoted
 * (the same object as the unquoted name), each stream's raw table and its columns, the stage's
 * S3 location.
 * @module
 */

import type { StoreConfig, WarehouseConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { LOAD_METADATA_COLUMNS, snowflakeType } from "../streams/columns.ts";
import { STREAMS } from "../streams/registry.ts";
import type { StreamDef } from "../streams/stream.ts";

/** The Snowflake settings from {@link WarehouseConfig}. */
export type SnowflakeWarehouseConfig = Extract<WarehouseConfig, { kind: "snowflake" }>;

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

export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,254}$/;

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

/** The S3 location the external stage must read: `s3://<S3_BUCKET>/<S3_PREFIX>/`. */
export function stageLocation(store: Extract<StoreConfig, { kind: "s3" }>): string {
  return `s3://${store.bucket}/${store.prefix ? store.prefix + "/" : ""}`;
}
