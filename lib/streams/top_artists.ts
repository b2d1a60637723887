/**
 * `top_artists`: the user's top artists per time range, one snapshot a day, with their genres.
 * Lake key `top_artists/user_id=<user>/snapshot_date=YYYY-MM-DD/top_artists.parquet`, raw table
 * `raw.top_artists`.
 * @module
 */

import { RUN_COLUMNS, RUN_METADATA, SNAPSHOT_COLUMNS, USER_ID } from "./_shared_columns.ts";
import type { ColumnSpec } from "./columns.ts";
import { byUser, checkDate, keySafeUser, type StreamDef } from "./stream.ts";

/** The top-artists columns, in file order. */
export const TOP_ARTISTS_COLUMNS: readonly ColumnSpec[] = [
  USER_ID,
  ...SNAPSHOT_COLUMNS,
  { name: "artist_id", kind: "utf8", nullable: false, description: "Spotify artist id." },
  { name: "artist_name", kind: "utf8", nullable: false, description: "Artist name." },
  {
    name: "genres",
    kind: "utf8_list",
    nullable: true,
    description: "The artist's genres as Spotify lists them; null when Spotify returned none.",
  },
  {
    name: "followers",
    kind: "int32",
    nullable: true,
    description: "Follower count (null where the API does not return it).",
  },
  {
    name: "popularity",
    kind: "int32",
    nullable: true,
    description: "Spotify popularity 0..100 (null where the API no longer returns it).",
  },
  ...RUN_COLUMNS,
];

/** The `top_artists` stream. */
export const TOP_ARTISTS: StreamDef = {
  name: "top_artists",
  description: "One row per top artist per snapshot date and time range.",
  columns: TOP_ARTISTS_COLUMNS,
  key: ["user_id", "snapshot_date", "time_range", "rank"],
  schemaVersion: "top_artists/1",
  runMetadata: RUN_METADATA,
  features: false,
  schedules: ["daily"],
  files: { rows: "top_artists.json" },
  rawTable: "top_artists",
  partition(rows, { snapshotDate }) {
    checkDate(snapshotDate, "snapshot date");
    return byUser(rows).map(([user, list]) => ({
      key: `top_artists/user_id=${
        keySafeUser(user)
      }/snapshot_date=${snapshotDate}/top_artists.parquet`,
      rows: list,
    }));
  },
  fetcher: async () => (await import("../spotify/top_artists.ts")).fetchTopArtistsStream,
};
