/**
 * Test rows for the write/upload/load tests: the bundled Spotify top-tracks sample (API shape)
 * joined by track id to the bundled audio-features CSV (Kaggle rows), normalized the way fetch
 * and enrich hand them over. Independent of the fetch/enrich implementations on purpose.
 * @module
 */

import { parse } from "csv-parse/sync";
import type { EnrichedRow, EnrichOutput, FeatureName } from "../lib/types.ts";
import { FEATURE_COLUMNS } from "../lib/types.ts";

const DATA = new URL("../data/", import.meta.url);

interface ApiTrack {
  id: string;
  name: string;
  duration_ms: number;
  explicit: boolean;
  popularity?: number;
  external_ids?: { isrc?: string };
  artists: { id: string; name: string }[];
  album?: { id?: string; name?: string; release_date?: string };
}

/** Options of {@link sampleEnrichedRows}. */
export interface SampleRowsOptions {
  snapshotDate?: string;
  runId?: string;
  fetchedAt?: string;
}

/** The 21 sample tracks as enriched rows (16 with features from the CSV, 5 without). */
export function sampleEnrichedRows(options: SampleRowsOptions = {}): EnrichedRow[] {
  const {
    snapshotDate = "2026-01-31",
    runId = "20260131T060000Z-ab12",
    fetchedAt = "2026-01-31T06:00:01.234Z",
  } = options;
  const page = JSON.parse(
    Deno.readTextFileSync(new URL("sample_top_tracks_short_term.json", DATA)),
  ) as { items: ApiTrack[] };
  const csv = parse(Deno.readTextFileSync(new URL("audio_features_sample.csv", DATA)), {
    columns: true,
    skip_empty_lines: true,
  }) as Record<string, string>[];
  const byId = new Map(csv.map((r) => [r.track_id, r]));
  return page.items.map((t, i) => {
    const f = byId.get(t.id);
    const features = Object.fromEntries(
      FEATURE_COLUMNS.map((c) => [c, f ? Number(f[c]) : null]),
    ) as Record<FeatureName, number | null>;
    return {
      user_id: "sample",
      snapshot_date: snapshotDate,
      time_range: "short_term",
      rank: i + 1,
      track_id: t.id,
      track_name: t.name,
      artist_ids: t.artists.map((a) => a.id),
      artist_names: t.artists.map((a) => a.name),
      album_id: t.album?.id ?? null,
      album_name: t.album?.name ?? null,
      album_release_date: t.album?.release_date ?? null,
      duration_ms: t.duration_ms,
      explicit: t.explicit,
      popularity: t.popularity ?? null,
      isrc: t.external_ids?.isrc ?? null,
      fetched_at: fetchedAt,
      run_id: runId,
      ...features,
      features_source: f ? "csv" : "none",
      match_method: f ? "id" : "none",
    };
  });
}

/** The sample rows as enrich's output file. */
export function sampleEnrichOutput(options: SampleRowsOptions = {}): EnrichOutput {
  const rows = sampleEnrichedRows(options);
  return {
    stream: "top_tracks",
    run_id: rows[0]!.run_id,
    snapshot_date: rows[0]!.snapshot_date,
    source: "sample",
    users: ["sample"],
    rows,
  };
}

/** `count` synthetic rows (deterministic), cycling the time ranges and sample tracks. */
export function syntheticRows(count: number, options: SampleRowsOptions = {}): EnrichedRow[] {
  const base = sampleEnrichedRows(options);
  const ranges = ["short_term", "medium_term", "long_term"] as const;
  const out: EnrichedRow[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const b = base[i % base.length]!;
    out[i] = {
      ...b,
      time_range: ranges[i % 3]!,
      rank: Math.floor(i / 3) + 1,
      track_id: `${b.track_id.slice(0, 14)}${i.toString(36).padStart(8, "0")}`,
      danceability: b.danceability === null ? null : (b.danceability + i * 1e-7) % 1,
    };
  }
  return out;
}
