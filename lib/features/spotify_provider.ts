/**
 * Audio features from Spotify's `GET /v1/audio-features?ids=` (up to 100 ids a request). Only
 * apps with extended access still get answers: the first 403 disables the provider for the rest
 * of the run, with one warning.
 * @module
 */

import { SourceError } from "../errors.ts";
import { HttpError, NetworkError } from "../http.ts";
import {
  emptyReport,
  extractTrackId,
  featuresFromJson,
  type FeaturesHit,
  type FeaturesLookup,
  type LookupOptions,
  type ProviderResult,
  type TrackQuery,
} from "./provider.ts";

/** The part of `SpotifyClient` (lib/spotify/client.ts) this provider uses. */
export interface JsonGetter {
  getJson(pathAndQuery: string, options?: { signal?: AbortSignal }): Promise<unknown>;
}

/** Most ids Spotify accepts in one `/v1/audio-features` request. */
export const SPOTIFY_BATCH = 100;

/** Options of {@link SpotifyFeaturesProvider}. */
export interface SpotifyFeaturesProviderOptions {
  /** Ids per request (default and maximum 100). */
  batchSize?: number;
}

/** Spotify's audio-features endpoint as a provider; remembers a 403 for the rest of the run. */
export class SpotifyFeaturesProvider implements FeaturesLookup {
  readonly name = "spotify" as const;
  #client: JsonGetter;
  #batchSize: number;
  #disabled?: string;

  /** Wraps a Spotify client (anything with `getJson`). */
  constructor(client: JsonGetter, options: SpotifyFeaturesProviderOptions = {}) {
    this.#client = client;
    this.#batchSize = Math.min(SPOTIFY_BATCH, Math.max(1, options.batchSize ?? SPOTIFY_BATCH));
  }

  /** Why the provider is disabled (after a 403), or `undefined`. */
  get disabled(): string | undefined {
    return this.#disabled;
  }

  /** Looks the tracks up by id, 100 at a time. */
  async lookup(tracks: readonly TrackQuery[], options: LookupOptions): Promise<ProviderResult> {
    const { log, signal } = options;
    const ids = [...new Set(tracks.map((t) => t.track_id))];
    const report = emptyReport("spotify");
    report.requested = ids.length;
    const byId = new Map<string, FeaturesHit>();
    const stop = (status: "disabled" | "failed", note: string): ProviderResult => {
      Object.assign(report, { status, note, found_by_id: byId.size });
      return { byId, byName: new Map(), report };
    };
    if (this.#disabled) return stop("disabled", this.#disabled);
    for (let i = 0; i < ids.length; i += this.#batchSize) {
      const batch = ids.slice(i, i + this.#batchSize);
      const path = `/v1/audio-features?ids=${batch.map(encodeURIComponent).join(",")}`;
      let body: unknown;
      try {
        body = await this.#client.getJson(path, { signal });
      } catch (error) {
        if (error instanceof HttpError && error.status === 403) {
          this.#disabled =
            "Spotify answered 403 to /v1/audio-features (the app has no extended access to it); " +
            "the provider is off for the rest of this run";
          log.warn(this.#disabled);
          return stop("disabled", this.#disabled);
        }
        if (
          error instanceof HttpError || error instanceof NetworkError ||
          error instanceof SourceError
        ) {
          const note = `Spotify audio features failed: ${error.message.split("\n")[0]}`;
          log.warn(note);
          return stop("failed", note);
        }
        throw error;
      }
      const items = (body as { audio_features?: unknown } | null)?.audio_features;
      if (!Array.isArray(items)) {
        const note =
          `Spotify answered /v1/audio-features without an "audio_features" array; provider stopped`;
        log.warn(note);
        return stop("failed", note);
      }
      const wanted = new Set(batch);
      for (const item of items) {
        if (item === null || typeof item !== "object") continue; // unknown id
        const record = item as Record<string, unknown>;
        const id = extractTrackId(
          typeof record.id === "string" ? record.id : String(record.uri ?? ""),
        );
        if (id === null || !wanted.has(id) || byId.has(id)) continue;
        const checked = featuresFromJson(record);
        if ("reason" in checked) {
          report.rejected++;
          log.debug("Spotify audio features rejected", { track_id: id, reason: checked.reason });
          continue;
        }
        byId.set(id, { features: checked.features });
      }
    }
    report.found_by_id = byId.size;
    return { byId, byName: new Map(), report };
  }
}
