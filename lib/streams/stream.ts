/**
 * What a stream is: one dataset carried through the same steps (fetch → enrich → write → upload
 * → load → dbt). A stream declares, in one place, its columns, natural key, how it is fetched,
 * its Parquet key layout, its hand-off files and its raw table; the steps run over the streams of
 * a run and never name one.
 * @module
 */

import type { Config } from "../config.ts";
import { sha256HexSync } from "../sha256.ts";
import type { Logger } from "../log.ts";
import type { SpotifyClient } from "../spotify/client.ts";
import type { ColumnSpec } from "./columns.ts";
import type { Schedule, StreamName } from "./names.ts";

/** A row of any stream: column name → value (checked against the stream's columns). */
export type Row = Record<string, unknown>;

/** What a stream's fetcher receives. */
export interface StreamFetchContext {
  config: Config;
  /** The run the rows belong to, and its snapshot date (UTC `YYYY-MM-DD`). */
  runId: string;
  snapshotDate: string;
  log: Logger;
  signal?: AbortSignal;
  /** `api`: `client` is set; `sample`: the bundled sample (local profile only). */
  source: "api" | "sample";
  client?: SpotifyClient;
  /** The user every row belongs to (`sample`, `sample_2` for the bundled sample's users). */
  userId: string;
  /** The bundled sample's folder of this user (source `sample`). */
  sampleDir?: string;
  /** The stream's cursor from the pipeline state, if it keeps one (see {@link StreamDef.cursor}). */
  cursor?: string;
  /** Saves a raw page in the run folder (`fetch/raw/<name>`). */
  saveRaw(name: string, page: unknown): Promise<void>;
  /** Clock (tests). */
  now: () => Date;
}

/** What a stream's fetcher returns. */
export interface StreamFetchResult {
  rows: Row[];
  /** Counts for the manifest (e.g. `pages`, `duplicates`, `possible_gap`). */
  counts: Record<string, number>;
  /** One line for the run summary. */
  text: string;
  /** Warnings for the manifest (also logged by the fetcher). */
  warnings: string[];
}

/** A stream's fetcher. */
export type StreamFetcher = (ctx: StreamFetchContext) => Promise<StreamFetchResult>;

/** One Parquet file of a stream: its lake key and rows. */
export interface Partition {
  key: string;
  rows: Row[];
}

/** A stream's definition. */
export interface StreamDef {
  name: StreamName;
  /** One line: what a row is. */
  description: string;
  /**
   * The Parquet columns in file order: what fetch produces, then (for streams with
   * {@link features}) the audio features enrich adds.
   */
  columns: readonly ColumnSpec[];
  /** Natural key: one row per key per load (checked by dbt). */
  key: readonly string[];
  /** Version of the file layout; part of the content fingerprint and the Parquet metadata. */
  schemaVersion: string;
  /** Columns left out of the content fingerprint (they change on every run, the data does not). */
  runMetadata: readonly string[];
  /** Whether enrich adds audio features to its rows (by `track_id`). */
  features: boolean;
  /** The schedules that run the stream. */
  schedules: readonly Schedule[];
  /** Name of its hand-off files in `fetch/` and `enrich/`, and of its coverage report. */
  files: { rows: string; coverage?: string };
  /** Its raw table (schema `raw` in DuckDB, SNOWFLAKE_SCHEMA in Snowflake; upper-cased there). */
  rawTable: string;
  /**
   * The column whose newest value is the stream's cursor (kept as pipeline state once the rows
   * are in the lake), and how to read it back from a lake key when the state is lost.
   */
  cursor?: {
    column: string;
    fromKey(key: string): string | undefined;
    lakePrefix(userId: string): string;
  };
  /** Splits rows into Parquet files with deterministic keys (the same rows give the same keys). */
  partition(rows: readonly Row[], ctx: { snapshotDate: string }): Partition[];
  /** Loads the fetcher (only the streams of the run are loaded). */
  fetcher(): Promise<StreamFetcher>;
}

/** Spotify user ids as they go into lake keys: as they are when key-safe, else a hash. */
export function keySafeUser(userId: string): string {
  if (/^[A-Za-z0-9_.-]{1,64}$/.test(userId) && userId !== "." && userId !== "..") return userId;
  // stable and key-safe; the id itself is in every row
  return `u${sha256HexSync(userId).slice(0, 16)}`;
}

/** The user segment (`user_id=<key-safe user>`) of a lake key, if it has one. */
export function keyUser(key: string): string | undefined {
  return /(?:^|\/)user_id=([^/]+)\//.exec(key)?.[1];
}

/** Files per user (by key-safe user id) of a list of lake keys (for the manifest's `users`). */
export function filesByUser(
  keys: readonly string[],
): Record<string, { files: number; rows?: number }> {
  const out: Record<string, { files: number; rows?: number }> = {};
  for (const key of keys) {
    const user = keyUser(key);
    if (user !== undefined) (out[user] ??= { files: 0 }).files++;
  }
  return out;
}

/** Rows grouped by `user_id`, users in order, each group in the rows' order. */
export function byUser(rows: readonly Row[]): [string, Row[]][] {
  const groups = new Map<string, Row[]>();
  for (const row of rows) {
    const user = String(row.user_id);
    let list = groups.get(user);
    if (!list) groups.set(user, list = []);
    list.push(row);
  }
  return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `YYYY-MM-DD` check for partition values. */
export function checkDate(date: string, what: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    throw new RangeError(`${what} "${date}" is not YYYY-MM-DD`);
  }
  return date;
}
