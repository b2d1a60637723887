/**
 * What an audio-features provider is (Spotify's API, ReccoBeats, a CSV catalog), what it answers,
 * and the range checks every provider applies to the values it hands back.
 * @module
 */

import type { FeaturesProvider as ProviderName } from "../config.ts";
import type { Logger } from "../log.ts";
import { type AudioFeatures, FEATURE_COLUMNS, type FeatureName } from "../types.ts";

export type { ProviderName };

/** A track to find features for (one per distinct track id). */
export interface TrackQuery {
  track_id: string;
  track_name: string;
  /** First artist, as Spotify lists them; `null` when the track has none. */
  primary_artist: string | null;
}

/** Where a name match came from (shown in the coverage report so it can be checked). */
export interface NameMatchDetail {
  /** The catalog row's own id, if it has one. */
  catalog_track_id: string | null;
  catalog_track_name: string;
  catalog_artists: string;
  /** `full`: same title once credits are dropped; `base`: same once versions are dropped too. */
  key: "full" | "base";
  file: string;
  line: number;
}

/** Features a provider found for one track. */
export interface FeaturesHit {
  features: AudioFeatures;
  /** Set for name matches. */
  name?: NameMatchDetail;
}

/** Statistics of one CSV catalog read. */
export interface CatalogStats {
  file: string;
  /** Data rows read (header excluded). */
  rows: number;
  /** Rows kept: valid values, first occurrence of their id. */
  accepted: number;
  /** Rows skipped because an earlier row had the same id (first wins). */
  duplicate_ids: number;
  /** Rows rejected for out-of-range or non-numeric values. */
  rejected: number;
  /** Rejected rows per reason, e.g. `{"tempo <= 0": 14}`. */
  rejected_by_reason: Record<string, number>;
  /** The first few rejected rows, `line N: reason`. */
  rejected_examples: string[];
  /** Rows whose id cell is empty or not a Spotify track id/URI/URL (usable by name only). */
  without_id: number;
  /**
   * Wanted (title, primary artist) pairs a names-only catalog lists twice with different values:
   * left unmatched.
   */
  ambiguous_names: number;
  /** The header cells used: id, title, artists (null when absent). */
  columns: { id: string | null; title: string | null; artists: string | null };
  /** The features the catalog provides (the others stay null for the tracks it matches). */
  features: string[];
  /** The features not read as they are: `percent` (÷100), `note` (C# → 1), `mode` (Major → 1). */
  feature_scales: Record<string, string>;
  bytes: number;
}

/** What one provider reports in the coverage report. */
export interface ProviderReport {
  provider: ProviderName;
  /** `skipped`: not applicable this run; `disabled`: turned off mid-run (Spotify 403). */
  status: "ok" | "skipped" | "disabled" | "failed";
  /** Why it was skipped, disabled or failed. */
  note?: string;
  /** Distinct tracks asked for. */
  requested: number;
  found_by_id: number;
  found_by_name: number;
  /** Answers dropped because a value was out of range. */
  rejected: number;
  /** Tracks whose final features came from this provider (set by the enrich engine). */
  filled: number;
  filled_by_id: number;
  filled_by_name: number;
  /** CSV provider: one entry per catalog file read. */
  catalogs?: CatalogStats[];
}

/** A provider's answer: hits by track id and (CSV only) by name. */
export interface ProviderResult {
  byId: Map<string, FeaturesHit>;
  byName: Map<string, FeaturesHit>;
  report: ProviderReport;
}

/** Options of {@link FeaturesLookup.lookup}. */
export interface LookupOptions {
  log: Logger;
  signal?: AbortSignal;
}

/** An audio-features provider. */
export interface FeaturesLookup {
  readonly name: ProviderName;
  /** Finds features for `tracks` (never throws for a remote failure: reports it instead). */
  lookup(tracks: readonly TrackQuery[], options: LookupOptions): Promise<ProviderResult>;
}

/** An empty report for `provider`, to fill in. */
export function emptyReport(
  provider: ProviderName,
  status: ProviderReport["status"] = "ok",
  note?: string,
): ProviderReport {
  return {
    provider,
    status,
    ...(note === undefined ? {} : { note }),
    requested: 0,
    found_by_id: 0,
    found_by_name: 0,
    rejected: 0,
    filled: 0,
    filled_by_id: 0,
    filled_by_name: 0,
  };
}

/** The range a feature's values must lie in. */
export interface FeatureRange {
  min: number;
  max: number;
  /** `min` itself is out of range (tempo: 0 BPM is no tempo). */
  minExclusive?: boolean;
  /** Whole numbers only. */
  integer?: boolean;
}

/**
 * Every feature's accepted range — Spotify's documented ranges as the warehouse's dbt tests
 * accept them (`accepted_range` in `dbt/models/staging/spotify/_spotify__models.yml`; a test
 * checks the two agree): a value loaded outside them would fail every later `dbt build`. The one
 * table every reader uses (`checkFeature`, the CSV fast path).
 */
export const FEATURE_RANGES: Readonly<Record<FeatureName, FeatureRange>> = {
  danceability: { min: 0, max: 1 },
  energy: { min: 0, max: 1 },
  key: { min: -1, max: 11, integer: true },
  loudness: { min: -60, max: 10 },
  mode: { min: 0, max: 1, integer: true },
  speechiness: { min: 0, max: 1 },
  acousticness: { min: 0, max: 1 },
  instrumentalness: { min: 0, max: 1 },
  liveness: { min: 0, max: 1 },
  valence: { min: 0, max: 1 },
  tempo: { min: 0, max: 300, minExclusive: true },
  time_signature: { min: 0, max: 7, integer: true },
};

/** The features on a 0–1 scale (the ones a catalog may give in percent, the report draws together). */
export const UNIT_INTERVAL_FEATURES: readonly FeatureName[] = FEATURE_COLUMNS.filter((f) => {
  const r = FEATURE_RANGES[f];
  return r.min === 0 && r.max === 1 && !r.integer;
});

/** Whether a number lies in a feature's range (the whole check, without the reason). */
export function inRange(range: FeatureRange, value: number): boolean {
  return (range.minExclusive ? value > range.min : value >= range.min) && value <= range.max &&
    (!range.integer || Number.isInteger(value));
}

/**
 * Checks one feature value against {@link FEATURE_RANGES}. Returns the reason when invalid
 * (`danceability outside [0,1]`, `tempo <= 0`, `tempo > 300`, `key outside -1..11`, `mode not
 * 0/1`; the coverage report counts rejections by it).
 */
export function checkFeature(name: FeatureName, value: number): string | undefined {
  if (!Number.isFinite(value)) return `${name} is not a number`;
  const range = FEATURE_RANGES[name];
  if (inRange(range, value)) return undefined;
  const { min, max } = range;
  if (range.minExclusive) return value <= min ? `${name} <= ${min}` : `${name} > ${max}`;
  if (range.integer && max - min === 1) return `${name} not ${min}/${max}`;
  return range.integer ? `${name} outside ${min}..${max}` : `${name} outside [${min},${max}]`;
}

/**
 * Reads the features from a JSON object (an API answer item): a missing or `null` value stays
 * `null`; anything else must be a number in range. Returns the features, or the first reason
 * they are invalid.
 */
export function featuresFromJson(
  item: Record<string, unknown>,
): { features: AudioFeatures } | { reason: string } {
  const features = {} as AudioFeatures;
  for (const name of FEATURE_COLUMNS) {
    const raw = item[name];
    if (raw === undefined || raw === null) {
      features[name] = null;
      continue;
    }
    if (typeof raw !== "number") return { reason: `${name} is not a number` };
    const reason = checkFeature(name, raw);
    if (reason) return { reason };
    features[name] = raw;
  }
  if (FEATURE_COLUMNS.every((name) => features[name] === null)) {
    return { reason: "no feature values" };
  }
  return { features };
}

/** Features with every value `null` (unmatched tracks). */
export function nullFeatures(): AudioFeatures {
  const out = {} as AudioFeatures;
  for (const name of FEATURE_COLUMNS) out[name] = null;
  return out;
}

const TRACK_ID_RE = /^[0-9A-Za-z]{22}$/;
const TRACK_REF_RE =
  /(?:spotify:track:|open\.spotify\.com\/(?:intl-[a-z]{2}(?:-[a-z]{2,4})?\/)?(?:embed\/)?track\/)([0-9A-Za-z]{22})(?![0-9A-Za-z])/i;

/**
 * The Spotify track id in a cell: a bare id, a `spotify:track:<id>` URI or an
 * `https://open.spotify.com/track/<id>?si=...` URL (with or without scheme or `intl-xx/`).
 * `null` when there is none.
 * @example extractTrackId("spotify:track:6rqhFgbbKwnb9MLmUQDhG6") // "6rqhFgbbKwnb9MLmUQDhG6"
 */
export function extractTrackId(value: string | null | undefined): string | null {
  if (!value) return null;
  const v = value.trim();
  if (v.length === 22 && TRACK_ID_RE.test(v)) return v;
  const m = TRACK_REF_RE.exec(v);
  return m ? m[1]! : null;
}
