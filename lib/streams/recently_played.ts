/**
 * `recently_played`: every play Spotify reports in `GET /v1/me/player/recently-played`, polled
 * with a cursor (the newest `played_at` already in the lake) so that nothing is fetched twice and
 * nothing is lost while polls come often enough (Spotify keeps only the last 50 plays).
 *
 * Lake key `recently_played/user_id=<user>/played_date=YYYY-MM-DD/<oldest>_<newest>.parquet`, one
 * file per UTC day of the poll's plays: the same window always gives the same key. Raw table
 * `raw.recently_played`.
 * @module
 */

import {
  FEATURE_SPECS,
  RUN_COLUMNS,
  RUN_METADATA,
  TRACK_COLUMNS,
  USER_ID,
} from "./_shared_columns.ts";
import type { ColumnSpec } from "./columns.ts";
import { keySafeUser, type Row, type StreamDef } from "./stream.ts";

/** The recently-played columns, in file order. */
export const RECENTLY_PLAYED_COLUMNS: readonly ColumnSpec[] = [
  USER_ID,
  {
    name: "played_at",
    kind: "timestamp",
    nullable: false,
    description:
      "When the play was recorded, as Spotify gives it (UTC, milliseconds): Spotify documents it as the date and time the track was played; observed, it marks the end of the play.",
  },
  ...TRACK_COLUMNS,
  {
    name: "context_type",
    kind: "utf8",
    nullable: true,
    description:
      "What the play came from: playlist, album, artist, ... (null when Spotify gives none).",
  },
  {
    name: "context_uri",
    kind: "utf8",
    nullable: true,
    description: "Spotify URI of the context (null when Spotify gives none).",
  },
  ...RUN_COLUMNS,
  ...FEATURE_SPECS,
];

/** `2026-11-30T10:15:00.123Z` → `20261130T101500123Z` (sortable, key-safe). */
export function compactStamp(iso: string): string {
  return new Date(iso).toISOString().replace(/[-:.]/g, "");
}

/** `20261130T101500123Z` → `2026-11-30T10:15:00.123Z` (undefined when not such a stamp). */
export function parseCompactStamp(stamp: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(stamp);
  if (!m) return undefined;
  const iso = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`;
  return Number.isNaN(Date.parse(iso)) ? undefined : iso;
}

const KEY = /\/played_date=\d{4}-\d{2}-\d{2}\/(\d{8}T\d{9}Z)_(\d{8}T\d{9}Z)\.parquet$/;

/** The `recently_played` stream. */
export const RECENTLY_PLAYED: StreamDef = {
  name: "recently_played",
  description: "One row per play (user_id, played_at, track_id).",
  columns: RECENTLY_PLAYED_COLUMNS,
  key: ["user_id", "played_at", "track_id"],
  schemaVersion: "recently_played/1",
  runMetadata: RUN_METADATA,
  features: true,
  schedules: ["daily", "poll"],
  files: { rows: "recently_played.json", coverage: "recently_played_coverage.json" },
  rawTable: "recently_played",
  cursor: {
    column: "played_at",
    fromKey: (key) => {
      const m = KEY.exec(key);
      return m ? parseCompactStamp(m[2]!) : undefined;
    },
    lakePrefix: (userId) => `recently_played/user_id=${keySafeUser(userId)}/`,
  },
  partition(rows) {
    const groups = new Map<string, Row[]>();
    for (const row of rows) {
      const day = new Date(String(row.played_at)).toISOString().slice(0, 10);
      const id = `${keySafeUser(String(row.user_id))}\n${day}`;
      groups.set(id, [...(groups.get(id) ?? []), row]);
    }
    return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, list]) => {
      const [user, day] = id.split("\n") as [string, string];
      const times = list.map((r) => new Date(String(r.played_at)).toISOString()).sort();
      return {
        key: `recently_played/user_id=${user}/played_date=${day}/${compactStamp(times[0]!)}_${
          compactStamp(times.at(-1)!)
        }.parquet`,
        rows: list,
      };
    });
  },
  fetcher: async () => (await import("../spotify/recently_played.ts")).fetchRecentlyPlayedStream,
};
