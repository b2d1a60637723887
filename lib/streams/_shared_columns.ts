/**
 * Column groups several streams share: the user, a track as Spotify describes it, the audio
 * features enrich adds, and the run metadata.
 * @module
 */

import { FEATURE_COLUMNS, type FeatureName } from "../types.ts";
import type { ColumnSpec } from "./columns.ts";

/** `user_id`: the Spotify user the row belongs to (`sample` for the bundled sample). */
export const USER_ID: ColumnSpec = {
  name: "user_id",
  kind: "utf8",
  nullable: false,
  description: "Spotify user id the row belongs to (`sample` for the bundled sample data).",
};

/** A daily top list's position: the snapshot date, the time range and the rank. */
export const SNAPSHOT_COLUMNS: readonly ColumnSpec[] = [
  {
    name: "snapshot_date",
    kind: "date",
    nullable: false,
    description: "UTC date of the run that fetched the list.",
  },
  {
    name: "time_range",
    kind: "utf8",
    nullable: false,
    description: "Spotify time range (short_term, medium_term, long_term).",
  },
  {
    name: "rank",
    kind: "int32",
    nullable: false,
    description: "1-based position in the top list.",
  },
];

/** A track's fields, in file order (as top tracks have always had them). */
export const TRACK_COLUMNS: readonly ColumnSpec[] = [
  { name: "track_id", kind: "utf8", nullable: false, description: "Spotify track id." },
  { name: "track_name", kind: "utf8", nullable: false, description: "Track name." },
  {
    name: "artist_ids",
    kind: "utf8_list",
    nullable: false,
    description: "Spotify artist ids, in Spotify's order (DuckDB VARCHAR[], Snowflake ARRAY).",
  },
  {
    name: "artist_names",
    kind: "utf8_list",
    nullable: false,
    description: "Artist names, in the same order as artist_ids.",
  },
  { name: "album_id", kind: "utf8", nullable: true, description: "Spotify album id." },
  { name: "album_name", kind: "utf8", nullable: true, description: "Album name." },
  {
    name: "album_release_date",
    kind: "utf8",
    nullable: true,
    description: "Release date as Spotify gives it (YYYY, YYYY-MM or YYYY-MM-DD).",
  },
  {
    name: "duration_ms",
    kind: "int32",
    nullable: false,
    description: "Track length in milliseconds.",
  },
  {
    name: "explicit",
    kind: "bool",
    nullable: false,
    description: "Whether the track has explicit lyrics.",
  },
  {
    name: "popularity",
    kind: "int32",
    nullable: true,
    description: "Spotify popularity 0..100 (null where the API no longer returns it).",
  },
  {
    name: "isrc",
    kind: "utf8",
    nullable: true,
    description: "International Standard Recording Code.",
  },
];

/** When the row was requested, and by which run. */
export const RUN_COLUMNS: readonly ColumnSpec[] = [
  {
    name: "fetched_at",
    kind: "timestamp",
    nullable: false,
    description: "When the page was requested from Spotify (UTC).",
  },
  {
    name: "run_id",
    kind: "utf8",
    nullable: false,
    description: "Pipeline run that produced the row.",
  },
];

/** The run metadata columns (left out of content fingerprints). */
export const RUN_METADATA: readonly string[] = RUN_COLUMNS.map((c) => c.name);

const FEATURE_DESCRIPTIONS: Record<FeatureName, string> = {
  danceability: "Audio feature, 0..1 (null when no features were found).",
  energy: "Audio feature, 0..1.",
  key: "Pitch class -1..11 (-1 = none detected).",
  loudness: "Average loudness in dB (typically -60..0).",
  mode: "1 major, 0 minor.",
  speechiness: "Audio feature, 0..1.",
  acousticness: "Audio feature, 0..1.",
  instrumentalness: "Audio feature, 0..1.",
  liveness: "Audio feature, 0..1.",
  valence: "Audio feature, 0..1.",
  tempo: "Estimated tempo in BPM.",
  time_signature: "Estimated beats per bar.",
};

const INTEGER_FEATURES: ReadonlySet<FeatureName> = new Set(["key", "mode", "time_signature"]);

/** The audio features enrich adds, then where they came from. */
export const FEATURE_SPECS: readonly ColumnSpec[] = [
  ...FEATURE_COLUMNS.map((name): ColumnSpec => ({
    name,
    kind: INTEGER_FEATURES.has(name) ? "int32" : "float64",
    nullable: true,
    description: FEATURE_DESCRIPTIONS[name],
  })),
  {
    name: "features_source",
    kind: "utf8",
    nullable: false,
    description: "Where the features came from (spotify, reccobeats, csv) or none.",
  },
  {
    name: "match_method",
    kind: "utf8",
    nullable: false,
    description: "How the track was matched to its features (id, name) or none.",
  },
];

/** Names of the columns enrich adds. */
export const FEATURE_SPEC_NAMES: readonly string[] = FEATURE_SPECS.map((c) => c.name);
