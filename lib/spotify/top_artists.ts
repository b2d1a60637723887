/**
 * The user's top artists: offset paging of `GET /v1/me/top/artists` per time range (the same
 * paging as top tracks), each page checked against the Web API's `ArtistObject` shape, and the
 * `top_artists` stream's fetcher (API or the bundled sample).
 * @module
 */

import type { TimeRange } from "../config.ts";
import { SourceError } from "../errors.ts";
import type { Row, StreamFetchContext, StreamFetchResult } from "../streams/stream.ts";
import {
  checkNameLength,
  fetchTopItems,
  isObject,
  kind,
  readSampleTopPage,
  type TopTracksPage,
} from "./top_tracks.ts";

/** One top artist of one snapshot, as fetch writes it. */
export interface TopArtistRow {
  user_id: string;
  snapshot_date: string;
  time_range: TimeRange;
  rank: number;
  artist_id: string;
  artist_name: string;
  /** As Spotify lists them; `null` when the answer has no genres field. */
  genres: string[] | null;
  followers: number | null;
  popularity: number | null;
  fetched_at: string;
  run_id: string;
}

/** Name of the bundled sample page (in `data/`). */
export const TOP_ARTISTS_SAMPLE = "sample_top_artists_short_term.json";

/** Options of {@link normalizeTopArtists}. */
export interface NormalizeTopArtistsOptions {
  timeRange: TimeRange;
  snapshotDate: string;
  runId: string;
  fetchedAt: string;
  source: string;
  userId: string;
}

/**
 * Rows of a validated top-artists page; rank = offset + position + 1.
 * @throws SourceError naming the source and the item that is not an artist
 */
export function normalizeTopArtists(
  page: TopTracksPage,
  options: NormalizeTopArtistsOptions,
): TopArtistRow[] {
  return page.items.map((item, i) => {
    const bad = (what: string) =>
      new SourceError(
        `Unexpected artist in the top-artists page from ${options.source}: items[${i}] ${what}`,
      );
    if (!isObject(item)) throw bad(`is ${kind(item)}, expected an artist object`);
    if (typeof item.id !== "string" || item.id === "") {
      throw bad(`has no artist id (found ${kind(item.id)})`);
    }
    if (typeof item.name !== "string") throw bad(`(${item.id}) has no "name"`);
    checkNameLength(item.name, "name", (w) => bad(`(${item.id}) ${w}`));
    let genres: string[] | null = null;
    if (item.genres !== undefined && item.genres !== null) {
      if (!Array.isArray(item.genres) || !item.genres.every((g) => typeof g === "string")) {
        throw bad(`(${item.id}) "genres" is not a list of strings (found ${kind(item.genres)})`);
      }
      genres = item.genres;
    }
    const followers = isObject(item.followers) && Number.isInteger(item.followers.total)
      ? item.followers.total as number
      : null;
    if (
      item.popularity !== undefined && item.popularity !== null &&
      typeof item.popularity !== "number"
    ) {
      throw bad(`(${item.id}) "popularity" is not a number (found ${kind(item.popularity)})`);
    }
    return {
      user_id: options.userId,
      snapshot_date: options.snapshotDate,
      time_range: options.timeRange,
      rank: page.offset + i + 1,
      artist_id: item.id,
      artist_name: item.name,
      genres,
      followers,
      popularity: typeof item.popularity === "number" ? Math.round(item.popularity) : null,
      fetched_at: options.fetchedAt,
      run_id: options.runId,
    };
  });
}

/** The `top_artists` stream's fetcher. */
export async function fetchTopArtistsStream(ctx: StreamFetchContext): Promise<StreamFetchResult> {
  const { config, runId, snapshotDate, log, signal, userId, now } = ctx;
  const counts: Record<string, number> = { pages: 0 };
  const rows: TopArtistRow[] = [];
  const perRange: string[] = [];
  if (ctx.source === "sample") {
    const { file, page } = await readSampleTopPage(ctx, {
      name: TOP_ARTISTS_SAMPLE,
      rawName: "top_artists_short_term_0.json",
      type: "artists",
    });
    rows.push(...normalizeTopArtists(page, {
      timeRange: "short_term",
      snapshotDate,
      runId,
      fetchedAt: now().toISOString(),
      source: file,
      userId,
    }));
    counts.pages = 1;
    counts.rows_short_term = rows.length;
    perRange.push(`short_term ${rows.length}`);
  } else {
    for (const timeRange of config.spotify.timeRanges) {
      const result = await fetchTopItems(ctx.client!, {
        type: "artists",
        timeRange,
        maxTracks: config.spotify.maxTracks,
        snapshotDate,
        runId,
        log,
        signal,
        now,
        onPage: (page, offset) => ctx.saveRaw(`top_artists_${timeRange}_${offset}.json`, page),
        normalize: (page, source, fetchedAt) =>
          normalizeTopArtists(page, {
            timeRange,
            snapshotDate,
            runId,
            fetchedAt,
            source,
            userId,
          }),
      });
      rows.push(...result.rows);
      counts.pages! += result.pages;
      counts[`rows_${timeRange}`] = result.rows.length;
      perRange.push(`${timeRange} ${result.rows.length}`);
    }
  }
  const noGenres = rows.filter((r) => r.genres === null || r.genres.length === 0).length;
  counts.without_genres = noGenres;
  const what = ctx.source === "sample" ? "from the bundled SAMPLE" : "from the Spotify API";
  return {
    rows: rows as unknown as Row[],
    counts,
    text: `Fetched ${rows.length} top artists ${what} (${
      perRange.join(", ")
    }); ${noGenres} without genres.`,
    warnings: [],
  };
}
