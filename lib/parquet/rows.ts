/**
 * Row checks, the canonical row order, and the content fingerprint of a stream's rows.
 *
 * The fingerprint (`content_sha256`) hashes every column except the stream's run metadata
 * (`run_id`, `fetched_at`) in a fixed column order over rows sorted by the stream's natural key,
 * so re-running a day that returns the same data gives the same fingerprint, and any change in
 * the data gives a different one.
 * @module
 */

import { createHash } from "node:crypto";
import type { ColumnSpec } from "../streams/columns.ts";
import type { Row, StreamDef } from "../streams/stream.ts";

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Checks one value against its column; returns it normalized (`undefined` → `null`).
 * @throws {TypeError} naming the row, the column, what was expected and what was found.
 */
export function checkValue(row: Row, index: number, column: ColumnSpec): unknown {
  const value = row[column.name];
  if (value === null || value === undefined) {
    if (column.nullable) return null;
    throw badValue(row, index, column, "a value (the column is not nullable)", value);
  }
  switch (column.kind) {
    case "date":
      if (typeof value !== "string" || !DATE.test(value) || Number.isNaN(dateMs(value))) {
        throw badValue(row, index, column, "a date YYYY-MM-DD", value);
      }
      return value;
    case "timestamp":
      if (typeof value !== "string" || Number.isNaN(Date.parse(value))) {
        throw badValue(row, index, column, "an ISO-8601 timestamp", value);
      }
      return value;
    case "utf8":
      if (typeof value !== "string") throw badValue(row, index, column, "a string", value);
      return value;
    case "int32":
      if (
        !Number.isInteger(value) || (value as number) < INT32_MIN || (value as number) > INT32_MAX
      ) {
        throw badValue(row, index, column, "a 32-bit integer", value);
      }
      return value;
    case "float64":
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw badValue(row, index, column, "a finite number", value);
      }
      return value;
    case "bool":
      if (typeof value !== "boolean") throw badValue(row, index, column, "true or false", value);
      return value;
    case "utf8_list":
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        throw badValue(row, index, column, "a list of strings", value);
      }
      return value;
  }
}

/** Milliseconds since the epoch of a `YYYY-MM-DD` date at 00:00 UTC (NaN when not a date). */
export function dateMs(date: string): number {
  let ms = dateCache.get(date);
  if (ms === undefined) {
    ms = Date.parse(`${date}T00:00:00Z`);
    if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== date) ms = NaN;
    if (dateCache.size > 10_000) dateCache.clear();
    dateCache.set(date, ms);
  }
  return ms;
}

// Rows share few dates: parsing and round-tripping each one once is enough.
const dateCache = new Map<string, number>();

function badValue(
  row: Row,
  index: number,
  column: ColumnSpec,
  expected: string,
  found: unknown,
): TypeError {
  const where = `row ${index + 1}${rowLabel(row)}`;
  let shown: string;
  try {
    shown = found === undefined ? "nothing" : JSON.stringify(found).slice(0, 80);
  } catch {
    shown = String(found);
  }
  return new TypeError(`${where}: column "${column.name}" expected ${expected}, found ${shown}`);
}

/** ` (short_term #3)` for ranked rows, ` (played_at ...)` for plays, else nothing. */
function rowLabel(row: Row): string {
  if (row.time_range !== undefined && row.rank !== undefined) {
    return ` (${String(row.time_range)} #${String(row.rank)})`;
  }
  if (typeof row.played_at === "string") return ` (played_at ${row.played_at})`;
  return "";
}

const fingerprintColumns = new WeakMap<object, readonly ColumnSpec[]>();

/** The stream's columns without its run metadata, in file order. */
function fingerprintColumnsOf(stream: StreamDef): readonly ColumnSpec[] {
  let columns = fingerprintColumns.get(stream);
  if (!columns) {
    columns = stream.columns.filter((c) => !stream.runMetadata.includes(c.name));
    fingerprintColumns.set(stream, columns);
  }
  return columns;
}

/** The canonical text of a row's data (run metadata excluded), checking every value. */
function canonicalLine(stream: StreamDef, row: Row, index: number): string {
  return JSON.stringify(fingerprintColumnsOf(stream).map((c) => checkValue(row, index, c)));
}

/**
 * The canonical order of rows: by the stream's natural key, then by the whole row's data, so
 * equal data always comes out in the same order.
 * @returns row indexes in that order.
 */
export function canonicalOrder(stream: StreamDef, input: readonly object[]): number[] {
  const rows = input as readonly Row[];
  const order = Array.from(rows.keys());
  const lines = new Map<number, string>();
  const line = (i: number) => {
    let s = lines.get(i);
    if (s === undefined) lines.set(i, s = canonicalLine(stream, rows[i]!, i));
    return s;
  };
  const cmp = (a: unknown, b: unknown): number => {
    if (typeof a === "number" && typeof b === "number") return a - b;
    const x = String(a);
    const y = String(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
  const key = stream.key;
  order.sort((i, j) => {
    const a = rows[i]!;
    const b = rows[j]!;
    for (const k of key) {
      const c = cmp(a[k], b[k]);
      if (c !== 0) return c;
    }
    return cmp(line(i), line(j));
  });
  return order;
}

/**
 * Hex SHA-256 fingerprint of the rows' data, excluding the run metadata, independent of the
 * rows' order and of key order in the row objects. Checks every value on the way.
 * @param order the rows' canonical order when already computed ({@link canonicalOrder}).
 * @throws {TypeError} when a row does not fit the schema.
 */
export function contentSha256(
  stream: StreamDef,
  input: readonly object[],
  order?: readonly number[],
): string {
  const rows = input as readonly Row[];
  const hash = createHash("sha256");
  hash.update(`${stream.schemaVersion}\n`);
  hash.update(JSON.stringify(fingerprintColumnsOf(stream).map((c) => c.name)) + "\n");
  // Hashing line by line costs a call into the runtime per row: feed it ~1 MB at a time.
  let chunk = "";
  for (const i of order ?? canonicalOrder(stream, rows)) {
    chunk += canonicalLine(stream, rows[i]!, i) + "\n";
    if (chunk.length > 1_000_000) {
      hash.update(chunk);
      chunk = "";
    }
  }
  hash.update(chunk);
  return hash.digest("hex");
}
