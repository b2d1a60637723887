/**
 * Reading a DuckDB warehouse file in tests (the file opened and closed around each query, so a
 * task run in between finds it free).
 * @module
 */

import { DuckDBInstance } from "@duckdb/node-api";

/** Runs a query on the warehouse file; rows as JSON values (BIGINT as strings, dates as text). */
export async function query(path: string, sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(path);
  const con = await db.connect();
  try {
    return (await con.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    con.closeSync();
    db.closeSync();
  }
}
