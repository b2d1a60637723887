/**
 * Audio features from ReccoBeats (free, no key):
 * `GET <RECCOBEATS_API_URL>/v1/audio-features?ids=<up to 40 Spotify ids>` answers
 * `{"content":[{"href": "https://open.spotify.com/track/<id>", "danceability": ..., ...}]}`;
 * unknown ids are simply absent. 429 (with `Retry-After`), 5xx and network errors are retried by
 * {@link fetchWithRetry}; a failure that outlasts the retries stops the provider for this run
 * (reported, not fatal: the next provider still runs).
 * @module
 */

import type { HttpConfig } from "../config.ts";
import { type FetchRetryOptions, fetchWithRetry, HttpError, NetworkError } from "../http.ts";
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

/** Most ids ReccoBeats accepts in one request. */
export const RECCOBEATS_BATCH = 40;

/** Options of {@link createReccoBeatsProvider}. */
export interface ReccoBeatsOptions {
  /** Base URL (`config.features.reccobeatsUrl`), without a trailing slash. */
  baseUrl: string;
  /** Timeouts and retry bounds (`config.http`). */
  http?: Partial<HttpConfig>;
  /** Ids per request (default and maximum 40). */
  batchSize?: number;
  /** Replaces the retry sleep and jitter (tests). */
  retry?: Pick<FetchRetryOptions, "sleep" | "random">;
}

/** The ReccoBeats audio-features API as a provider. */
export function createReccoBeatsProvider(options: ReccoBeatsOptions): FeaturesLookup {
  const { baseUrl, http = {}, retry = {} } = options;
  const batchSize = Math.min(RECCOBEATS_BATCH, Math.max(1, options.batchSize ?? RECCOBEATS_BATCH));
  const root = baseUrl.replace(/\/+$/, "");
  return {
    name: "reccobeats",
    async lookup(tracks: readonly TrackQuery[], lookup: LookupOptions): Promise<ProviderResult> {
      const { log, signal } = lookup;
      const ids = [...new Set(tracks.map((t) => t.track_id))];
      const report = emptyReport("reccobeats");
      report.requested = ids.length;
      const byId = new Map<string, FeaturesHit>();
      const done = (): ProviderResult => {
        report.found_by_id = byId.size;
        return { byId, byName: new Map(), report };
      };
      const fail = (note: string): ProviderResult => {
        log.warn(note);
        Object.assign(report, { status: "failed", note });
        return done();
      };
      for (let i = 0; i < ids.length; i += batchSize) {
        const batch = ids.slice(i, i + batchSize);
        const url = `${root}/v1/audio-features?ids=${batch.map(encodeURIComponent).join(",")}`;
        let body: unknown;
        try {
          const { response } = await fetchWithRetry(
            url,
            { headers: { accept: "application/json" } },
            { ...http, ...retry, log, signal },
          );
          const text = await response.text();
          try {
            body = JSON.parse(text);
          } catch {
            return fail(
              `ReccoBeats answered ${root}/v1/audio-features with a body that is not JSON ` +
                `(starts ${JSON.stringify(text.slice(0, 60))}); provider stopped`,
            );
          }
        } catch (error) {
          if (error instanceof HttpError || error instanceof NetworkError) {
            return fail(`ReccoBeats audio features failed: ${error.message.split("\n")[0]}`);
          }
          throw error;
        }
        const content = (body as { content?: unknown } | null)?.content;
        if (!Array.isArray(content)) {
          return fail(
            `ReccoBeats answered ${root}/v1/audio-features without a "content" array; provider stopped`,
          );
        }
        const wanted = new Set(batch);
        for (const item of content) {
          if (item === null || typeof item !== "object") continue;
          const record = item as Record<string, unknown>;
          const id = spotifyIdOf(record.href);
          if (id === null || !wanted.has(id) || byId.has(id)) continue;
          const checked = featuresFromJson(record);
          if ("reason" in checked) {
            report.rejected++;
            log.debug("ReccoBeats audio features rejected", {
              track_id: id,
              reason: checked.reason,
            });
            continue;
          }
          byId.set(id, { features: checked.features });
        }
      }
      return done();
    },
  };
}

/** The Spotify id in a ReccoBeats `href` (a Spotify track URL, or any URL ending in the id). */
function spotifyIdOf(href: unknown): string | null {
  if (typeof href !== "string") return null;
  const id = extractTrackId(href);
  if (id) return id;
  const last = href.replace(/[?#].*$/, "").replace(/\/+$/, "").split("/").at(-1);
  return extractTrackId(last);
}
