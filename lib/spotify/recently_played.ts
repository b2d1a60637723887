/**
 * The user's recently played tracks: `GET /v1/me/player/recently-played?limit=50&after=<cursor>`,
 * each page checked against the Web API's `CursorPagingPlayHistoryObject` shape, and the
 * `recently_played` stream's fetcher.
 *
 * Spotify keeps only the last 50 plays. The cursor is the newest `played_at` already in the lake:
 * a poll asks for what came after it, drops anything at or before it (so overlapping windows never
 * repeat a play), and reports a possible gap when the page is full and its oldest play is still
 * newer than the cursor (more than 50 plays since the last poll: some were never seen).
 * @module
 */

import { SourceError } from "../errors.ts";
import type { Row, StreamFetchContext, StreamFetchResult } from "../streams/stream.ts";
import type { TrackFields } from "./top_tracks.ts";
import {
  getPage,
  isObject,
  kind,
  MissingScopeError,
  readSample,
  trackFields,
} from "./top_tracks.ts";

/** Most plays Spotify returns (and keeps). */
export const RECENTLY_PLAYED_LIMIT = 50;
/** The scope the endpoint needs. */
export const RECENTLY_PLAYED_SCOPE = "user-read-recently-played";
/** Name of the bundled sample page (in `data/`). */
export const RECENTLY_PLAYED_SAMPLE = "sample_recently_played.json";

/** One play, as fetch writes it. */
export type RecentlyPlayedRow = { user_id: string; played_at: string } & TrackFields & {
  context_type: string | null;
  context_uri: string | null;
  fetched_at: string;
  run_id: string;
};

/** A validated page (fields used here; the raw page is kept in the run folder). */
export interface RecentlyPlayedPage {
  items: unknown[];
  limit: number | null;
  next: string | null;
}

/**
 * Checks that `value` has the shape of a `CursorPagingPlayHistoryObject`.
 * @throws SourceError naming `source` and what was wrong
 */
export function validateRecentlyPlayedPage(value: unknown, source: string): RecentlyPlayedPage {
  const bad = (what: string) =>
    new SourceError(`Unexpected recently-played page from ${source}: ${what}`, {
      hint:
        "The response does not look like Spotify's CursorPagingPlayHistoryObject; see the raw page in fetch/raw/.",
    });
  if (!isObject(value)) throw bad(`expected a JSON object, found ${kind(value)}`);
  if (!Array.isArray(value.items)) {
    throw bad(`"items" is not an array (found ${kind(value.items)})`);
  }
  if (value.next !== null && value.next !== undefined && typeof value.next !== "string") {
    throw bad(`"next" is not a URL or null (found ${kind(value.next)})`);
  }
  return {
    items: value.items,
    limit: typeof value.limit === "number" ? value.limit : null,
    next: typeof value.next === "string" ? value.next : null,
  };
}

/** Options of {@link normalizeRecentlyPlayed}. */
export interface NormalizeRecentlyPlayedOptions {
  userId: string;
  runId: string;
  fetchedAt: string;
  source: string;
}

/**
 * Rows of a validated page, `played_at` normalized to ISO-8601 UTC with milliseconds (Spotify
 * sometimes leaves them out), newest first as Spotify lists them.
 * @throws SourceError naming the source and the item
 */
export function normalizeRecentlyPlayed(
  page: RecentlyPlayedPage,
  options: NormalizeRecentlyPlayedOptions,
): RecentlyPlayedRow[] {
  return page.items.map((item, i) => {
    const where = `play in the recently-played page from ${options.source}: items[${i}]`;
    if (!isObject(item)) {
      throw new SourceError(`Unexpected ${where} is ${kind(item)}, expected a play object`);
    }
    const playedAt = typeof item.played_at === "string" ? Date.parse(item.played_at) : NaN;
    if (Number.isNaN(playedAt)) {
      throw new SourceError(
        `Unexpected ${where} "played_at" is not an ISO-8601 time (found ${kind(item.played_at)})`,
      );
    }
    const context = item.context;
    if (context !== null && context !== undefined && !isObject(context)) {
      throw new SourceError(`Unexpected ${where} "context" is not an object or null`);
    }
    return {
      user_id: options.userId,
      played_at: new Date(playedAt).toISOString(),
      ...trackFields(item.track, `${where}.track`),
      context_type: isObject(context) && typeof context.type === "string" ? context.type : null,
      context_uri: isObject(context) && typeof context.uri === "string" ? context.uri : null,
      fetched_at: options.fetchedAt,
      run_id: options.runId,
    };
  });
}

/** What {@link selectNewPlays} keeps of a page. */
export interface NewPlays {
  rows: RecentlyPlayedRow[];
  /** Plays at or before the cursor (already stored). */
  alreadyStored: number;
  /** Plays listed twice in the page (same played_at and track). */
  duplicates: number;
  /** 1 when plays may have been lost since the cursor. */
  possibleGap: number;
}

/**
 * The plays of a page after the cursor, each (played_at, track_id) once, and whether plays may
 * have been lost: the page is full and even its oldest play is newer than the cursor.
 */
export function selectNewPlays(
  rows: readonly RecentlyPlayedRow[],
  options: { cursor?: string; limit: number },
): NewPlays {
  const cursorMs = options.cursor === undefined ? -Infinity : Date.parse(options.cursor);
  const seen = new Set<string>();
  const out: RecentlyPlayedRow[] = [];
  let alreadyStored = 0;
  let duplicates = 0;
  for (const row of rows) {
    if (Date.parse(row.played_at) <= cursorMs) {
      alreadyStored++;
      continue;
    }
    const key = `${row.played_at}\n${row.track_id}`;
    if (seen.has(key)) {
      duplicates++;
      continue;
    }
    seen.add(key);
    out.push(row);
  }
  const oldest = Math.min(...rows.map((r) => Date.parse(r.played_at)));
  const possibleGap = options.cursor !== undefined && rows.length >= options.limit &&
      oldest > cursorMs
    ? 1
    : 0;
  return { rows: out, alreadyStored, duplicates, possibleGap };
}

/** The `recently_played` stream's fetcher. */
export async function fetchRecentlyPlayedStream(
  ctx: StreamFetchContext,
): Promise<StreamFetchResult> {
  const { runId, log, signal, userId, now, cursor } = ctx;
  let raw: unknown;
  let source: string;
  const fetchedAt = now().toISOString();
  if (ctx.source === "sample") {
    ({ file: source, raw } = await readSample(ctx, RECENTLY_PLAYED_SAMPLE));
  } else {
    const granted = ctx.client!.tokens.scope.split(/\s+/).filter(Boolean);
    if (granted.length && !granted.includes(RECENTLY_PLAYED_SCOPE)) {
      throw new MissingScopeError(
        `The Spotify token lacks scope ${RECENTLY_PLAYED_SCOPE} (granted: ${
          granted.join(" ")
        }): run \`deno task auth\` again to collect recently played tracks`,
        RECENTLY_PLAYED_SCOPE,
      );
    }
    const after = cursor === undefined ? "" : `&after=${Date.parse(cursor)}`;
    source = `GET /v1/me/player/recently-played?limit=${RECENTLY_PLAYED_LIMIT}${after}`;
    raw = await getPage(
      ctx.client!,
      source.slice(4),
      signal,
      "recently played tracks",
      RECENTLY_PLAYED_SCOPE,
    );
  }
  await ctx.saveRaw("recently_played_0.json", raw);
  const page = validateRecentlyPlayedPage(raw, source);
  const rows = normalizeRecentlyPlayed(page, { userId, runId, fetchedAt, source });
  const limit = ctx.source === "sample" ? Infinity : RECENTLY_PLAYED_LIMIT;
  const fresh = selectNewPlays(rows, { cursor, limit });
  const warnings: string[] = [];
  if (fresh.possibleGap) {
    const oldest = rows.map((r) => r.played_at).sort()[0];
    const message =
      `recently_played: possible gap — Spotify returned a full page of ${rows.length} plays and the oldest (${oldest}) is newer than the cursor (${cursor}): plays in between were not kept by Spotify; poll more often (PIPELINE_POLL_SCHEDULE)`;
    log.warn(message);
    warnings.push(message);
  }
  const since = cursor === undefined ? "" : ` after ${cursor}`;
  const what = ctx.source === "sample" ? "the bundled SAMPLE" : "the Spotify API";
  log.info(`recently_played: ${fresh.rows.length} new play(s)${since}`, {
    listed: rows.length,
    already_stored: fresh.alreadyStored,
  });
  return {
    rows: fresh.rows as unknown as Row[],
    counts: {
      pages: 1,
      listed: rows.length,
      already_stored: fresh.alreadyStored,
      duplicates: fresh.duplicates,
      possible_gap: fresh.possibleGap,
    },
    text:
      `Fetched ${fresh.rows.length} new play(s) from ${what}${since} (${rows.length} listed, ${fresh.alreadyStored} already stored)${
        fresh.possibleGap ? " — POSSIBLE GAP, see warnings" : ""
      }.`,
    warnings,
  };
}
