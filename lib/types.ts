/**
 * Row types handed between steps (fetch → enrich → write) and the audio-feature column list.
 * @module
 */

import type { TimeRange } from "./config.ts";
import type { StreamRows } from "./streams/handoff.ts";

/** One top track of one snapshot, as fetch writes it (`fetch/tracks.json`). */
export interface TopTrackRow {
  /** The Spotify user the list belongs to (`sample` for the bundled sample). */
  user_id: string;
  /** UTC date of the run, `YYYY-MM-DD`. */
  snapshot_date: string;
  time_range: TimeRange;
  /** 1-based position in the top list. */
  rank: number;
  track_id: string;
  track_name: string;
  /** All artists, in Spotify's order. */
  artist_ids: string[];
  artist_names: string[];
  album_id: string | null;
  album_name: string | null;
  /** As Spotify gives it: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`. */
  album_release_date: string | null;
  duration_ms: number;
  explicit: boolean;
  /** Nullable: Spotify removed it from development-mode apps in 2026. */
  popularity: number | null;
  /** From `external_ids.isrc`. */
  isrc: string | null;
  /** ISO-8601 UTC timestamp of the request. */
  fetched_at: string;
  run_id: string;
}

/** The audio features carried per track (all nullable in the output). */
export const FEATURE_COLUMNS = [
  "danceability",
  "energy",
  "key",
  "loudness",
  "mode",
  "speechiness",
  "acousticness",
  "instrumentalness",
  "liveness",
  "valence",
  "tempo",
  "time_signature",
] as const;

/** Name of an audio feature. */
export type FeatureName = typeof FEATURE_COLUMNS[number];

/** Audio features of one track. */
export type AudioFeatures = Record<FeatureName, number | null>;

/** Where a track's features came from. */
export type FeaturesSource = "spotify" | "reccobeats" | "csv" | "none";
/** How the track was matched to its features. */
export type MatchMethod = "id" | "name" | "none";

/** A top track with its (nullable) audio features, as enrich writes it (`enrich/tracks.json`). */
export type EnrichedRow = TopTrackRow & AudioFeatures & {
  features_source: FeaturesSource;
  match_method: MatchMethod;
};

/** The file fetch writes for top tracks: `fetch/tracks.json` (a {@link StreamRows}). */
export type FetchOutput = Omit<StreamRows, "rows"> & { rows: TopTrackRow[] };

/** The file enrich writes for top tracks: `enrich/tracks.json` (a {@link StreamRows}). */
export type EnrichOutput = Omit<StreamRows, "rows"> & { rows: EnrichedRow[] };
