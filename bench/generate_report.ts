/**
 * A warehouse for the report's benchmark (scenario 10): the dbt models the report reads, with a
 * year of daily top-track and top-artist snapshots (3 time ranges × 50) and 100k plays, made by
 * seeded SQL in a DuckDB file. Only the columns the report reads; `deno task report` runs on it
 * as on a built warehouse.
 * @module
 */

import { UNIT_INTERVAL_FEATURES } from "../lib/features/provider.ts";

/** Bump when the generated data changes (the cached file is then rebuilt). */
export const REPORT_GENERATOR_VERSION = 1;

/** Options of {@link generateReportWarehouse}. */
export interface GenerateReportOptions {
  /** Days of snapshots, ending 2026-11-30 (default 365). */
  days?: number;
  /** Plays over those days (default 100 000). */
  plays?: number;
}

/** Writes the models into a new DuckDB file at `path` (schema `main`). */
export async function generateReportWarehouse(
  path: string,
  options: GenerateReportOptions = {},
): Promise<{ days: number; plays: number }> {
  const days = options.days ?? 365;
  const plays = options.plays ?? 100_000;
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(path);
  const c = await db.connect();
  const end = "date '2026-11-30'";
  const features = UNIT_INTERVAL_FEATURES;
  try {
    for (
      const sql of [
        "select setseed(0.7)",
        // a slowly churning top 50: each day's ranks from a rolling window of 400 tracks
        `create table top_tracks as
         select user_id, snapshot_date, week_start, time_range, rank, 't' || k as track_id,
                'Track ' || k as track_name, ['Artist ' || (k % 300)] as artist_names
         from (
           select 'bench' as user_id, (${end} - d::integer)::date as snapshot_date,
                  date_trunc('week', ${end} - d::integer)::date as week_start,
                  tr as time_range, r as rank,
                  (r * 7 + d // (case tr when 'short_term' then 3 when 'medium_term' then 20
                                 else 90 end)) % 400 as k
           from range(${days}) as a(d),
                (values ('short_term'), ('medium_term'), ('long_term')) as b(tr),
                range(1, 51) as c(r))`,
        `create table inter_top_weekly_audio_features as
         select user_id, week_start, isoyear(week_start) as iso_year, week(week_start) as iso_week,
                time_range, count(distinct snapshot_date) as snapshot_days,
                count(distinct track_id) as distinct_tracks,
                (count(distinct track_id) * 0.8)::integer as tracks_with_features,
                0.8 as feature_coverage,
                ${features.map((f) => `0.2 + 0.6 * random() as ${f}_mean`).join(", ")},
                90 + 60 * random() as tempo_mean
         from top_tracks group by all`,
        `create table plays as
         select 'bench' as user_id,
                (timestamptz '2026-11-30 23:59:59+00' - to_seconds((random() * ${days} * 86400)::bigint)) as played_at,
                'Artist ' || (floor(pow(random(), 2) * 2000))::integer as artist_name,
                (30000 + random() * 200000)::bigint as ms_played,
                240000::bigint as duration_ms
         from range(${plays})`,
        `create table daily_listening as
         select user_id, cast(played_at as date) as play_date, count(*) as plays,
                round(sum(ms_played) / 60000.0, 2) as minutes
         from plays group by all`,
        `create table top_artists as
         select 'bench' as user_id, (${end} - d::integer)::date as snapshot_date, tr as time_range,
                r as rank, 'a' || ((r * 11 + d // 4) % 300) as artist_id,
                ['genre ' || ((r + d // 30) % 40), 'genre ' || ((r * 3) % 40)] as genres
         from range(${days}) as a(d), (values ('short_term'), ('medium_term'), ('long_term')) as b(tr),
              range(1, 51) as c(r)`,
      ]
    ) await c.run(sql);
  } finally {
    c.closeSync();
    db.closeSync();
  }
  return { days, plays };
}
