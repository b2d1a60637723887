/**
 * Reads the listening numbers back from the dbt models in the DuckDB warehouse (`plays`,
 * `daily_listening`, `top_artists`) and formats the lines the pipeline prints after the build.
 * @module
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { StorageError } from "../errors.ts";

/** What the listening models hold. */
export interface ListeningSummary {
  plays: number;
  days: number;
  minutes: number;
  first_day: string | null;
  last_day: string | null;
  /** The latest short_term (else any range) top artists, best first (at most 5). */
  top_artists: string[];
  /** The same per user (by user id), when the models hold more than one. */
  users?: Record<string, Omit<ListeningSummary, "users">>;
}

/**
 * Reads the listening summary from `<schema>` through a read-only connection to the DuckDB
 * warehouse (see `withReadOnlyDuckDb`).
 * @throws StorageError when a model cannot be read.
 */
export async function readListening(
  connection: DuckDBConnection,
  schema: string,
): Promise<ListeningSummary> {
  const ident = `"${schema.replaceAll('"', '""')}"`;
  try {
    const read = async (where: string) => {
      const [totals] = (await connection.runAndReadAll(
        `select coalesce(sum(plays), 0)::bigint as plays, count(distinct play_date)::bigint as days,
                coalesce(sum(minutes), 0)::double as minutes,
                cast(min(play_date) as varchar) as first_day,
                cast(max(play_date) as varchar) as last_day
         from ${ident}.daily_listening where ${where}`,
      )).getRowObjectsJS();
      const artists = (await connection.runAndReadAll(
        `select artist_name from ${ident}.top_artists
         where snapshot_date = (select max(snapshot_date) from ${ident}.top_artists where ${where})
           and ${where}
         order by time_range <> 'short_term', time_range, rank limit 5`,
      )).getRowObjectsJS().map((r) => String(r.artist_name));
      return {
        plays: Number(totals?.plays ?? 0),
        days: Number(totals?.days ?? 0),
        minutes: Number(totals?.minutes ?? 0),
        first_day: totals?.first_day === null ? null : String(totals?.first_day),
        last_day: totals?.last_day === null ? null : String(totals?.last_day),
        top_artists: artists,
      };
    };
    const all: ListeningSummary = await read("true");
    const ids = (await connection.runAndReadAll(
      `select user_id from ${ident}.daily_listening union select user_id from ${ident}.top_artists
       order by 1`,
    )).getRowObjectsJS().map((r) => String(r.user_id));
    if (ids.length > 1) {
      all.users = {};
      for (const id of ids) all.users[id] = await read(`user_id = '${id.replaceAll("'", "''")}'`);
    }
    return all;
  } catch (error) {
    throw new StorageError(
      `Cannot read the listening models (schema ${schema}) from the DuckDB warehouse: ${
        (error as Error).message.split("\n")[0]
      }`,
      { cause: error },
    );
  }
}

/**
 * The listening lines.
 * @example
 * formatListening(summary)
 * // Listening (plays, daily_listening): 30 plays on 5 days from 2016-12-13 to 2026-11-30, 120 minutes
 * // Top artists (latest snapshot): Vetusta Morla, Extremoduro, ...
 */
export function formatListening(s: ListeningSummary): string {
  if (s.users) {
    return Object.entries(s.users).map(([id, u]) =>
      formatListening(u).replaceAll("Listening (", `Listening of ${id} (`).replaceAll(
        "Top artists (",
        `Top artists of ${id} (`,
      )
    ).join("\n");
  }
  const lines = [
    s.plays === 0
      ? "Listening (plays, daily_listening): no plays yet — `deno task poll` collects them"
      : `Listening (plays, daily_listening): ${s.plays} plays on ${s.days} day(s) from ${s.first_day} to ${s.last_day}, ${
        Math.round(s.minutes)
      } minutes`,
  ];
  if (s.top_artists.length) {
    lines.push(`Top artists (latest snapshot): ${s.top_artists.join(", ")}`);
  }
  return lines.join("\n");
}
