/**
 * A cursor stream's cursor recovered from lake keys (the state lost, or a first run).
 * @module
 */

import type { StreamDef } from "./stream.ts";

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
