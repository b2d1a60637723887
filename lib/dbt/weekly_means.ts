/**
 * Reads one ISO week's audio-feature means back from the `inter_top_weekly_audio_features`
 * model in the DuckDB warehouse, and formats them as the small table the pipeline prints.
 * @module
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { StorageError } from "../errors.ts";

/** The features whose means are shown, in display order. */
export const WEEKLY_FEATURES = [
  "danceability",
  "energy",
  "valence",
  "tempo",
  "loudness",
  "speechiness",
  "acousticness",
  "instrumentalness",
  "liveness",
] as const;

/** One user's time range's numbers for the week. */
export interface WeeklyMeansRow {
  user_id: string;
  time_range: string;
  snapshot_days: number;
  distinct_tracks: number;
  tracks_with_features: number;
  feature_coverage: number;
  /** Mean of each feature (null when no track had features). */
  means: Record<typeof WEEKLY_FEATURES[number], number | null>;
}

/** A week's means per time range. */
export interface WeeklyMeans {
  /** Monday of the ISO week. */
  week_start: string;
  iso_year: number;
  iso_week: number;
  rows: WeeklyMeansRow[];
}

/** Options of {@link readWeeklyMeans}. */
export interface ReadWeeklyMeansOptions {
  /** Schema of the dbt models (DBT_SCHEMA; `main` by default). */
  schema: string;
  /** Any date of the week to read (`YYYY-MM-DD`). */
  date: string;
}

const TIME_RANGE_ORDER = ["short_term", "medium_term", "long_term"];

/**
 * Reads the week containing `options.date` from `<schema>.inter_top_weekly_audio_features`
 * through a read-only connection to the DuckDB warehouse (see `withReadOnlyDuckDb`).
 * @throws StorageError when the model cannot be read.
 */
export async function readWeeklyMeans(
  connection: DuckDBConnection,
  options: ReadWeeklyMeansOptions,
): Promise<WeeklyMeans> {
  const { schema, date } = options;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new RangeError(`not a date: "${date}"`);
  const ident = `"${schema.replaceAll('"', '""')}"`;
  const week = await connection.runAndReadAll(
    `select cast(cast(date_trunc('week', date '${date}') as date) as varchar) as week_start,
            cast(isoyear(date '${date}') as integer) as iso_year,
            cast(week(date '${date}') as integer) as iso_week`,
  );
  const head = week.getRowObjectsJS()[0]!;
  const columns = WEEKLY_FEATURES.map((f) => `${f}_mean`).join(", ");
  let reader;
  try {
    reader = await connection.runAndReadAll(
      `select user_id, time_range, snapshot_days, distinct_tracks, tracks_with_features,
              feature_coverage, ${columns}
       from ${ident}.inter_top_weekly_audio_features
       where week_start = date_trunc('week', date '${date}')`,
    );
  } catch (error) {
    throw new StorageError(
      `Cannot read ${schema}.inter_top_weekly_audio_features from the DuckDB warehouse: ${
        (error as Error).message.split("\n")[0]
      }`,
      { cause: error },
    );
  }
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const rows = reader.getRowObjectsJS().map((r): WeeklyMeansRow => ({
    user_id: String(r.user_id),
    time_range: String(r.time_range),
    snapshot_days: Number(r.snapshot_days),
    distinct_tracks: Number(r.distinct_tracks),
    tracks_with_features: Number(r.tracks_with_features),
    feature_coverage: Number(r.feature_coverage),
    means: Object.fromEntries(
      WEEKLY_FEATURES.map((f) => [f, num(r[`${f}_mean`])]),
    ) as WeeklyMeansRow["means"],
  }));
  rows.sort((a, b) =>
    (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0) ||
    TIME_RANGE_ORDER.indexOf(a.time_range) - TIME_RANGE_ORDER.indexOf(b.time_range)
  );
  return {
    week_start: String(head.week_start),
    iso_year: Number(head.iso_year),
    iso_week: Number(head.iso_week),
    rows,
  };
}

/**
 * The week as a small text table: one column per time range (and user, when there are several),
 * one line per feature.
 * @example
 * formatWeeklyMeans(week)
 * // Audio features, ISO week 2026-W48 (from 2026-11-23): means over the top tracks
 * //                     short_term
 * //   tracks                    21
 * //   with features       16 (76%)
 * //   danceability           0.642
 */
export function formatWeeklyMeans(week: WeeklyMeans): string {
  const title = `Audio features, ISO week ${week.iso_year}-W${
    String(week.iso_week).padStart(2, "0")
  } (from ${week.week_start}): means over the top tracks with features`;
  if (week.rows.length === 0) return `${title}\n  (no rows for this week)`;
  const fmt = (feature: string, v: number | null) => {
    if (v === null) return "–";
    if (feature === "tempo") return `${v.toFixed(1)} BPM`;
    if (feature === "loudness") return `${v.toFixed(2)} dB`;
    return v.toFixed(3);
  };
  const lines: [string, string[]][] = [
    ...(new Set(week.rows.map((r) => r.user_id)).size > 1
      ? [["", week.rows.map((r) => r.user_id)] as [string, string[]]]
      : []),
    ["", week.rows.map((r) => r.time_range)],
    ["tracks", week.rows.map((r) => String(r.distinct_tracks))],
    [
      "with features",
      week.rows.map((r) => `${r.tracks_with_features} (${Math.round(r.feature_coverage * 100)}%)`),
    ],
    ["snapshot days", week.rows.map((r) => String(r.snapshot_days))],
    ...WEEKLY_FEATURES.map((f): [string, string[]] => [
      f,
      week.rows.map((r) => fmt(f, r.means[f])),
    ]),
  ];
  const labelWidth = Math.max(...lines.map(([label]) => label.length));
  const widths = week.rows.map((_, i) => Math.max(...lines.map(([, cells]) => cells[i]!.length)));
  const body = lines.map(([label, cells]) =>
    `  ${label.padEnd(labelWidth)}  ${cells.map((c, i) => c.padStart(widths[i]!)).join("  ")}`
      .trimEnd()
  );
  return [title, ...body].join("\n");
}
