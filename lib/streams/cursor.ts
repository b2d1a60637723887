/**
 * A cursor stream's cursor: recovered from lake keys (the state lost, or a first run), and the
 * newest value a partition's rows hold.
 * @module
 */

import type { FileCursor } from "./handoff.ts";
import type { Row, StreamDef } from "./stream.ts";

/** The newest cursor value the stream's keys name, or `undefined` when none does. */
export function newestCursorInKeys(stream: StreamDef, keys: readonly string[]): string | undefined {
  if (!stream.cursor) return undefined;
  let newest: string | undefined;
  for (const key of keys) {
    const value = stream.cursor.fromKey(key);
    if (value !== undefined && (newest === undefined || value > newest)) newest = value;
  }
  return newest;
}

/**
 * The newest cursor value among a partition's rows (all one user's), as the write step records
 * it for the cursor's move after the load; `undefined` for streams without a cursor or no rows.
 */
export function partitionCursor(stream: StreamDef, rows: readonly Row[]): FileCursor | undefined {
  const column = stream.cursor?.column;
  if (!column || rows.length === 0) return undefined;
  const values = rows.map((r) => new Date(String(r[column])).toISOString()).sort();
  return { user_id: String(rows[0]!.user_id), value: values.at(-1)! };
}
