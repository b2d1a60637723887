/**
 * The features cache: every track's decided audio features, kept in the data folder
 * (`cache/audio_features.json`), so each track is looked up once — polls every 30 minutes and a
 * 50,000-track history do not ask ReccoBeats or Spotify again for known tracks.
 *
 * - A found track is kept (features, source, match method, the catalog row of a name match).
 * - A track no provider had is kept as a miss for {@link MISS_TTL_DAYS} days, then asked again
 *   (catalogs grow) — and only when every provider answered: after a 429 storm or an outage the
 *   tracks it could not ask stay unknown, so the next run asks them.
 * - The file is written atomically after the lookups: a run killed mid-way leaves the previous
 *   cache; a damaged file is reported and replaced (it is only a cache).
 * @module
 */

import { join } from "node:path";
import { isRecord } from "../json.ts";
import type { Config } from "../config.ts";
import { writeJsonAtomic } from "../fs_atomic.ts";
import type { Logger } from "../log.ts";
import { FEATURE_COLUMNS } from "../types.ts";
import type { FeaturesDecision } from "./enrich.ts";

/** Days a miss is kept before the track is asked again. */
export const MISS_TTL_DAYS = 7;

interface CacheFile {
  version: 1;
  /** Decided tracks by id (misses have source `none`), with when they were decided. */
  tracks: Record<string, FeaturesDecision & { at: string }>;
}

/** The cache file's path. */
export function featuresCachePath(config: Config): string {
  return join(config.features.cacheDir, "audio_features.json");
}

/** The features cache of a data folder. */
export class FeaturesCache {
  readonly path: string;
  #tracks: Map<string, FeaturesDecision & { at: string }>;
  #dirty = false;
  #off = false;

  private constructor(path: string, tracks: Map<string, FeaturesDecision & { at: string }>) {
    this.path = path;
    this.#tracks = tracks;
  }

  /** Opens the cache (empty when the file is missing or damaged, which is reported). */
  static async open(path: string, options: { log: Logger }): Promise<FeaturesCache> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        options.log.warn(
          `Cannot read the features cache ${path} (${
            (error as Error).message
          }): starting without it`,
        );
      }
      return new FeaturesCache(path, new Map());
    }
    try {
      const value: unknown = JSON.parse(text);
      if (!isRecord(value) || value.version !== 1 || !isRecord(value.tracks)) {
        throw new Error("not a features cache");
      }
      const tracks = new Map<string, FeaturesDecision & { at: string }>();
      for (const [id, d] of Object.entries(value.tracks)) {
        if (valid(d)) tracks.set(id, d);
      }
      return new FeaturesCache(path, tracks);
    } catch (error) {
      options.log.warn(
        `The features cache ${path} is damaged (${(error as Error).message}): starting afresh`,
      );
      return new FeaturesCache(path, new Map());
    }
  }

  /** A cache that knows nothing and keeps nothing (`FEATURES_CACHE=off`). */
  static disabled(): FeaturesCache {
    const cache = new FeaturesCache("", new Map());
    cache.#off = true;
    return cache;
  }

  /** Tracks known: found ones, and misses younger than {@link MISS_TTL_DAYS}. */
  known(ids: Iterable<string>, now = new Date()): Map<string, FeaturesDecision> {
    const out = new Map<string, FeaturesDecision>();
    const oldest = now.getTime() - MISS_TTL_DAYS * 86_400_000;
    for (const id of ids) {
      const d = this.#tracks.get(id);
      if (!d) continue;
      if (d.source === "none" && Date.parse(d.at) < oldest) continue;
      const { at: _at, ...decision } = d;
      out.set(id, decision);
    }
    return out;
  }

  /**
   * Records what a lookup decided: every found track; misses only when `complete` (every
   * provider answered).
   */
  record(decided: ReadonlyMap<string, FeaturesDecision>, complete: boolean, now = new Date()) {
    if (this.#off) return;
    const at = now.toISOString();
    for (const [id, d] of decided) {
      if (d.source === "none" && !complete) continue;
      this.#tracks.set(id, { ...d, at });
      this.#dirty = true;
    }
  }

  /** Number of tracks in the cache. */
  get size(): number {
    return this.#tracks.size;
  }

  /** Saves the cache atomically when it changed. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const file: CacheFile = { version: 1, tracks: Object.fromEntries(this.#tracks) };
    await writeJsonAtomic(this.path, file);
    this.#dirty = false;
  }
}

function valid(d: unknown): d is FeaturesDecision & { at: string } {
  if (typeof d !== "object" || d === null) return false;
  const v = d as Record<string, unknown>;
  const features = v.features as Record<string, unknown> | undefined;
  return typeof v.at === "string" && !Number.isNaN(Date.parse(v.at)) &&
    typeof v.source === "string" && typeof v.method === "string" &&
    typeof features === "object" && features !== null &&
    FEATURE_COLUMNS.every((c) => features[c] === null || typeof features[c] === "number");
}
