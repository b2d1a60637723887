/**
 * The enrichment engine: asks the audio-features providers in the configured order, matches by
 * track id first and only then by normalized (title, primary artist) — name matches come from
 * CSV catalogs only and are marked `match_method: "name"` — and builds the coverage report
 * (by id, by name, unmatched with the tracks listed).
 * @module
 */

import { SourceError } from "../errors.ts";
import { HttpError, NetworkError } from "../http.ts";
import { type Logger, printable } from "../log.ts";
import {
  type AudioFeatures,
  FEATURE_COLUMNS,
  type FeaturesSource,
  type MatchMethod,
} from "../types.ts";
import {
  type CatalogStats,
  emptyReport,
  type FeaturesHit,
  type FeaturesLookup,
  type NameMatchDetail,
  nullFeatures,
  type ProviderName,
  type ProviderReport,
  type TrackQuery,
} from "./provider.ts";

/** A provider slot in the configured order: a provider, or one not used this run and why. */
export type ProviderSlot = FeaturesLookup | { name: ProviderName; skipped: string };

/** What enrichment needs of a row: the track's id, title and artists. */
export interface TrackRef {
  track_id: string;
  track_name: string;
  artist_names: string[];
}

/** A row with its (nullable) audio features and where they came from. */
export type WithFeatures<R> = R & AudioFeatures & {
  features_source: FeaturesSource;
  match_method: MatchMethod;
};

/** A decided track: its features, where they came from and how it was matched. */
export interface FeaturesDecision {
  features: AudioFeatures;
  source: FeaturesSource;
  method: MatchMethod;
  /** For name matches: the catalog row. */
  name?: NameMatchDetail;
}

/** Options of {@link enrichRows}. */
export interface EnrichOptions<R> {
  /** Providers in the configured order. */
  providers: readonly ProviderSlot[];
  log: Logger;
  signal?: AbortSignal;
  /** Tracks decided before (the features cache): not asked again. */
  known?: ReadonlyMap<string, FeaturesDecision>;
  /** How a row's place is shown among the unmatched (default `short_term #3`). */
  position?: (row: R) => string;
}

/** A track matched by name, listed in the coverage report so it can be checked. */
export interface NameMatchEntry {
  track_id: string;
  track_name: string;
  primary_artist: string | null;
  source: ProviderName;
  match: NameMatchDetail;
}

/** A track no provider had features for. */
export interface UnmatchedTrack {
  track_id: string;
  track_name: string;
  artist_names: string[];
  /** Where it appears (`short_term #3`, `played 2026-11-30T10:15:00.000Z`). */
  positions: string[];
}

/** The coverage report (`enrich/coverage.json`). Counts are rows unless named `tracks`. */
export interface CoverageReport {
  rows: number;
  /** Distinct track ids among the rows. */
  tracks: number;
  /** Distinct tracks decided from the features cache (not asked of any provider this run). */
  cached?: number;
  matched: number;
  by_id: number;
  by_name: number;
  unmatched: number;
  /** `matched / rows` (0 when there are no rows). */
  share: number;
  /** Rows per features source. */
  by_source: Record<FeaturesSource, number>;
  /** One per configured provider, in order; `filled*` count distinct tracks. */
  providers: ProviderReport[];
  name_matches: NameMatchEntry[];
  unmatched_tracks: UnmatchedTrack[];
}

/** What {@link enrichRows} returns. */
export interface EnrichResult<R> {
  rows: WithFeatures<R>[];
  coverage: CoverageReport;
  /** The tracks asked of the providers this time, as decided (the cache keeps them). */
  decided: Map<string, FeaturesDecision>;
  /** Whether every provider answered (so a track none had is truly unknown to all of them). */
  complete: boolean;
}

interface Found {
  source: ProviderName;
  hit: FeaturesHit;
}

/**
 * Adds audio features to every row: each provider is asked (in order) for the tracks no earlier
 * provider had by id; an id match from any provider beats a name match; among name matches the
 * earliest provider wins. Remote failures are reported in the coverage, not thrown; a
 * configuration problem (a missing CSV) is thrown.
 */
export async function enrichRows<R extends TrackRef>(
  rows: readonly R[],
  options: EnrichOptions<R>,
): Promise<EnrichResult<R>> {
  const { providers, log, signal, known } = options;
  const position = options.position ??
    ((row: R) => {
      const r = row as unknown as { time_range?: unknown; rank?: unknown };
      return `${String(r.time_range)} #${String(r.rank)}`;
    });
  const queries = new Map<string, TrackQuery>();
  for (const row of rows) {
    if (!queries.has(row.track_id) && !known?.has(row.track_id)) {
      queries.set(row.track_id, {
        track_id: row.track_id,
        track_name: row.track_name,
        primary_artist: row.artist_names[0] ?? null,
      });
    }
  }

  const byId = new Map<string, Found>();
  const byName = new Map<string, Found>();
  const reports: ProviderReport[] = [];
  for (const slot of providers) {
    if ("skipped" in slot) {
      reports.push(emptyReport(slot.name, "skipped", slot.skipped));
      continue;
    }
    const pending = [...queries.values()].filter((q) => !byId.has(q.track_id));
    if (pending.length === 0) {
      reports.push(
        emptyReport(
          slot.name,
          "skipped",
          queries.size === 0
            ? "every track was known (features cache)"
            : "every track already had features by id",
        ),
      );
      continue;
    }
    signal?.throwIfAborted();
    let report: ProviderReport;
    try {
      const result = await slot.lookup(pending, { log, signal });
      for (const [id, hit] of result.byId) {
        if (queries.has(id) && !byId.has(id)) byId.set(id, { source: slot.name, hit });
      }
      for (const [id, hit] of result.byName) {
        if (queries.has(id) && !byName.has(id)) byName.set(id, { source: slot.name, hit });
      }
      report = result.report;
    } catch (error) {
      if (
        !(error instanceof SourceError || error instanceof HttpError ||
          error instanceof NetworkError)
      ) throw error;
      const note = `${slot.name} failed: ${error.message.split("\n")[0]}`;
      log.warn(note);
      report = emptyReport(slot.name, "failed", note);
      report.requested = pending.length;
    }
    reports.push(report);
    log.info(`Audio features from ${slot.name}`, {
      status: report.status,
      requested: report.requested,
      found_by_id: report.found_by_id,
      found_by_name: report.found_by_name,
    });
  }

  // Final attribution per track: id first, then name.
  const decided = new Map<string, FeaturesDecision>();
  const nameMatches: NameMatchEntry[] = [];
  for (const q of queries.values()) {
    const viaId = byId.get(q.track_id);
    const viaName = viaId ? undefined : byName.get(q.track_id);
    const found = viaId ?? viaName;
    if (!found) {
      decided.set(q.track_id, { features: nullFeatures(), source: "none", method: "none" });
      continue;
    }
    const method: MatchMethod = viaId ? "id" : "name";
    decided.set(q.track_id, {
      features: found.hit.features,
      source: found.source,
      method,
      ...(method === "name" && found.hit.name ? { name: found.hit.name } : {}),
    });
    const report = reports.find((r) => r.provider === found.source);
    if (report) {
      report.filled++;
      if (method === "id") report.filled_by_id++;
      else report.filled_by_name++;
    }
    if (method === "name" && found.hit.name) {
      nameMatches.push({
        track_id: q.track_id,
        track_name: q.track_name,
        primary_artist: q.primary_artist,
        source: found.source,
        match: found.hit.name,
      });
    }
  }

  const bySource: Record<FeaturesSource, number> = { spotify: 0, reccobeats: 0, csv: 0, none: 0 };
  const unmatched = new Map<string, UnmatchedTrack>();
  let byIdRows = 0;
  let byNameRows = 0;
  const tracks = new Set<string>();
  const out: WithFeatures<R>[] = rows.map((row) => {
    tracks.add(row.track_id);
    const d = decided.get(row.track_id) ?? known?.get(row.track_id)!;
    bySource[d.source]++;
    if (d.method === "id") byIdRows++;
    else if (d.method === "name") byNameRows++;
    else {
      const entry = unmatched.get(row.track_id) ?? {
        track_id: row.track_id,
        track_name: row.track_name,
        artist_names: row.artist_names,
        positions: [],
      };
      entry.positions.push(position(row));
      unmatched.set(row.track_id, entry);
    }
    return { ...row, ...d.features, features_source: d.source, match_method: d.method };
  });

  const matched = byIdRows + byNameRows;
  const complete = reports.every((r) => r.status === "ok" || r.status === "skipped");
  if (known?.size) {
    for (const id of tracks) {
      const k = known.get(id);
      if (k?.method === "name" && k.name && !decided.has(id)) {
        const row = rows.find((r) => r.track_id === id)!;
        nameMatches.push({
          track_id: id,
          track_name: row.track_name,
          primary_artist: row.artist_names[0] ?? null,
          source: k.source as ProviderName,
          match: k.name,
        });
      }
    }
  }
  return {
    decided,
    complete,
    rows: out,
    coverage: {
      rows: rows.length,
      tracks: tracks.size,
      cached: tracks.size - [...tracks].filter((id) => decided.has(id)).length,
      matched,
      by_id: byIdRows,
      by_name: byNameRows,
      unmatched: rows.length - matched,
      share: coverageShare(matched, rows.length),
      by_source: bySource,
      providers: reports,
      name_matches: nameMatches,
      unmatched_tracks: [...unmatched.values()],
    },
  };
}

/** Options of {@link formatCoverage}. */
export interface FormatCoverageOptions {
  /** How to show a catalog path (e.g. relative to the working folder). */
  displayPath?: (path: string) => string;
  /** Most unmatched tracks listed (default 50). */
  maxUnmatched?: number;
  /** Names the rows' stream in the first line (`Audio features, recently_played: ...`). */
  label?: string;
  /** The report's file in the run folder, named when the unmatched list is cut. */
  file?: string;
}

/** The coverage counts a step reports (manifest, run summaries). */
export function coverageCounts(coverage: CoverageReport): Record<string, number> {
  const { rows, matched, by_id, by_name, unmatched } = coverage;
  return { rows, matched, by_id, by_name, unmatched };
}

/** Coverage counts summed over several reports (several streams), zero when there are none. */
export function sumCoverageCounts(coverages: Iterable<CoverageReport>): Record<string, number> {
  const total: Record<string, number> = { rows: 0, matched: 0, by_id: 0, by_name: 0, unmatched: 0 };
  for (const c of coverages) {
    for (const [k, v] of Object.entries(coverageCounts(c))) total[k] = (total[k] ?? 0) + v;
  }
  return total;
}

/** `matched / rows` rounded to 4 decimals (0 without rows): the share reported everywhere. */
export function coverageShare(matched: number, rows: number): number {
  return rows ? Math.round((matched / rows) * 10_000) / 10_000 : 0;
}

/** The coverage report as readable lines (printed by the pipeline's summary). */
export function formatCoverage(
  coverage: CoverageReport,
  options: FormatCoverageOptions = {},
): string {
  const {
    displayPath = (p: string) => p,
    maxUnmatched = 50,
    label,
    file = "enrich/coverage.json",
  } = options;
  const c = coverage;
  if (c.rows === 0) return `Audio features${label ? `, ${label}` : ""}: no rows to enrich`;
  const pct = (c.share * 100).toFixed(1);
  const distinct = c.tracks !== c.rows ? ` (${c.tracks} distinct tracks)` : "";
  const lines = [
    `Audio features${
      label ? `, ${label}` : ""
    }: ${c.matched} of ${c.rows} rows${distinct} (${pct}%) — ` +
    `${c.by_id} by id, ${c.by_name} by name, ${c.unmatched} unmatched` +
    (c.cached ? ` (${c.cached} track(s) from the features cache)` : ""),
  ];
  for (const p of c.providers) {
    const head = `  ${p.provider.padEnd(10)} `;
    if (p.status === "skipped") lines.push(`${head}skipped: ${p.note ?? ""}`);
    else {
      const status = p.status === "ok" ? "" : ` — ${p.status}: ${p.note ?? ""}`;
      lines.push(
        `${head}${p.filled} filled (${p.filled_by_id} by id, ${p.filled_by_name} by name) ` +
          `of ${p.requested} asked${p.rejected ? `, ${p.rejected} answers out of range` : ""}` +
          status,
      );
    }
    for (const s of p.catalogs ?? []) {
      const reasons = Object.entries(s.rejected_by_reason).map(([r, n]) => `${r}: ${n}`);
      lines.push(
        `      ${displayPath(s.file)}: ${s.rows} rows, ${s.accepted} used, ` +
          `${s.duplicate_ids} duplicate ids, ${s.rejected} rejected` +
          (reasons.length ? ` (${reasons.join(", ")})` : "") +
          (s.without_id ? `, ${s.without_id} without a track id` : "") +
          (s.ambiguous_names
            ? `, ${s.ambiguous_names} ambiguous (title, artist) left unmatched`
            : ""),
      );
      lines.push(`        features: ${catalogFeatures(s)}`);
    }
  }
  // one line each, whatever a name holds (line breaks, escapes: see printable())
  const name = (text: string | null | undefined) => printable(text ?? "?", { keepNewlines: false });
  if (c.name_matches.length) {
    lines.push(`  Matched by name (${c.name_matches.length}):`);
    for (const m of c.name_matches) {
      lines.push(
        `    "${name(m.track_name)}" — ${name(m.primary_artist)}  →  "${
          name(m.match.catalog_track_name)
        }" ` +
          `(${name(m.match.catalog_artists)}) ${displayPath(m.match.file)} line ${m.match.line}`,
      );
    }
  }
  if (c.unmatched_tracks.length) {
    lines.push(`  Unmatched (${c.unmatched_tracks.length} tracks):`);
    for (const u of c.unmatched_tracks.slice(0, maxUnmatched)) {
      const where = u.positions.slice(0, 3).join(", ") +
        (u.positions.length > 3 ? ` +${u.positions.length - 3}` : "");
      lines.push(
        `    ${where}  "${name(u.track_name)}" — ${
          name(u.artist_names.join(", ") || "?")
        }  (${u.track_id})`,
      );
    }
    if (c.unmatched_tracks.length > maxUnmatched) {
      lines.push(
        `    ... and ${c.unmatched_tracks.length - maxUnmatched} more (${file})`,
      );
    }
  }
  return lines.join("\n");
}

/** The features a catalog provides, how each was read, and the ones it lacks. */
function catalogFeatures(s: CatalogStats): string {
  const provided = s.features.map((f) => s.feature_scales[f] ? `${f} (${s.feature_scales[f]})` : f);
  const missing = FEATURE_COLUMNS.filter((f) => !s.features.includes(f));
  return provided.join(", ") + (missing.length ? `; not provided: ${missing.join(", ")}` : "");
}
