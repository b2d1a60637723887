/**
 * The user's top tracks: offset paging of `GET /v1/me/top/tracks` for one time range, validation
 * of each page against the Web API's `PagingTrackObject` shape, and normalization to
 * {@link TopTrackRow}. A page of the wrong shape is an error naming the URL and what was wrong,
 * never silently dropped rows. Duplicate tracks (Spotify does return them) are kept with their
 * ranks and counted.
 * @module
 */

import { join } from "node:path";
import type { TimeRange } from "../config.ts";
import { ConfigError, SourceError } from "../errors.ts";
import { HttpError, NetworkError } from "../http.ts";
import type { Logger } from "../log.ts";
import type { Row, StreamFetchContext, StreamFetchResult } from "../streams/stream.ts";
import type { TopTrackRow } from "../types.ts";
import type { SpotifyClient } from "./client.ts";

/** Largest `limit` Spotify accepts for top items. */
export const PAGE_LIMIT = 50;

/** The two kinds of top items (`GET /v1/me/top/{type}`). */
export type TopItemType = "tracks" | "artists";

/** A validated page of `GET /v1/me/top/tracks` (fields used here; the raw page keeps the rest). */
export interface TopTracksPage {
  href: string | null;
  items: unknown[];
  limit: number;
  offset: number;
  next: string | null;
  total: number;
}

/**
 * Checks that `value` has the shape of a Web API paging object of tracks.
 * @param source the URL (or file) it came from, named in the error
 * @throws SourceError naming `source` and what was wrong
 */
export function validateTopTracksPage(value: unknown, source: string): TopTracksPage {
  return validateTopPage(value, source, "tracks");
}

/** {@link validateTopTracksPage} for `tracks` or `artists` pages. */
export function validateTopPage(
  value: unknown,
  source: string,
  type: TopItemType,
): TopTracksPage {
  const bad = (what: string) =>
    new SourceError(`Unexpected top-${type} page from ${source}: ${what}`, {
      hint: `The response does not look like Spotify's ${
        type === "tracks" ? "PagingTrackObject" : "PagingArtistObject"
      }; see the raw page in fetch/raw/.`,
    });
  if (!isObject(value)) throw bad(`expected a JSON object, found ${kind(value)}`);
  if (!Array.isArray(value.items)) {
    throw bad(`"items" is not an array (found ${kind(value.items)})`);
  }
  for (const key of ["total", "limit", "offset"] as const) {
    const n = value[key];
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
      throw bad(`"${key}" is not a non-negative integer (found ${kind(n)})`);
    }
  }
  if (value.next !== null && value.next !== undefined && typeof value.next !== "string") {
    throw bad(`"next" is not a URL or null (found ${kind(value.next)})`);
  }
  return {
    href: typeof value.href === "string" ? value.href : null,
    items: value.items,
    limit: value.limit as number,
    offset: value.offset as number,
    next: typeof value.next === "string" ? value.next : null,
    total: value.total as number,
  };
}

/** Options of {@link normalizeTopTracks}. */
export interface NormalizeOptions {
  timeRange: TimeRange;
  snapshotDate: string;
  runId: string;
  /** ISO-8601 UTC time of the request. */
  fetchedAt: string;
  /** URL or file the page came from, named in errors. */
  source: string;
  /** The user the rows belong to (set on every row). */
  userId?: string;
}

/**
 * Turns a validated page into rows; rank = offset + position + 1.
 * @throws SourceError naming the source and the item that is not a track
 */
export function normalizeTopTracks(page: TopTracksPage, options: NormalizeOptions): TopTrackRow[] {
  return page.items.map((item, i) =>
    normalizeTrack(item, page.offset + i + 1, i, {
      ...options,
      what: "track in the top-tracks page",
    })
  );
}

/** The track fields of a Web API `TrackObject` (shared by top tracks and recently played). */
export type TrackFields = Omit<
  TopTrackRow,
  "user_id" | "snapshot_date" | "time_range" | "rank" | "fetched_at" | "run_id"
>;

/**
 * Checks a Web API `TrackObject` and returns its fields.
 * @param where how errors name it (`track in the recently-played page from ...: items[3].track`)
 * @throws SourceError naming where and what is wrong
 */
export function trackFields(item: unknown, where: string): TrackFields {
  const bad = (what: string) => new SourceError(`Unexpected ${where} ${what}`);
  return trackFieldsOf(item, bad);
}

function normalizeTrack(
  item: unknown,
  rank: number,
  index: number,
  options: NormalizeOptions & { what: string },
): TopTrackRow {
  const bad = (what: string) =>
    new SourceError(`Unexpected ${options.what} from ${options.source}: items[${index}] ${what}`);
  return {
    user_id: options.userId ?? "",
    snapshot_date: options.snapshotDate,
    time_range: options.timeRange,
    rank,
    ...trackFieldsOf(item, bad),
    fetched_at: options.fetchedAt,
    run_id: options.runId,
  };
}

/** The longest name kept (Spotify's are far shorter; a longer one is not a track's). */
export const MAX_NAME_LENGTH = 1000;

/** Throws when a name is longer than {@link MAX_NAME_LENGTH}. */
export function checkNameLength(
  value: string,
  field: string,
  bad: (what: string) => SourceError,
): string {
  if (value.length > MAX_NAME_LENGTH) {
    throw bad(`"${field}" is ${value.length} characters long (at most ${MAX_NAME_LENGTH})`);
  }
  return value;
}

function trackFieldsOf(item: unknown, bad: (what: string) => SourceError): TrackFields {
  if (!isObject(item)) throw bad(`is ${kind(item)}, expected a track object`);
  if (typeof item.id !== "string" || item.id === "") {
    throw bad(`has no track id (found ${kind(item.id)})`);
  }
  if (typeof item.name !== "string") throw bad(`(${item.id}) has no "name"`);
  checkNameLength(item.name, "name", (w) => bad(`(${item.id}) ${w}`));
  if (!Array.isArray(item.artists)) {
    throw bad(`(${item.id}) "artists" is not an array (found ${kind(item.artists)})`);
  }
  const artistIds: string[] = [];
  const artistNames: string[] = [];
  item.artists.forEach((artist, j) => {
    if (!isObject(artist) || typeof artist.name !== "string") {
      throw bad(`(${item.id}) artists[${j}] has no "name"`);
    }
    if (typeof artist.id !== "string") {
      throw bad(`(${item.id}) artists[${j}] has no "id" (found ${kind(artist.id)})`);
    }
    checkNameLength(artist.name, `artists[${j}].name`, (w) => bad(`(${item.id}) ${w}`));
    artistIds.push(artist.id);
    artistNames.push(artist.name);
  });
  if (typeof item.duration_ms !== "number" || !Number.isFinite(item.duration_ms)) {
    throw bad(`(${item.id}) "duration_ms" is not a number (found ${kind(item.duration_ms)})`);
  }
  if (typeof item.explicit !== "boolean") {
    throw bad(`(${item.id}) "explicit" is not a boolean (found ${kind(item.explicit)})`);
  }
  if (
    item.popularity !== undefined && item.popularity !== null &&
    typeof item.popularity !== "number"
  ) {
    throw bad(`(${item.id}) "popularity" is not a number (found ${kind(item.popularity)})`);
  }
  // Spotify documents album and external_ids as objects (never null); an absent one is tolerated
  for (const key of ["album", "external_ids"] as const) {
    if (item[key] !== undefined && !isObject(item[key])) {
      throw bad(`(${item.id}) "${key}" is not an object (found ${kind(item[key])})`);
    }
  }
  const album = isObject(item.album) ? item.album : {};
  const externalIds = isObject(item.external_ids) ? item.external_ids : {};
  return {
    track_id: item.id,
    track_name: item.name,
    artist_ids: artistIds,
    artist_names: artistNames,
    album_id: typeof album.id === "string" ? album.id : null,
    album_name: typeof album.name === "string"
      ? checkNameLength(album.name, "album.name", (w) => bad(`(${item.id}) ${w}`))
      : null,
    album_release_date: typeof album.release_date === "string" ? album.release_date : null,
    duration_ms: Math.round(item.duration_ms),
    explicit: item.explicit,
    popularity: typeof item.popularity === "number" ? item.popularity : null,
    isrc: typeof externalIds.isrc === "string" && externalIds.isrc ? externalIds.isrc : null,
  };
}

/** A track id that appears more than once in one time range's list, with its ranks. */
export interface Duplicate {
  track_id: string;
  ranks: number[];
}

/** Finds track ids listed more than once (each kept with its ranks). */
export function findDuplicates(rows: readonly TopTrackRow[]): Duplicate[] {
  const ranks = new Map<string, number[]>();
  for (const row of rows) {
    const list = ranks.get(row.track_id);
    if (list) list.push(row.rank);
    else ranks.set(row.track_id, [row.rank]);
  }
  return [...ranks].filter(([, r]) => r.length > 1).map(([track_id, r]) => ({
    track_id,
    ranks: r,
  }));
}

/** Options of {@link fetchTopTracks}. */
export interface FetchTopTracksOptions {
  timeRange: TimeRange;
  /** Most items to fetch (pages of up to 50). */
  maxTracks: number;
  snapshotDate: string;
  runId: string;
  log: Logger;
  signal?: AbortSignal;
  /** Receives each raw page before validation (to save it), with its offset. */
  onPage?: (page: unknown, offset: number) => Promise<void>;
  /** Clock (tests). */
  now?: () => Date;
  /** Set on every row. */
  userId?: string;
}

/** What {@link fetchTopTracks} returns. */
export interface FetchTopTracksResult {
  rows: TopTrackRow[];
  pages: number;
  /** Extra occurrences of tracks listed more than once (kept). */
  duplicates: number;
  /** `total` of the last page (how many Spotify says it has). */
  total: number;
}

/**
 * Fetches one time range with offset paging (`limit` = min(50, what is left), `offset` += items)
 * until `maxTracks`, an empty or short page, or `next: null`.
 * @throws SourceError for HTTP failures, a page of the wrong shape or a body that is not JSON
 */
export async function fetchTopTracks(
  client: Pick<SpotifyClient, "getJson">,
  options: FetchTopTracksOptions,
): Promise<FetchTopTracksResult> {
  const { timeRange, snapshotDate, runId, log, userId } = options;
  const { rows, pages, total } = await fetchTopItems(client, {
    ...options,
    type: "tracks",
    normalize: (page, source, fetchedAt) =>
      normalizeTopTracks(page, { timeRange, snapshotDate, runId, fetchedAt, source, userId }),
  });
  const dups = findDuplicates(rows);
  const duplicates = dups.reduce((n, d) => n + d.ranks.length - 1, 0);
  if (duplicates > 0) {
    log.info(
      `${timeRange}: ${duplicates} duplicate track listing(s) kept with their ranks`,
      { duplicates: dups.slice(0, 10) },
    );
  }
  log.info(`${timeRange}: ${rows.length} top track(s) in ${pages} page(s)`, {
    time_range: timeRange,
    rows: rows.length,
    total,
  });
  return { rows, pages, duplicates, total };
}

/** Options of {@link fetchTopItems}. */
export interface FetchTopItemsOptions<R> extends FetchTopTracksOptions {
  type: TopItemType;
  /** Rows of one validated page (`source` names the request in errors). */
  normalize: (page: TopTracksPage, source: string, fetchedAt: string) => R[];
}

/**
 * Offset paging of `GET /v1/me/top/{type}` for one time range: `limit` = min(50, what is left),
 * `offset` += items, until `maxTracks`, an empty or short page, or `next: null`.
 * @throws SourceError for HTTP failures, a page of the wrong shape or a body that is not JSON
 */
export async function fetchTopItems<R>(
  client: Pick<SpotifyClient, "getJson">,
  options: FetchTopItemsOptions<R>,
): Promise<{ rows: R[]; pages: number; total: number }> {
  const { timeRange, maxTracks, signal, onPage, type, normalize } = options;
  const now = options.now ?? (() => new Date());
  const rows: R[] = [];
  let pages = 0;
  let total = 0;
  let offset = 0;
  while (offset < maxTracks) {
    const limit = Math.min(PAGE_LIMIT, maxTracks - offset);
    const path = `/v1/me/top/${type}?time_range=${timeRange}&limit=${limit}&offset=${offset}`;
    const fetchedAt = now().toISOString();
    const raw = await getPage(
      client,
      path,
      signal,
      type === "tracks" ? "top tracks" : "top artists",
    );
    pages++;
    await onPage?.(raw, offset);
    const source = `GET ${path}`;
    const page = validateTopPage(raw, source, type);
    if (page.offset !== offset) {
      throw new SourceError(
        `Unexpected top-${type} page from ${source}: "offset" is ${page.offset}, requested ${offset}`,
      );
    }
    if (page.items.length > limit) {
      throw new SourceError(
        `Unexpected top-${type} page from ${source}: ${page.items.length} items, requested at most ${limit}`,
      );
    }
    rows.push(...normalize(page, source, fetchedAt));
    total = page.total;
    offset += page.items.length;
    if (page.items.length < limit || page.next === null || offset >= page.total) break;
  }
  return { rows, pages, total };
}

/**
 * GET a Web API page, turning HTTP and network failures into one-line {@link SourceError}s (a
 * 403 for a missing scope and Spotify's daily quota have errors of their own).
 * @param what what is fetched, for messages (`top tracks`, `recently played`)
 * @param scope the scope the request needs
 */
export async function getPage(
  client: Pick<SpotifyClient, "getJson">,
  path: string,
  signal?: AbortSignal,
  what = "top tracks",
  scope = "user-top-read",
): Promise<unknown> {
  try {
    return await client.getJson(path, { signal });
  } catch (error) {
    if (error instanceof HttpError) {
      if (error.status === 403 && /insufficient client scope/i.test(error.body)) {
        throw new MissingScopeError(
          `Spotify refused ${what}: the token lacks scope ${scope} (HTTP 403 "Insufficient client scope"): run \`deno task auth\` again`,
          scope,
          { cause: error },
        );
      }
      if (error.status === 429 && isQuotaExceeded(error.body)) {
        throw new QuotaExceededError(
          `Spotify's daily quota for this app is used up (HTTP 429 QUOTA_EXCEEDED) while fetching ${what}: not retried; it resets within a day (the quota is shared by every user of the app)`,
          { cause: error },
        );
      }
      const hints: Record<number, string> = {
        401: "Spotify rejected the access token even after a refresh: run `deno task auth` again",
        403:
          `Spotify refused access: an app in development mode needs an owner with Spotify Premium (since 2026) and serves only the users (at most 5) added under User Management in its dashboard; the token also needs scope ${scope} (run \`deno task auth\`)`,
        429: "Spotify kept rate-limiting after the retries: try again later",
      };
      throw new SourceError(
        `GET ${error.url}?${path.split("?")[1]} failed with HTTP ${error.status}${
          error.body ? `: ${error.body.slice(0, 200)}` : ""
        }`,
        {
          hint: hints[error.status] ??
            (error.status >= 500 ? "Spotify is failing; try again later" : undefined),
          cause: error,
        },
      );
    }
    if (error instanceof NetworkError) {
      throw new SourceError(`Cannot fetch ${what} from Spotify: ${error.message}`, {
        hint: "Check the network (and SPOTIFY_API_URL, HTTP_TIMEOUT_MS).",
        cause: error,
      });
    }
    throw error;
  }
}

/** A 403 "Insufficient client scope": the token lacks `scope` (run `deno task auth` again). */
export class MissingScopeError extends SourceError {
  override name = "MissingScopeError";
  readonly scope: string;
  constructor(message: string, scope: string, options?: { cause?: unknown }) {
    super(message, { hint: "Run `deno task auth` again to grant the scope.", ...options });
    this.scope = scope;
  }
}

/** Spotify's 429 with reason QUOTA_EXCEEDED: the app's daily quota, shared by all its clients. */
export class QuotaExceededError extends SourceError {
  override name = "QuotaExceededError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, {
      hint: "Spotify's quota is per app and day: the next scheduled run continues.",
      ...options,
    });
  }
}

/** Whether a 429 body says QUOTA_EXCEEDED (the daily quota, not a rate limit). */
export function isQuotaExceeded(body: string): boolean {
  return /"reason"\s*:\s*"QUOTA_EXCEEDED"/.test(body) || /\bQUOTA_EXCEEDED\b/.test(body);
}

/** Whether a value is a JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** How a value is named in errors. */
export function kind(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  }
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

/**
 * The `top_tracks` stream's fetcher: every configured time range from the API, or the bundled
 * sample page (`short_term` only; local profile only). Raw pages go to `fetch/raw/`.
 */
export async function fetchTopTracksStream(ctx: StreamFetchContext): Promise<StreamFetchResult> {
  const { config, runId, snapshotDate, log, signal, userId, now } = ctx;
  const counts: Record<string, number> = { pages: 0, duplicates: 0 };
  const perRange: string[] = [];
  const warnings: string[] = [];
  const rows: TopTrackRow[] = [];
  if (ctx.source === "sample") {
    if (config.profile === "prod") {
      throw new ConfigError("The bundled sample cannot be used in the prod profile");
    }
    const timeRange: TimeRange = "short_term";
    const others = config.spotify.timeRanges.filter((r) => r !== timeRange);
    if (others.length) log.warn(`The sample has short_term only; skipping ${others.join(", ")}`);
    const { file, page } = await readSampleTopPage(ctx, {
      name: TOP_TRACKS_SAMPLE,
      rawName: `${timeRange}_0.json`,
      type: "tracks",
    });
    rows.push(...normalizeTopTracks(page, {
      timeRange,
      snapshotDate,
      runId,
      fetchedAt: now().toISOString(),
      source: file,
      userId,
    }));
    counts.pages = 1;
    counts.duplicates = findDuplicates(rows).reduce((n, d) => n + d.ranks.length - 1, 0);
    counts[`rows_${timeRange}`] = rows.length;
    perRange.push(`${timeRange} ${rows.length}`);
  } else {
    for (const timeRange of config.spotify.timeRanges) {
      const result = await fetchTopTracks(ctx.client!, {
        timeRange,
        maxTracks: config.spotify.maxTracks,
        snapshotDate,
        runId,
        log,
        signal,
        now,
        userId,
        onPage: (page, offset) => ctx.saveRaw(`${timeRange}_${offset}.json`, page),
      });
      rows.push(...result.rows);
      counts[`rows_${timeRange}`] = result.rows.length;
      counts.pages! += result.pages;
      counts.duplicates! += result.duplicates;
      perRange.push(`${timeRange} ${result.rows.length}`);
      if (result.rows.length === 0) {
        log.warn(`${timeRange}: Spotify returned no top tracks (a new or little-used account?)`);
      }
    }
  }
  const dup = counts.duplicates ? `; ${counts.duplicates} duplicate listing(s) kept` : "";
  const text = ctx.source === "sample"
    ? `Fetched ${rows.length} tracks from the bundled SAMPLE (${
      perRange.join(", ")
    }), not your Spotify data${dup}.`
    : `Fetched ${rows.length} top tracks from the Spotify API for ${snapshotDate} (${
      perRange.join(", ")
    }) in ${counts.pages} page(s)${dup}.`;
  return { rows: rows as unknown as Row[], counts, text, warnings };
}

/** Name of the bundled sample page (in `data/`, and each sample user's folder). */
export const TOP_TRACKS_SAMPLE = "sample_top_tracks_short_term.json";

/**
 * The user's bundled sample top-`type` page `name` (short_term only), saved as the run's raw page
 * `rawName`, checked as the API's would be and cut to SPOTIFY_MAX_TRACKS items.
 */
export async function readSampleTopPage(
  ctx: Pick<StreamFetchContext, "config" | "sampleDir" | "saveRaw">,
  options: { name: string; rawName: string; type: TopItemType },
): Promise<{ file: string; page: TopTracksPage }> {
  const { file, raw } = await readSample(ctx, options.name);
  await ctx.saveRaw(options.rawName, raw);
  const page = validateTopPage(raw, file, options.type);
  page.items = page.items.slice(0, ctx.config.spotify.maxTracks);
  return { file, page };
}

/**
 * Reads the bundled sample response `name` of the fetcher's user (their `sampleDir`, else
 * `data/`): its path and parsed body, a ConfigError naming the file when it cannot.
 */
export async function readSample(
  ctx: Pick<StreamFetchContext, "config" | "sampleDir">,
  name: string,
): Promise<{ file: string; raw: unknown }> {
  const file = join(ctx.sampleDir ?? join(ctx.config.projectRoot, "data"), name);
  try {
    return { file, raw: JSON.parse(await Deno.readTextFile(file)) };
  } catch (error) {
    throw new ConfigError(`Cannot read the bundled sample "${file}": ${(error as Error).message}`);
  }
}
