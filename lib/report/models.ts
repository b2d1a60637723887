/**
 * Reading the dbt models back for the report: a read-only DuckDB connection (`local`) or a
 * Snowflake session (`prod`), behind one small interface. Rows come back as plain objects with
 * lower-case keys, numbers as numbers, so the report's queries and shaping are the same on both.
 * The drivers are imported only when a reader opens.
 * @module
 */

import type { Config } from "../config.ts";
import { StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** One row of a model query. */
export type ModelRow = Record<string, unknown>;

/** Where the models are read from, and the few SQL pieces the dialects spell differently. */
export interface ModelReader {
  /** `duckdb` or `snowflake`. */
  readonly dialect: "duckdb" | "snowflake";
  /** Where the models are (for the report's header), e.g. `warehouse.duckdb, schema main`. */
  readonly where: string;
  /** The SQL name of a dbt model (quoted, qualified). */
  model(name: string): string;
  /** SQL of a list column's first element, as text. */
  first(listColumn: string): string;
  /** SQL of a UTC timestamp's hour (0..23). */
  hour(column: string): string;
  /** SQL of a UTC timestamp's ISO weekday (1 = Monday .. 7 = Sunday). */
  isoWeekday(column: string): string;
  /** Runs one query. @throws StorageError naming the warehouse. */
  query(sql: string): Promise<ModelRow[]>;
  close(): Promise<void>;
}

/** Opens a reader on the active profile's warehouse (DuckDB read-only, or Snowflake). */
export async function openModelReader(
  config: Config,
  options: { log: Logger },
): Promise<ModelReader> {
  const schema = config.dbt.schema;
  if (config.warehouse.kind === "duckdb") {
    return await openDuckDbReader(config.warehouse.path, schema);
  }
  const { openSnowflakeSession } = await import("../warehouse/snowflake_session.ts");
  const { quoteIdent } = await import("../warehouse/_snowflake_names.ts");
  const warehouse = config.warehouse;
  const session = await openSnowflakeSession(warehouse, { log: options.log });
  const where = `${warehouse.database}.${schema}`;
  return {
    dialect: "snowflake",
    where,
    model: (name) => `${quoteIdent(warehouse.database)}.${quoteIdent(schema)}.${quoteIdent(name)}`,
    first: (list) => `${list}[0]::VARCHAR`,
    hour: (column) => `HOUR(${column})`,
    isoWeekday: (column) => `DAYOFWEEKISO(${column})`,
    async query(sql) {
      try {
        return (await session.execute(sql)).map(plainRow);
      } catch (error) {
        throw new StorageError(
          `Cannot read the dbt models in Snowflake (${where}): ${(error as Error).message}`,
          { cause: error, hint: "Run `deno task transform` (or the pipeline) first." },
        );
      }
    },
    close: () => session.close(),
  };
}

async function openDuckDbReader(path: string, schema: string): Promise<ModelReader> {
  const { openReadOnlyDuckDb } = await import("../dbt/_read_only.ts");
  const db = await openReadOnlyDuckDb(path);
  const connection = db.connection;
  const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
  const where = `${path}, schema ${schema}`;
  return {
    dialect: "duckdb",
    where,
    model: (name) => `${ident(schema)}.${ident(name)}`,
    first: (list) => `${list}[1]`,
    // DuckDB's npm build has no ICU: the parts of a TIMESTAMPTZ are read from its UTC value
    hour: (column) => `hour(cast(${column} as timestamp))`,
    isoWeekday: (column) => `isodow(cast(${column} as timestamp))`,
    async query(sql) {
      try {
        return (await connection.runAndReadAll(sql)).getRowObjectsJS().map(plainRow);
      } catch (error) {
        throw new StorageError(
          `Cannot read the dbt models in the DuckDB warehouse (${where}): ${
            (error as Error).message.split("\n")[0]
          }`,
          { cause: error, hint: "Run `deno task transform` (or the pipeline) first." },
        );
      }
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
}

/** Lower-case keys; bigints and decimals as numbers; dates as `YYYY-MM-DD...` text. */
function plainRow(row: Record<string, unknown>): ModelRow {
  const out: ModelRow = {};
  for (const [key, value] of Object.entries(row)) out[key.toLowerCase()] = plainValue(value);
  return out;
}

function plainValue(value: unknown): unknown {
  if (typeof value === "bigint") return Number(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(plainValue);
  return value;
}
