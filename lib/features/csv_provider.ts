/**
 * The CSV catalog(s) as a provider: each file in `AUDIO_FEATURES_CSV` order is streamed once,
 * answering by track id and, for the tracks it has no id for, by normalized (title, primary
 * artist). An earlier file wins over a later one; a file is not read once every track has been
 * found by id. With a cache folder, a catalog unchanged since the last run is answered from its
 * index instead of being read again (see catalog_index.ts).
 * @module
 */

import { lookupCatalog } from "./catalog_index.ts";
import { type CatalogScan, scanCatalog } from "./csv_catalog.ts";
import type { ColumnMap } from "./column_map.ts";
import { nameKeys } from "./normalize.ts";
import {
  type CatalogStats,
  emptyReport,
  type FeaturesHit,
  type FeaturesLookup,
  type LookupOptions,
  type ProviderResult,
  type TrackQuery,
} from "./provider.ts";

/** Options of {@link createCsvProvider}. */
export interface CsvProviderOptions {
  /** Catalog files, in order (`config.features.csvPaths`). */
  paths: readonly string[];
  /** Folder for the catalogs' indexes (`config.features.cacheDir`); none: always scan. */
  cacheDir?: string;
  /** `AUDIO_FEATURES_CSV_COLUMNS` (`config.features.csvColumns`). */
  columnMap?: ColumnMap;
}

/** A provider reading audio-features CSV catalogs. */
export function createCsvProvider(options: CsvProviderOptions): FeaturesLookup {
  const { paths, cacheDir, columnMap } = options;
  return {
    name: "csv",
    async lookup(tracks: readonly TrackQuery[], lookup: LookupOptions): Promise<ProviderResult> {
      const { log, signal } = lookup;
      const report = emptyReport("csv");
      report.requested = new Set(tracks.map((t) => t.track_id)).size;
      const catalogs: CatalogStats[] = [];
      report.catalogs = catalogs;
      const byId = new Map<string, FeaturesHit>();
      const byName = new Map<string, FeaturesHit>();
      const pending = new Map(tracks.map((t) => [t.track_id, t]));
      for (const path of paths) {
        if (pending.size === 0) {
          log.debug(`Not reading ${path}: every track already has features by id`);
          continue;
        }
        const wantNames = [...pending.values()].filter((t) =>
          t.primary_artist !== null && !byName.has(t.track_id)
        );
        const query = {
          ids: [...pending.keys()],
          names: wantNames.map((t) => ({
            title: t.track_name,
            artist: t.primary_artist!,
            track_id: t.track_id,
          })),
          signal,
          columnMap,
        };
        const started = performance.now();
        let scan: CatalogScan;
        let cache: Record<string, unknown> = {};
        if (cacheDir === undefined) scan = await scanCatalog(path, query);
        else {
          const found = await lookupCatalog(path, { ...query, cacheDir, log });
          scan = found;
          cache = {
            cache: found.cache,
            ...(found.cacheNote ? { cache_note: found.cacheNote } : {}),
          };
        }
        catalogs.push(scan.stats);
        for (const [id, hit] of scan.byId) {
          byId.set(id, hit);
          pending.delete(id);
          byName.delete(id);
        }
        for (const t of wantNames) {
          if (!pending.has(t.track_id)) continue;
          const keys = nameKeys(t.track_name, t.primary_artist!);
          const hit = keys && (scan.byName.get(keys.full) ?? scan.byName.get(keys.base));
          if (hit) byName.set(t.track_id, hit);
        }
        const s = scan.stats;
        log.info(`Read audio-features catalog ${path}`, {
          rows: s.rows,
          accepted: s.accepted,
          duplicate_ids: s.duplicate_ids,
          rejected: s.rejected,
          found_by_id: scan.byId.size,
          ms: Math.round(performance.now() - started),
          reader: scan.reader,
          ...(scan.fallback ? { fallback: scan.fallback } : {}),
          ...cache,
        });
      }
      report.found_by_id = byId.size;
      report.found_by_name = byName.size;
      return { byId, byName, report };
    },
  };
}
