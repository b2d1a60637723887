/**
 * `top_tracks`: the user's top tracks per time range, one snapshot a day (the original dataset).
 * Lake key `top_tracks/user_id=<user>/snapshot_date=YYYY-MM-DD/top_tracks.parquet` (one file per
 * user and day: a run for one user never replaces another's), raw table `raw.top_tracks`. Files
 * from before household accounts (`top_tracks/snapshot_date=D/top_tracks.parquet`) stay where they
 * are; their rows carry their user.
 * @module
 */

import {
  FEATURE_SPECS,
  RUN_COLUMNS,
  RUN_METADATA,
  SNAPSHOT_COLUMNS,
  TRACK_COLUMNS,
  USER_ID,
} from "./_shared_columns.ts";
import type { ColumnSpec } from "./columns.ts";
import { byUser, checkDate, keySafeUser, type StreamDef } from "./stream.ts";

/** The top-tracks columns, in file order (user_id last: existing tables gain it at the end). */
export const TOP_TRACKS_COLUMNS: readonly ColumnSpec[] = [
  ...SNAPSHOT_COLUMNS,
  ...TRACK_COLUMNS,
  ...RUN_COLUMNS,
  ...FEATURE_SPECS,
  USER_ID,
];

/**
 * The lake key of a user's snapshot file, the same in the folder store and S3.
 * @example topTracksKey("2026-01-31", "alice")
 * // "top_tracks/user_id=alice/snapshot_date=2026-01-31/top_tracks.parquet"
 */
export function topTracksKey(snapshotDate: string, userId: string): string {
  checkDate(snapshotDate, "snapshot date");
  return `top_tracks/user_id=${
    keySafeUser(userId)
  }/snapshot_date=${snapshotDate}/top_tracks.parquet`;
}

/** The `top_tracks` stream. */
export const TOP_TRACKS: StreamDef = {
  name: "top_tracks",
  description: "One row per top track per snapshot date and time range.",
  columns: TOP_TRACKS_COLUMNS,
  key: ["user_id", "snapshot_date", "time_range", "rank"],
  schemaVersion: "top_tracks/2",
  runMetadata: RUN_METADATA,
  features: true,
  schedules: ["daily"],
  files: { rows: "tracks.json", coverage: "coverage.json" },
  rawTable: "top_tracks",
  partition: (rows, { snapshotDate }) =>
    byUser(rows).map(([user, list]) => ({ key: topTracksKey(snapshotDate, user), rows: list })),
  fetcher: async () => (await import("../spotify/top_tracks.ts")).fetchTopTracksStream,
};
