/**
 * The report's data: what each chart receives, read from the dbt models (never from the raw
 * tables) through a {@link ModelReader}, per user. The queries are plain SQL both dialects run;
 * the shaping (windows, top-N, filling the hour × weekday grid) is in TypeScript, in pure
 * functions the unit tests feed with hand-made rows.
 * @module
 */

import { UNIT_INTERVAL_FEATURES } from "../features/provider.ts";
import type { FeatureName } from "../types.ts";
import type { ModelReader, ModelRow } from "./models.ts";

/** The 0..1 audio features the weekly chart draws (tempo and loudness have other units). */
export const UNIT_FEATURES = UNIT_INTERVAL_FEATURES;
/** One of {@link UNIT_FEATURES}. */
export type UnitFeature = FeatureName;

/** Spotify's time ranges, in display order. */
export const TIME_RANGES = ["short_term", "medium_term", "long_term"] as const;

/** Days of top-track snapshots the rank chart covers, ending at the user's latest snapshot. */
export const RANK_WINDOW_DAYS = 30;
/** Days the minutes-per-day chart covers, ending at the user's latest day with plays. */
export const DAYS_WINDOW = 90;
/** Ranks the rank chart follows (a track is drawn while it is in the top this many). */
export const RANK_TOP = 10;
/** Bars of the top-artists and top-genres charts. */
export const TOP_N = 10;
/** ISO weekday names, Monday first. */
export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;

/** One (ISO week, time range) of `inter_top_weekly_audio_features`. */
export interface WeekRow {
  week_start: string;
  iso_year: number;
  iso_week: number;
  time_range: string;
  snapshot_days: number;
  distinct_tracks: number;
  tracks_with_features: number;
  /** 0..1. */
  feature_coverage: number;
  /** Mean of each 0..1 feature over the week's top tracks with features (null: none). */
  means: Record<UnitFeature, number | null>;
  tempo_mean: number | null;
}

/** One point of the weekly-means chart. */
export interface FeaturePoint {
  week_start: string;
  time_range: string;
  feature: UnitFeature;
  mean: number;
}

/** A top track's short_term rank on one day. */
export interface RankRow {
  snapshot_date: string;
  rank: number;
  track_id: string;
  track_name: string;
  artist_name: string | null;
}

/** The rank chart's data: one line per track. */
export interface RankMovement {
  /** Snapshot dates in the window, oldest first. */
  dates: string[];
  /** Points (date, rank) of tracks while in the top {@link RANK_TOP}. */
  points: RankRow[];
  /** One row per track drawn: its rank on the window's first and last day (null: not in it). */
  tracks: { track_id: string; label: string; first: number | null; last: number | null }[];
}

/** One day of `daily_listening`. */
export interface DayRow {
  play_date: string;
  plays: number;
  minutes: number;
}

/** One cell of the hour × weekday grid (UTC). */
export interface HeatCell {
  /** 1 = Monday .. 7 = Sunday. */
  weekday: number;
  /** 0..23. */
  hour: number;
  plays: number;
  minutes: number;
}

/** A bar of the top-artists chart. */
export interface ArtistBar {
  artist_name: string;
  plays: number;
  minutes: number;
}

/** A bar of the top-genres chart. */
export interface GenreBar {
  genre: string;
  /** How many of the user's latest short-term top artists carry the genre. */
  artists: number;
}

/** Everything the report shows for one user. */
export interface UserReport {
  user_id: string;
  /** The latest top-tracks snapshot date (null: none yet). */
  latest_snapshot: string | null;
  weeks: WeekRow[];
  features: FeaturePoint[];
  ranks: RankMovement;
  /** The {@link DAYS_WINDOW} days ending at the latest day with plays (days without: absent). */
  days: DayRow[];
  /** Days with plays before the window. */
  days_before: number;
  heat: HeatCell[];
  artists: ArtistBar[];
  genres: GenreBar[];
  /** The top-artists snapshot the genres come from. */
  genres_snapshot: string | null;
}

/** The report's data. */
export interface ReportData {
  /** Where the models were read (for the header). */
  where: string;
  users: UserReport[];
}

/** Reads every chart's data from the models, per user (users sorted by id). */
export async function readReportData(reader: ModelReader): Promise<ReportData> {
  const m = (name: string) => reader.model(name);
  // one after the other: one connection (DuckDB) or session (Snowflake)
  const results: ModelRow[][] = [];
  for (
    const sql of [
      `select user_id, cast(week_start as varchar) as week_start, iso_year, iso_week, time_range,
              snapshot_days, distinct_tracks, tracks_with_features,
              cast(feature_coverage as double) as feature_coverage,
              ${UNIT_FEATURES.map((f) => `cast(${f}_mean as double) as ${f}_mean`).join(", ")},
              cast(tempo_mean as double) as tempo_mean
       from ${m("inter_top_weekly_audio_features")}`,
      `select user_id, cast(snapshot_date as varchar) as snapshot_date, rank, track_id,
              track_name, ${reader.first("artist_names")} as artist_name
       from ${m("top_tracks")}
       where time_range = 'short_term' and rank <= ${RANK_TOP}`,
      `select user_id, cast(play_date as varchar) as play_date, plays,
              cast(minutes as double) as minutes
       from ${m("daily_listening")}`,
      `select user_id, ${reader.isoWeekday("played_at")} as weekday,
              ${reader.hour("played_at")} as hour, count(*) as plays,
              cast(sum(coalesce(ms_played, duration_ms, 0)) / 60000.0 as double) as minutes
       from ${m("plays")}
       group by 1, 2, 3`,
      `select user_id, artist_name, count(*) as plays,
              cast(sum(coalesce(ms_played, duration_ms, 0)) / 60000.0 as double) as minutes
       from ${m("plays")}
       where artist_name is not null
       group by 1, 2
       qualify row_number() over (
         partition by user_id order by sum(coalesce(ms_played, duration_ms, 0)) desc, artist_name
       ) <= ${TOP_N}`,
      `select t.user_id, cast(t.snapshot_date as varchar) as snapshot_date, t.artist_id, t.genres
       from ${m("top_artists")} as t
       where t.time_range = 'short_term'
         and t.snapshot_date = (
           select max(l.snapshot_date) from ${m("top_artists")} as l where l.user_id = t.user_id
         )`,
    ]
  ) results.push(await reader.query(sql));
  const byUser = (rows: ModelRow[]) => {
    const out = new Map<string, ModelRow[]>();
    for (const row of rows) {
      const user = String(row.user_id);
      out.get(user)?.push(row) ?? out.set(user, [row]);
    }
    return out;
  };
  const groups = results.map(byUser);
  const users = [...new Set(groups.flatMap((g) => [...g.keys()]))].sort();
  return {
    where: reader.where,
    users: users.map((user) => {
      const [weeks, ranks, days, heat, artists, genres] = groups.map((g) => g.get(user) ?? []);
      const weekList = weekRowsOf(weeks!);
      const rankList = ranks!.map(rankRowOf);
      const genreSnapshot = genres!.length ? String(genres![0]!.snapshot_date) : null;
      return {
        user_id: user,
        latest_snapshot: rankList.reduce<string | null>(
          (max, r) => max === null || r.snapshot_date > max ? r.snapshot_date : max,
          null,
        ),
        weeks: weekList,
        features: featurePoints(weekList),
        ranks: rankMovement(rankList),
        ...dayWindow(days!.map((r) => ({
          play_date: String(r.play_date),
          plays: num(r.plays),
          minutes: num(r.minutes),
        }))),
        heat: heatGrid(heat!.map((r) => ({
          weekday: num(r.weekday),
          hour: num(r.hour),
          plays: num(r.plays),
          minutes: num(r.minutes),
        }))),
        artists: topArtists(artists!.map((r) => ({
          artist_name: String(r.artist_name),
          plays: num(r.plays),
          minutes: num(r.minutes),
        }))),
        genres: topGenres(genres!.map((r) => genreList(r.genres))),
        genres_snapshot: genreSnapshot,
      };
    }),
  };
}

function weekRowsOf(rows: ModelRow[]): WeekRow[] {
  return rows.map((r) => ({
    week_start: String(r.week_start),
    iso_year: num(r.iso_year),
    iso_week: num(r.iso_week),
    time_range: String(r.time_range),
    snapshot_days: num(r.snapshot_days),
    distinct_tracks: num(r.distinct_tracks),
    tracks_with_features: num(r.tracks_with_features),
    feature_coverage: num(r.feature_coverage),
    means: Object.fromEntries(UNIT_FEATURES.map((f) => [f, numOrNull(r[`${f}_mean`])])) as Record<
      UnitFeature,
      number | null
    >,
    tempo_mean: numOrNull(r.tempo_mean),
  })).sort((a, b) => cmp(a.week_start, b.week_start) || rangeOrder(a.time_range, b.time_range));
}

function rankRowOf(r: ModelRow): RankRow {
  return {
    snapshot_date: String(r.snapshot_date),
    rank: num(r.rank),
    track_id: String(r.track_id),
    track_name: String(r.track_name ?? r.track_id),
    artist_name: r.artist_name === null || r.artist_name === undefined
      ? null
      : String(r.artist_name),
  };
}

/** The weekly-means chart's points: one per (week, time range, feature) with a mean. */
export function featurePoints(weeks: readonly WeekRow[]): FeaturePoint[] {
  const out: FeaturePoint[] = [];
  for (const w of weeks) {
    for (const feature of UNIT_FEATURES) {
      const mean = w.means[feature];
      if (mean !== null) {
        out.push({ week_start: w.week_start, time_range: w.time_range, feature, mean });
      }
    }
  }
  return out;
}

/**
 * The rank chart's data: the {@link RANK_WINDOW_DAYS} days ending at the latest snapshot, the
 * points of ranks 1..{@link RANK_TOP}, and per track its rank on the first and last day.
 */
export function rankMovement(rows: readonly RankRow[]): RankMovement {
  const latest = rows.reduce((max, r) => r.snapshot_date > max ? r.snapshot_date : max, "");
  if (!latest) return { dates: [], points: [], tracks: [] };
  const start = addDays(latest, -(RANK_WINDOW_DAYS - 1));
  const points = rows.filter((r) => r.snapshot_date >= start && r.rank <= RANK_TOP)
    .sort((a, b) => cmp(a.snapshot_date, b.snapshot_date) || a.rank - b.rank);
  const dates = [...new Set(points.map((p) => p.snapshot_date))];
  const first = dates[0]!;
  const tracks = new Map<string, RankMovement["tracks"][number]>();
  for (const p of points) {
    let t = tracks.get(p.track_id);
    if (!t) {
      const label = p.artist_name ? `${p.track_name} — ${p.artist_name}` : p.track_name;
      t = { track_id: p.track_id, label, first: null, last: null };
      tracks.set(p.track_id, t);
    }
    if (p.snapshot_date === first) t.first = p.rank;
    if (p.snapshot_date === latest) t.last = p.rank;
  }
  const order = (t: RankMovement["tracks"][number]) => t.last ?? RANK_TOP + (t.first ?? RANK_TOP);
  return {
    dates,
    points,
    tracks: [...tracks.values()].sort((a, b) => order(a) - order(b) || cmp(a.label, b.label)),
  };
}

/** The days of the {@link DAYS_WINDOW} ending at the latest one, oldest first. */
export function dayWindow(rows: readonly DayRow[]): { days: DayRow[]; days_before: number } {
  const sorted = [...rows].sort((a, b) => cmp(a.play_date, b.play_date));
  const latest = sorted.at(-1)?.play_date;
  if (latest === undefined) return { days: [], days_before: 0 };
  const start = addDays(latest, -(DAYS_WINDOW - 1));
  const days = sorted.filter((d) => d.play_date >= start);
  return { days, days_before: sorted.length - days.length };
}

/** The full 7 × 24 grid (Monday first, hours 0..23), empty cells as zeros. */
export function heatGrid(cells: readonly HeatCell[]): HeatCell[] {
  const at = new Map(cells.map((c) => [`${c.weekday}:${c.hour}`, c]));
  const out: HeatCell[] = [];
  for (let weekday = 1; weekday <= 7; weekday++) {
    for (let hour = 0; hour < 24; hour++) {
      const c = at.get(`${weekday}:${hour}`);
      out.push({ weekday, hour, plays: c?.plays ?? 0, minutes: c?.minutes ?? 0 });
    }
  }
  return out;
}

/** The top {@link TOP_N} artists by minutes (then plays, then name). */
export function topArtists(rows: readonly ArtistBar[]): ArtistBar[] {
  return [...rows].sort((a, b) =>
    b.minutes - a.minutes || b.plays - a.plays || cmp(a.artist_name, b.artist_name)
  ).slice(0, TOP_N);
}

/** The {@link TOP_N} genres carried by most of the given artists' genre lists. */
export function topGenres(genreLists: readonly string[][]): GenreBar[] {
  const counts = new Map<string, number>();
  for (const list of genreLists) {
    for (const genre of new Set(list)) counts.set(genre, (counts.get(genre) ?? 0) + 1);
  }
  return [...counts].map(([genre, artists]) => ({ genre, artists }))
    .sort((a, b) => b.artists - a.artists || cmp(a.genre, b.genre))
    .slice(0, TOP_N);
}

/** A genres value as the drivers give it: a list, JSON text of one (Snowflake), or null. */
export function genreList(value: unknown): string[] {
  let list = value;
  if (typeof value === "string") {
    try {
      list = JSON.parse(value);
    } catch {
      return [];
    }
  }
  return Array.isArray(list)
    ? list.filter((g): g is string => typeof g === "string" && g !== "")
    : [];
}

/** `date` (YYYY-MM-DD) plus `days`. */
export function addDays(date: string, days: number): string {
  const t = Date.parse(`${date.slice(0, 10)}T00:00:00Z`) + days * 86_400_000;
  return new Date(t).toISOString().slice(0, 10);
}

function num(value: unknown): number {
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

function numOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function rangeOrder(a: string, b: string): number {
  const i = (r: string) => {
    const k = (TIME_RANGES as readonly string[]).indexOf(r);
    return k < 0 ? TIME_RANGES.length : k;
  };
  return i(a) - i(b) || cmp(a, b);
}
