/**
 * One read-only connection to the DuckDB warehouse file for reading the built models back after
 * `dbt build` and for the report (npm:@duckdb/node-api imported only when called).
 * @module
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { StorageError } from "../errors.ts";

/** An open read-only connection; `close()` closes it and its instance. */
export interface ReadOnlyDuckDb {
  connection: DuckDBConnection;
  close(): void;
}

/**
 * Opens the DuckDB file at `path` read-only (a missing file is not created).
 * @throws StorageError naming the file, with a hint to run the pipeline first.
 */
export async function openReadOnlyDuckDb(path: string): Promise<ReadOnlyDuckDb> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  let instance;
  try {
    instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  } catch (error) {
    throw new StorageError(
      `Cannot open the DuckDB warehouse "${path}" read-only: ${(error as Error).message}`,
      { cause: error, hint: "Run `deno task pipeline` first (it creates the warehouse)." },
    );
  }
  try {
    const connection = await instance.connect();
    return {
      connection,
      close() {
        connection.closeSync();
        instance.closeSync();
      },
    };
  } catch (error) {
    instance.closeSync();
    throw error;
  }
}

/**
 * Opens the DuckDB file at `path` read-only, runs `body` on one connection, closes it.
 * @throws StorageError when the file cannot be opened.
 */
export async function withReadOnlyDuckDb<T>(
  path: string,
  body: (connection: DuckDBConnection) => Promise<T>,
): Promise<T> {
  const db = await openReadOnlyDuckDb(path);
  try {
    return await body(db.connection);
  } finally {
    db.close();
  }
}
