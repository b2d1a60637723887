/**
 * One read-only connection to the DuckDB warehouse file for reading the built models back after
 * `dbt build` (npm:@duckdb/node-api imported only when called).
 * @module
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { StorageError } from "../errors.ts";

/**
 * Opens the DuckDB file at `path` read-only, runs `body` on one connection, closes it.
 * @throws StorageError when the file cannot be opened.
 */
export async function withReadOnlyDuckDb<T>(
  path: string,
  body: (connection: DuckDBConnection) => Promise<T>,
): Promise<T> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  let instance;
  try {
    instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  } catch (error) {
    throw new StorageError(
      `Cannot open the DuckDB warehouse "${path}" read-only: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    const connection = await instance.connect();
    try {
      return await body(connection);
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}
