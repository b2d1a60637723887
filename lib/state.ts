/**
 * Pipeline state that outlives a run: each cursor stream's cursor per user (the newest value of
 * its cursor column already in the lake), in `<data dir>/state/<stream>.json`, written
 * atomically. Polling reads it instead of querying the warehouse (a Snowflake query would wake a
 * billed warehouse). When the file is lost, the cursor is recovered from the lake's keys (see
 * `lib/steps/fetch.ts`).
 * @module
 */

import { join } from "node:path";
import { isRecord } from "./json.ts";
import type { Config } from "./config.ts";
import { StorageError } from "./errors.ts";
import { writeJsonAtomic } from "./fs_atomic.ts";
import type { Logger } from "./log.ts";
import type { StreamName } from "./streams/names.ts";

/** One user's cursor. */
export interface CursorEntry {
  value: string;
  updated_at: string;
  run_id: string;
}

/** The state file of one stream. */
export interface StreamState {
  version: 1;
  stream: StreamName;
  cursors: Record<string, CursorEntry>;
}

/** The state file of a stream. */
export function statePath(config: Config, stream: StreamName): string {
  return join(config.dataDir, "state", `${stream}.json`);
}

/** Options of {@link readCursor}. */
export interface ReadCursorOptions {
  log: Logger;
}

/**
 * The user's cursor for `stream`, or `undefined` when the state has none (no file yet, or a
 * damaged one, which is reported and then recovered from the lake like a lost one).
 */
export async function readCursor(
  config: Config,
  stream: StreamName,
  userId: string,
  options: ReadCursorOptions,
): Promise<string | undefined> {
  const state = await readState(config, stream, options.log);
  return state?.cursors[userId]?.value;
}

async function readState(
  config: Config,
  stream: StreamName,
  log: Logger,
): Promise<StreamState | undefined> {
  const path = statePath(config, stream);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new StorageError(`Cannot read the pipeline state ${path}: ${(error as Error).message}`, {
      hint: "Check that PIPELINE_DATA_DIR/state is readable by this user.",
    });
  }
  try {
    const value: unknown = JSON.parse(text);
    const ok = isRecord(value) && value.version === 1 && value.stream === stream &&
      isRecord(value.cursors) &&
      Object.values(value.cursors).every((c) =>
        isRecord(c) && typeof c.value === "string" && !Number.isNaN(Date.parse(c.value))
      );
    if (ok) return value as unknown as StreamState; // checked above
  } catch {
    // reported below
  }
  log.warn(
    `The pipeline state ${path} is damaged: ignoring it; the ${stream} cursor is recovered from the lake`,
  );
  return undefined;
}

/** Options of {@link advanceCursor}. */
export interface AdvanceCursorOptions {
  log: Logger;
  runId: string;
}

/**
 * Moves the user's cursor forward to `value` (never back) and saves the state atomically.
 * @returns the cursor now stored.
 */
export async function advanceCursor(
  config: Config,
  stream: StreamName,
  userId: string,
  value: string,
  options: AdvanceCursorOptions,
): Promise<string> {
  const state: StreamState = (await readState(config, stream, options.log)) ??
    { version: 1, stream, cursors: {} };
  const current = state.cursors[userId]?.value;
  if (current !== undefined && Date.parse(current) >= Date.parse(value)) return current;
  state.cursors[userId] = { value, updated_at: new Date().toISOString(), run_id: options.runId };
  const path = statePath(config, stream);
  try {
    await writeJsonAtomic(path, state);
  } catch (error) {
    throw new StorageError(`Cannot save the pipeline state ${path}: ${(error as Error).message}`, {
      hint: "Check that PIPELINE_DATA_DIR is writable; the next poll re-reads what it lacks.",
      cause: error,
    });
  }
  return value;
}
