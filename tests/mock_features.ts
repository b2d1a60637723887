/**
 * A local mock of the two audio-features APIs, on one free port (Deno.serve, 127.0.0.1):
 *
 * - Spotify `GET <spotifyUrl>/v1/audio-features?ids=` (≤ 100 ids, bearer token required),
 *   answering `{"audio_features": [...]}` with `null` for unknown ids, items in the shape of
 *   `../shared/fixtures/spotify/api/jmperez/tracks_audio_features.json`;
 * - ReccoBeats `GET <reccobeatsUrl>/v1/audio-features?ids=` (≤ 40 ids), answering
 *   `{"content": [{"id": <uuid>, "href": "https://open.spotify.com/track/<id>", ...}]}` with
 *   unknown ids omitted.
 *
 * Fault switches: `faults.spotify403` (every Spotify request answers 403, as for apps without
 * extended access), `faults.reccobeats429` (the next N ReccoBeats requests answer 429 with
 * `Retry-After: faults.retryAfter`), `faults.reccobeats500`, both after
 * `faults.reccobeatsFaultAfter` normal answers.
 * @module
 */

import { type AudioFeatures, FEATURE_COLUMNS } from "../lib/types.ts";

const FIXTURE = new URL(
  "../../shared/fixtures/spotify/api/jmperez/tracks_audio_features.json",
  import.meta.url,
);

/** Features the mock knows, by Spotify track id (time_signature may be null). */
export type FeatureTable = Record<string, AudioFeatures>;

/** One request the mock received. */
export interface MockRequest {
  api: "spotify" | "reccobeats";
  ids: string[];
  status: number;
  authorization: string | null;
}

/** Fault switches (mutable while the server runs). */
export interface FeaturesMockFaults {
  spotify403: boolean;
  /** Number of upcoming ReccoBeats requests answered 429. */
  reccobeats429: number;
  /** `Retry-After` value sent with 429 (seconds). */
  retryAfter: string;
  /** Number of upcoming ReccoBeats requests answered 500. */
  reccobeats500: number;
  /** ReccoBeats requests answered normally before the 429/500 switches apply. */
  reccobeatsFaultAfter: number;
}

/** A running mock. */
export interface FeaturesMock {
  /** Origin, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Use as `SPOTIFY_API_URL`. */
  spotifyUrl: string;
  /** Use as `RECCOBEATS_API_URL`. */
  reccobeatsUrl: string;
  /** Features known to both APIs (the fixture's track plus `options.features`). */
  features: FeatureTable;
  /** Every request received, in order. */
  requests: MockRequest[];
  faults: FeaturesMockFaults;
  close(): Promise<void>;
}

/** Options of {@link startFeaturesMock}. */
export interface FeaturesMockOptions {
  /** Extra features known to both APIs. */
  features?: FeatureTable;
  /** Features known to Spotify only. */
  spotifyOnly?: FeatureTable;
  /** Features known to ReccoBeats only. */
  reccobeatsOnly?: FeatureTable;
}

/** The recorded fixture item (a template for every Spotify answer). */
export async function fixtureAudioFeatures(): Promise<Record<string, unknown>> {
  const body = JSON.parse(await Deno.readTextFile(FIXTURE)) as {
    audio_features: Record<string, unknown>[];
  };
  return body.audio_features[0]!;
}

/** Starts the mock on a free port; `close()` it at the end of the test. */
export async function startFeaturesMock(options: FeaturesMockOptions = {}): Promise<FeaturesMock> {
  const template = await fixtureAudioFeatures();
  const fixtureId = template.id as string;
  const shared: FeatureTable = {
    [fixtureId]: pickFeatures(template),
    ...options.features,
  };
  const spotifyTable: FeatureTable = { ...shared, ...options.spotifyOnly };
  const reccoTable: FeatureTable = { ...shared, ...options.reccobeatsOnly };
  const requests: MockRequest[] = [];
  const faults: FeaturesMockFaults = {
    spotify403: false,
    reccobeats429: 0,
    retryAfter: "1",
    reccobeats500: 0,
    reccobeatsFaultAfter: 0,
  };

  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json", ...headers },
    });

  const handler = (request: Request): Response => {
    const url = new URL(request.url);
    const ids = (url.searchParams.get("ids") ?? "").split(",").filter(Boolean);
    const authorization = request.headers.get("authorization");
    const log = (api: MockRequest["api"], status: number) =>
      requests.push({ api, ids, status, authorization });

    if (request.method === "GET" && url.pathname === "/spotify/v1/audio-features") {
      if (!authorization?.startsWith("Bearer ")) {
        log("spotify", 401);
        return json(401, { error: { status: 401, message: "No token provided" } });
      }
      if (faults.spotify403) {
        log("spotify", 403);
        return json(403, { error: { status: 403, message: "Forbidden" } });
      }
      if (ids.length === 0 || ids.length > 100) {
        log("spotify", 400);
        return json(400, { error: { status: 400, message: "invalid request" } });
      }
      log("spotify", 200);
      return json(200, {
        audio_features: ids.map((id) => {
          const f = spotifyTable[id];
          if (!f) return null;
          return {
            ...template,
            ...f,
            id,
            uri: `spotify:track:${id}`,
            track_href: `https://api.spotify.com/v1/tracks/${id}`,
          };
        }),
      });
    }

    if (request.method === "GET" && url.pathname === "/reccobeats/v1/audio-features") {
      const faulty = faults.reccobeatsFaultAfter === 0;
      if (!faulty) faults.reccobeatsFaultAfter--;
      if (faulty && faults.reccobeats429 > 0) {
        faults.reccobeats429--;
        log("reccobeats", 429);
        return json(429, { error: "Too Many Requests" }, { "retry-after": faults.retryAfter });
      }
      if (faulty && faults.reccobeats500 > 0) {
        faults.reccobeats500--;
        log("reccobeats", 500);
        return json(500, { error: "Internal Server Error" });
      }
      if (ids.length === 0 || ids.length > 40) {
        log("reccobeats", 400);
        return json(400, { error: "ids must hold 1 to 40 ids" });
      }
      log("reccobeats", 200);
      return json(200, {
        content: ids.flatMap((id) => {
          const f = reccoTable[id];
          if (!f) return [];
          const { time_signature: _ts, ...rest } = f; // ReccoBeats has no time_signature
          return [{
            id: crypto.randomUUID(),
            href: `https://open.spotify.com/track/${id}`,
            ...rest,
          }];
        }),
      });
    }
    return json(404, { error: "not found" });
  };

  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, handler);
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    spotifyUrl: `${url}/spotify`,
    reccobeatsUrl: `${url}/reccobeats`,
    features: shared,
    requests,
    faults,
    close: async () => {
      await server.shutdown();
    },
  };
}

function pickFeatures(item: Record<string, unknown>): AudioFeatures {
  const out = {} as AudioFeatures;
  for (const name of FEATURE_COLUMNS) {
    const v = item[name];
    out[name] = typeof v === "number" ? v : null;
  }
  return out;
}
