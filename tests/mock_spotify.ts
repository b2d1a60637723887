/**
 * A mock Spotify (Accounts service + Web API) for tests: `Deno.serve` on 127.0.0.1 with a free
 * port, answering in the shapes of `../shared/fixtures/spotify` (the OpenAPI spec
 * `openapi/fixed-spotify-open-api.yml` and the recorded `api/jmperez/*.json` responses).
 *
 * - `GET /authorize` checks client id, redirect URI, scope and the S256 code challenge, then
 *   redirects (302) to the redirect URI with `code` and `state`, so a test can follow it like a
 *   browser ({@link followAuthorize}).
 * - `POST /api/token`: `authorization_code` (PKCE `code_verifier` checked against the challenge,
 *   redirect URI checked) and `refresh_token` grants; client id in the body or HTTP Basic (and the
 *   secret checked when the mock has one).
 * - `GET /v1/me`, `GET /v1/me/top/tracks` and `GET /v1/me/top/artists` (offset/limit paging with
 *   `next`/`total` over a configurable list per time range), `GET /v1/audio-features?ids=`.
 * - `GET /v1/me/player/recently-played` (scope user-read-recently-played): like Spotify, only the
 *   last 50 plays up to the mock's clock (`state.now`) are kept; `after`/`before` cursors (ms,
 *   exclusive, not both), `limit` 1..50, newest first, `cursors` and `next` as in the recorded
 *   responses (`../shared/fixtures/spotify/api/recorded`).
 * - Several users (a household): {@link MockSpotify.addUser} adds one with its own data; tokens
 *   belong to a user (`issueTokens({ userId })`, or `/authorize` while `state.loginAs` names
 *   one), and every `/v1/me...` answer is that user's. A user's `invalidGrant` revokes only its
 *   refresh tokens. Faults are per path, so they hit every user (a shared 429 storm).
 * - Fault switches: queued per path with {@link MockSpotify.fault} (429 + Retry-After, 500, slow
 *   answer, 401 expired token, malformed JSON, any body), and flags on {@link MockSpotifyState}
 *   (`invalidGrant`, `omitRefreshToken`, `audioFeaturesForbidden`, `denyAuthorization`).
 * @module
 */

import { type StoredTokens, writeTokenStore } from "../lib/spotify/token_store.ts";

const FIXTURES = new URL("../../shared/fixtures/spotify/api/jmperez/", import.meta.url);
const RECORDED = new URL("../../shared/fixtures/spotify/api/recorded/", import.meta.url);

/** The scopes `deno task auth` asks for (the mock's default grant). */
export const ALL_SCOPES = "user-top-read user-read-recently-played";

/**
 * 15 recorded top artists: `user_top_artists.json` (JMPerez, 5, no genres) then
 * `java_top_artists.json` (spotify-web-api-java, 10 with genres).
 */
export function recordedTopArtists(): Record<string, unknown>[] {
  const read = (url: URL) =>
    (JSON.parse(Deno.readTextFileSync(url)) as { items: Record<string, unknown>[] }).items;
  return [
    ...read(new URL("user_top_artists.json", FIXTURES)),
    ...read(new URL("java_top_artists.json", RECORDED)),
  ];
}

/** The 2 recorded plays of `java_recently_played.json` (spotify-web-api-java, MIT). */
export function recordedPlays(): MockPlay[] {
  const page = JSON.parse(
    Deno.readTextFileSync(new URL("java_recently_played.json", RECORDED)),
  ) as { items: { track: Record<string, unknown>; played_at: string; context: unknown }[] };
  return page.items.map((i) => ({
    track: i.track,
    playedAt: Date.parse(i.played_at),
    context: i.context,
  }));
}

/** One play the mock knows (Spotify's PlayHistoryObject, played_at as ms). */
export interface MockPlay {
  track: Record<string, unknown>;
  /** ms since the epoch. */
  playedAt: number;
  context: unknown;
}

/**
 * Plays of `tracks` (cycled) every `everyMs` from `startMs`, each with a playlist context on
 * every third play.
 */
export function makePlays(
  tracks: readonly Record<string, unknown>[],
  options: { startMs: number; everyMs: number; count: number },
): MockPlay[] {
  return Array.from({ length: options.count }, (_, i) => ({
    track: tracks[i % tracks.length]!,
    playedAt: options.startMs + i * options.everyMs,
    context: i % 3 === 0
      ? {
        type: "playlist",
        uri: "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
        href: null,
        external_urls: {},
      }
      : null,
  }));
}

/** The 5 recorded items of `user_top_tracks.json` (JMPerez/spotify-web-api-js, MIT). */
export function recordedTopTracks(): Record<string, unknown>[] {
  const page = JSON.parse(
    Deno.readTextFileSync(new URL("user_top_tracks.json", FIXTURES)),
  ) as { items: Record<string, unknown>[] };
  return page.items;
}

/** The recorded audio features of `tracks_audio_features.json`, by track id. */
export function recordedAudioFeatures(): Record<string, Record<string, unknown>> {
  const doc = JSON.parse(
    Deno.readTextFileSync(new URL("tracks_audio_features.json", FIXTURES)),
  ) as { audio_features: Record<string, unknown>[] };
  return Object.fromEntries(doc.audio_features.map((f) => [f.id as string, f]));
}

/** Audio features (the first recorded values) for each of the recorded top tracks. */
export function featuresForTopTracks(): Record<string, Record<string, unknown>> {
  const sample = Object.values(recordedAudioFeatures())[0]!;
  return Object.fromEntries(
    recordedTopTracks().map((t) => [t.id, { ...sample, id: t.id, uri: `spotify:track:${t.id}` }]),
  );
}

/** Options of {@link makeTrackItems}. */
export interface MakeTrackItemsOptions {
  /** Prefix of the generated ids (22 characters in all, like Spotify's). Default `MockTrack`. */
  prefix?: string;
}

/**
 * `n` track objects cloned from the recorded ones: the first five are the recorded tracks
 * unchanged (with the default prefix), the rest get new ids `<prefix>0000…<i>` and a numbered name.
 */
export function makeTrackItems(
  n: number,
  options: MakeTrackItemsOptions = {},
): Record<string, unknown>[] {
  const { prefix = "MockTrack" } = options;
  const recorded = recordedTopTracks();
  return Array.from({ length: n }, (_, i) => {
    const base = structuredClone(recorded[i % recorded.length]!);
    if (i < recorded.length && prefix === "MockTrack") return base;
    const id = `${prefix}${String(i).padStart(22 - prefix.length, "0")}`;
    return {
      ...base,
      id,
      name: `${base.name} #${i + 1}`,
      uri: `spotify:track:${id}`,
      href: `https://api.spotify.com/v1/tracks/${id}`,
      external_urls: { spotify: `https://open.spotify.com/track/${id}` },
      external_ids: { isrc: `MOCK${String(i).padStart(8, "0")}` },
    };
  });
}

/** A fault served instead of (or before) the normal answer. */
export type MockFault =
  /** A status with Spotify's error body (e.g. 429 with `retryAfter: "1"`, 500, 503). */
  | { kind: "status"; status: number; retryAfter?: string; body?: unknown }
  /** The normal answer, `delayMs` late (or when the mock closes, whichever comes first). */
  | { kind: "slow"; delayMs: number }
  /** 200 with a JSON body cut in the middle. */
  | { kind: "malformed" }
  /** 401 "The access token expired"; the presented access token stops working. */
  | { kind: "expired_token" }
  /** 200 with this JSON body (e.g. a page of the wrong shape). */
  | { kind: "body"; body: unknown };

/** One user's data (the first user's is the state's own fields). */
export interface MockUserData {
  user: { id: string; display_name: string | null };
  topTracks: Record<string, unknown[]>;
  topArtists: Record<string, unknown[]>;
  plays: MockPlay[];
  /** The refresh_token grant answers `invalid_grant` for this user's tokens. */
  invalidGrant: boolean;
}

/** What the mock knows; tests may change it at any time. */
export interface MockSpotifyState {
  clientId: string;
  /** When set, the token endpoint requires HTTP Basic with this secret. */
  clientSecret?: string;
  /** Top tracks per time range (`short_term`, `medium_term`, `long_term`). */
  topTracks: Record<string, unknown[]>;
  /** Top artists per time range. */
  topArtists: Record<string, unknown[]>;
  /** Every play of the user (any order); only the last 50 up to `now()` are served. */
  plays: MockPlay[];
  /** The mock's clock for recently played (ms; default the real clock). */
  now: () => number;
  /** Serve played_at without milliseconds (`2026-11-30T10:00:00Z`), as Spotify sometimes does. */
  playedAtWithoutMs: boolean;
  user: { id: string; display_name: string | null };
  /** Audio features by track id (`GET /v1/audio-features`); unknown ids answer `null`. */
  audioFeatures: Record<string, unknown>;
  /** `GET /v1/audio-features` answers 403, as for apps without extended access. */
  audioFeaturesForbidden: boolean;
  /** The refresh_token grant answers 400 `invalid_grant` (revoked or expired refresh token). */
  invalidGrant: boolean;
  /** The refresh_token grant answers without a `refresh_token` (the old one stays valid). */
  omitRefreshToken: boolean;
  /** `/authorize` redirects back with `error=access_denied`. */
  denyAuthorization: boolean;
  /** Token errors echo the request's Authorization header (as some proxies and servers do). */
  echoAuthorization: boolean;
  /** Lifetime of issued access tokens, seconds. */
  accessTokenTtl: number;
  /** Queued faults: the first entry whose path matches a request is served (then `times`--). */
  faults: { path: string; fault: MockFault; times: number }[];
  /** Valid access tokens with their scope, expiry (ms since epoch) and user id. */
  accessTokens: Map<string, { scope: string; expiresAt: number; user: string }>;
  /** Valid refresh tokens with their scope and user id. */
  refreshTokens: Map<string, { scope: string; user: string }>;
  /** The other users, by id (see {@link MockSpotify.addUser}). */
  others: Map<string, MockUserData>;
  /** Who is logged in to Spotify in "the browser" `/authorize` serves (default the first). */
  loginAs?: string;
  /** Requests being answered now, and the most at once so far. */
  inFlight: number;
  maxInFlight: number;
}

/** One request the mock received. */
export interface MockRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Form fields of a token request. */
  form?: Record<string, string>;
  /** The `authorization` header (test-only mock: kept to check Basic/Bearer use). */
  authorization?: string;
  /** Status answered (0 while in flight). */
  status: number;
  /** When it arrived (ms since the epoch). */
  at: number;
  /** The user whose access token it carried (Web API requests with a valid token). */
  user?: string;
  /** The fault served, if any. */
  fault?: MockFault["kind"];
}

/** Options of {@link startMockSpotify}. */
export interface MockSpotifyOptions {
  clientId?: string;
  clientSecret?: string;
  /** One list for every time range, or lists per range (default: the 5 recorded tracks). */
  topTracks?: unknown[] | Record<string, unknown[]>;
  /** One list for every time range (default: the 15 recorded artists). */
  topArtists?: unknown[];
  /** The user's plays (default: the 2 recorded ones). */
  plays?: MockPlay[];
  user?: { id: string; display_name: string | null };
  audioFeatures?: Record<string, unknown>;
  accessTokenTtl?: number;
}

/** A running mock. */
export interface MockSpotify {
  /** Base URL for both SPOTIFY_API_URL and SPOTIFY_ACCOUNTS_URL. */
  url: string;
  state: MockSpotifyState;
  /** Every request, in arrival order. */
  requests: MockRequest[];
  /** Queues a fault for the next `times` requests to `path` (e.g. `/v1/me/top/tracks`). */
  fault(path: string, fault: MockFault, times?: number): void;
  /** Adds a user with its own data (default: the recorded tracks, artists and plays). */
  addUser(
    user: { id: string; display_name: string | null },
    data?: {
      topTracks?: unknown[];
      topArtists?: unknown[];
      plays?: MockPlay[];
      invalidGrant?: boolean;
    },
  ): MockUserData;
  /** Mints tokens directly (for tests that do not go through `/authorize`). */
  issueTokens(options?: { scope?: string; expiresIn?: number; userId?: string }): {
    access_token: string;
    refresh_token: string;
    expires_in: number;
    scope: string;
  };
  /** Requests to a path (e.g. `/api/token`). */
  requestsTo(path: string): MockRequest[];
  close(): Promise<void>;
}

const TIME_RANGES = ["short_term", "medium_term", "long_term"];

/** Starts the mock on 127.0.0.1 with a free port. */
export function startMockSpotify(options: MockSpotifyOptions = {}): MockSpotify {
  const tracks = options.topTracks ?? recordedTopTracks();
  const state: MockSpotifyState = {
    clientId: options.clientId ?? "mock-client-id",
    clientSecret: options.clientSecret,
    topTracks: Array.isArray(tracks)
      ? Object.fromEntries(TIME_RANGES.map((r) => [r, tracks]))
      : { ...tracks },
    topArtists: Object.fromEntries(
      TIME_RANGES.map((r) => [r, options.topArtists ?? recordedTopArtists()]),
    ),
    plays: options.plays ?? recordedPlays(),
    now: () => Date.now(),
    playedAtWithoutMs: false,
    user: options.user ?? { id: "mockuser", display_name: "Mock User" },
    audioFeatures: options.audioFeatures ?? recordedAudioFeatures(),
    audioFeaturesForbidden: false,
    invalidGrant: false,
    omitRefreshToken: false,
    denyAuthorization: false,
    echoAuthorization: false,
    accessTokenTtl: options.accessTokenTtl ?? 3600,
    faults: [],
    accessTokens: new Map(),
    refreshTokens: new Map(),
    others: new Map(),
    inFlight: 0,
    maxInFlight: 0,
  };
  /** The data of user `id` (the first user's is the state's own, live). */
  const dataOf = (id: string): MockUserData =>
    state.others.get(id) ?? {
      user: state.user,
      topTracks: state.topTracks,
      topArtists: state.topArtists,
      plays: state.plays,
      invalidGrant: state.invalidGrant,
    };
  const requests: MockRequest[] = [];
  const codes = new Map<
    string,
    { challenge: string; redirectUri: string; clientId: string; scope: string; user: string }
  >();
  const closing = new AbortController();
  let url = "";

  const issueTokens = (o: { scope?: string; expiresIn?: number; userId?: string } = {}) => {
    const scope = o.scope ?? ALL_SCOPES;
    const expiresIn = o.expiresIn ?? state.accessTokenTtl;
    const user = o.userId ?? state.user.id;
    const access_token = `BQ${randomToken()}`;
    const refresh_token = `AQ${randomToken()}`;
    state.accessTokens.set(access_token, {
      scope,
      expiresAt: Date.now() + expiresIn * 1000,
      user,
    });
    state.refreshTokens.set(refresh_token, { scope, user });
    return { access_token, refresh_token, expires_in: expiresIn, scope };
  };

  const handle = async (request: Request, entry: MockRequest): Promise<Response> => {
    const u = new URL(request.url);
    const presented = bearer(request);
    entry.user = presented ? state.accessTokens.get(presented)?.user : undefined;
    const index = state.faults.findIndex((f) => f.path === u.pathname && f.times > 0);
    if (index >= 0) {
      const queued = state.faults[index]!;
      queued.times--;
      if (queued.times <= 0) state.faults.splice(index, 1);
      entry.fault = queued.fault.kind;
      const f = queued.fault;
      switch (f.kind) {
        case "status": {
          const headers: Record<string, string> = {};
          if (f.retryAfter !== undefined) headers["retry-after"] = f.retryAfter;
          return apiError(f.status, f.body ?? statusMessage(f.status), headers);
        }
        case "malformed":
          return new Response('{"href": "x", "items": [{"album": {"album_type": "ALB', {
            headers: { "content-type": "application/json; charset=utf-8" },
          });
        case "body":
          return json(f.body);
        case "expired_token": {
          const token = bearer(request);
          if (token) state.accessTokens.delete(token);
          return apiError(401, "The access token expired");
        }
        case "slow":
          // Ends early when the mock closes (a client that timed out is long gone by then).
          await delay(f.delayMs, closing.signal);
          break;
      }
    }
    if (u.pathname === "/authorize" && request.method === "GET") return authorize(u);
    if (u.pathname === "/api/token" && request.method === "POST") {
      return token(request, entry);
    }
    if (u.pathname.startsWith("/v1/")) {
      const token = bearer(request);
      const grant = token ? state.accessTokens.get(token) : undefined;
      if (!token) return apiError(401, "No token provided");
      if (!grant) return apiError(401, "Invalid access token");
      if (grant.expiresAt <= Date.now()) return apiError(401, "The access token expired");
      if (request.method !== "GET") return apiError(405, "Method not allowed");
      const data = dataOf(grant.user);
      if (u.pathname === "/v1/me") return json(userObject(data.user));
      if (u.pathname === "/v1/me/top/tracks") {
        if (!grant.scope.split(" ").includes("user-top-read")) {
          return apiError(403, "Insufficient client scope");
        }
        return topItems(u, "tracks", data);
      }
      if (u.pathname === "/v1/me/top/artists") {
        if (!grant.scope.split(" ").includes("user-top-read")) {
          return apiError(403, "Insufficient client scope");
        }
        return topItems(u, "artists", data);
      }
      if (u.pathname === "/v1/me/player/recently-played") {
        if (!grant.scope.split(" ").includes("user-read-recently-played")) {
          return apiError(403, "Insufficient client scope");
        }
        return recentlyPlayed(u, data);
      }
      if (u.pathname === "/v1/audio-features") return audioFeatures(u);
      return apiError(404, "Service not found");
    }
    return new Response("Not found", { status: 404 });
  };

  const authorize = (u: URL): Response => {
    const q = u.searchParams;
    const redirectUri = q.get("redirect_uri") ?? "";
    if (q.get("client_id") !== state.clientId) return text(400, "INVALID_CLIENT: Invalid client");
    if (!/^http:\/\/127\.0\.0\.1:\d+\/callback$/.test(redirectUri)) {
      return text(400, "INVALID_CLIENT: Invalid redirect URI");
    }
    const back = new URL(redirectUri);
    const stateParam = q.get("state");
    if (stateParam !== null) back.searchParams.set("state", stateParam);
    if (state.denyAuthorization) {
      back.searchParams.set("error", "access_denied");
      return Response.redirect(back.href, 302);
    }
    if (q.get("response_type") !== "code") {
      return text(400, "response_type must be code");
    }
    const challenge = q.get("code_challenge");
    if (q.get("code_challenge_method") !== "S256" || !challenge) {
      return text(400, "code_challenge_method must be S256 with a code_challenge");
    }
    const code = `AQ${randomToken()}`;
    codes.set(code, {
      challenge,
      redirectUri,
      clientId: state.clientId,
      scope: q.get("scope") ?? "",
      user: state.loginAs ?? state.user.id,
    });
    back.searchParams.set("code", code);
    return Response.redirect(back.href, 302);
  };

  const token = async (request: Request, entry: MockRequest): Promise<Response> => {
    const form = Object.fromEntries(new URLSearchParams(await request.text()));
    entry.form = form;
    let clientId = form.client_id;
    const auth = request.headers.get("authorization");
    if (auth?.startsWith("Basic ")) {
      const [id, secret] = atob(auth.slice(6)).split(":").map((s) =>
        decodeURIComponent(s.replace(/\+/g, " "))
      );
      if (id !== state.clientId || (state.clientSecret && secret !== state.clientSecret)) {
        return oauthError(
          400,
          "invalid_client",
          state.echoAuthorization ? `Invalid client secret in "${auth}"` : "Invalid client secret",
        );
      }
      clientId = id;
    } else if (state.clientSecret) {
      return oauthError(400, "invalid_client", "Invalid client secret");
    }
    if (clientId !== state.clientId) return oauthError(400, "invalid_client", "Invalid client");
    if (form.grant_type === "authorization_code") {
      const issued = form.code ? codes.get(form.code) : undefined;
      if (!issued) return oauthError(400, "invalid_grant", "Invalid authorization code");
      codes.delete(form.code!);
      if (form.redirect_uri !== issued.redirectUri) {
        return oauthError(400, "invalid_grant", "Invalid redirect URI");
      }
      if (!form.code_verifier || (await s256(form.code_verifier)) !== issued.challenge) {
        return oauthError(400, "invalid_grant", "code_verifier was incorrect");
      }
      const t = issueTokens({ scope: issued.scope, userId: issued.user });
      return json({ ...t, token_type: "Bearer" });
    }
    if (form.grant_type === "refresh_token") {
      const known = form.refresh_token ? state.refreshTokens.get(form.refresh_token) : undefined;
      if (!known || dataOf(known.user).invalidGrant) {
        return oauthError(400, "invalid_grant", "Refresh token revoked");
      }
      const t = issueTokens({ scope: known.scope, userId: known.user });
      state.refreshTokens.delete(t.refresh_token);
      if (state.omitRefreshToken) {
        return json({
          access_token: t.access_token,
          token_type: "Bearer",
          expires_in: t.expires_in,
          scope: t.scope,
        });
      }
      // Rotation: Spotify may return a new refresh token; the old one then stops working.
      state.refreshTokens.delete(form.refresh_token!);
      state.refreshTokens.set(t.refresh_token, { scope: known.scope, user: known.user });
      return json({ ...t, token_type: "Bearer" });
    }
    return oauthError(400, "unsupported_grant_type", `grant_type ${form.grant_type}`);
  };

  const userObject = (user: MockUserData["user"]) => ({
    display_name: user.display_name,
    external_urls: { spotify: `https://open.spotify.com/user/${user.id}` },
    href: `https://api.spotify.com/v1/users/${user.id}`,
    id: user.id,
    images: [],
    type: "user",
    uri: `spotify:user:${user.id}`,
  });

  const topItems = (u: URL, type: "tracks" | "artists", data: MockUserData): Response => {
    const q = u.searchParams;
    const timeRange = q.get("time_range") ?? "medium_term";
    if (!TIME_RANGES.includes(timeRange)) return apiError(400, "Invalid time range");
    const limit = Number(q.get("limit") ?? "20");
    const offset = Number(q.get("offset") ?? "0");
    if (!Number.isInteger(limit) || limit < 1 || limit > 50) return apiError(400, "Invalid limit");
    if (!Number.isInteger(offset) || offset < 0) return apiError(400, "Invalid offset");
    const all = (type === "tracks" ? data.topTracks : data.topArtists)[timeRange] ?? [];
    const base = `${url}/v1/me/top/${type}`;
    const link = (o: number) => `${base}?time_range=${timeRange}&offset=${o}&limit=${limit}`;
    return json({
      href: link(offset),
      items: all.slice(offset, offset + limit),
      limit,
      next: offset + limit < all.length ? link(offset + limit) : null,
      offset,
      previous: offset > 0 ? link(Math.max(0, offset - limit)) : null,
      total: all.length,
    });
  };

  const recentlyPlayed = (u: URL, data: MockUserData): Response => {
    const q = u.searchParams;
    const limit = Number(q.get("limit") ?? "20");
    if (!Number.isInteger(limit) || limit < 1 || limit > 50) return apiError(400, "Invalid limit");
    const after = q.get("after");
    const before = q.get("before");
    if (after !== null && before !== null) {
      return apiError(400, "Only one of after and before may be given");
    }
    const cursor = Number(after ?? before);
    if ((after !== null || before !== null) && !Number.isInteger(cursor)) {
      return apiError(400, "Invalid cursor");
    }
    const now = state.now();
    // Spotify keeps the last 50 plays only.
    const kept = data.plays.filter((p) => p.playedAt <= now).sort((a, b) => b.playedAt - a.playedAt)
      .slice(0, 50);
    const window = kept.filter((p) =>
      after !== null ? p.playedAt > cursor : before !== null ? p.playedAt < cursor : true
    ).slice(0, limit);
    const stamp = (ms: number) => {
      const iso = new Date(ms).toISOString();
      return state.playedAtWithoutMs ? iso.replace(/\.\d{3}Z$/, "Z") : iso;
    };
    const base = `${url}/v1/me/player/recently-played`;
    const oldest = window.at(-1)?.playedAt;
    return json({
      href: `${base}?${q}`,
      items: window.map((p) => ({
        track: p.track,
        played_at: stamp(p.playedAt),
        context: p.context,
      })),
      limit,
      next: oldest !== undefined && kept.some((p) => p.playedAt < oldest)
        ? `${base}?before=${oldest}&limit=${limit}`
        : null,
      cursors: window.length
        ? { after: String(window[0]!.playedAt), before: String(oldest) }
        : null,
    });
  };

  const audioFeatures = (u: URL): Response => {
    if (state.audioFeaturesForbidden) return apiError(403, "Forbidden");
    const ids = (u.searchParams.get("ids") ?? "").split(",").filter(Boolean);
    if (ids.length === 0) return apiError(400, "invalid request");
    if (ids.length > 100) return apiError(400, "Too many ids requested");
    return json({ audio_features: ids.map((id) => state.audioFeatures[id] ?? null) });
  };

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, signal: closing.signal },
    async (request) => {
      const u = new URL(request.url);
      const entry: MockRequest = {
        method: request.method,
        path: u.pathname,
        query: Object.fromEntries(u.searchParams),
        authorization: request.headers.get("authorization") ?? undefined,
        status: 0,
        at: Date.now(),
      };
      requests.push(entry);
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      try {
        const response = await handle(request, entry);
        entry.status = response.status;
        return response;
      } finally {
        state.inFlight--;
      }
    },
  );
  url = `http://127.0.0.1:${server.addr.port}`;

  return {
    url,
    state,
    requests,
    fault(path, fault, times = 1) {
      state.faults.push({ path, fault, times });
    },
    issueTokens,
    addUser(user, data = {}) {
      const tracks = data.topTracks ?? recordedTopTracks();
      const artists = data.topArtists ?? recordedTopArtists();
      const added: MockUserData = {
        user,
        topTracks: Object.fromEntries(TIME_RANGES.map((r) => [r, tracks])),
        topArtists: Object.fromEntries(TIME_RANGES.map((r) => [r, artists])),
        plays: data.plays ?? recordedPlays(),
        invalidGrant: data.invalidGrant ?? false,
      };
      state.others.set(user.id, added);
      return added;
    },
    requestsTo(path) {
      return requests.filter((r) => r.path === path);
    },
    async close() {
      closing.abort();
      await server.finished;
    },
  };
}

/** Options of {@link writeMockTokens}. */
export interface WriteMockTokensOptions {
  /** Access-token expiry (default: one hour from now, as the mock knows it). */
  expiresAt?: Date;
  /** Consent time (default now). */
  consentedAt?: Date;
  scope?: string;
  /** Whose tokens (default the first user). */
  userId?: string;
}

/**
 * Mints tokens on the mock and writes a token store for them (what `deno task auth` would leave),
 * so a test can use `openSpotifyClient` without going through `/authorize`.
 */
export async function writeMockTokens(
  mock: MockSpotify,
  path: string,
  options: WriteMockTokensOptions = {},
): Promise<StoredTokens> {
  const t = mock.issueTokens({ scope: options.scope, userId: options.userId });
  const expiresAt = options.expiresAt ?? new Date(Date.now() + t.expires_in * 1000);
  const tokens: StoredTokens = {
    version: 1,
    client_id: mock.state.clientId,
    access_token: t.access_token,
    token_type: "Bearer",
    scope: t.scope,
    expires_at: expiresAt.toISOString(),
    refresh_token: t.refresh_token,
    consented_at: (options.consentedAt ?? new Date()).toISOString(),
    refreshed_at: null,
    user: { ...(mock.state.others.get(options.userId ?? "")?.user ?? mock.state.user) },
  };
  await writeTokenStore(path, tokens);
  return tokens;
}

/** Environment pointing the toolkit at the mock (for `loadConfig({ env, envFile: false })`). */
export function mockEnv(
  mock: MockSpotify,
  dataDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PIPELINE_DATA_DIR: dataDir,
    SPOTIFY_API_URL: mock.url,
    SPOTIFY_ACCOUNTS_URL: mock.url,
    SPOTIFY_CLIENT_ID: mock.state.clientId,
    ...(mock.state.clientSecret ? { SPOTIFY_CLIENT_SECRET: mock.state.clientSecret } : {}),
    SPOTIFY_SOURCE: "api",
    ...extra,
  };
}

/**
 * Opens the authorize URL like a browser: GET it, follow the 302 to the loopback callback and
 * return the callback's answer (the toolkit's page).
 */
export async function followAuthorize(authorizeUrl: string): Promise<Response> {
  const first = await fetch(authorizeUrl, { redirect: "manual" });
  await first.body?.cancel();
  const location = first.headers.get("location");
  if (first.status !== 302 || !location) {
    throw new Error(`/authorize answered ${first.status} without a redirect`);
  }
  return await fetch(location);
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** Spotify's Web API error body (`ErrorObject`). */
function apiError(
  status: number,
  message: unknown,
  headers: Record<string, string> = {},
): Response {
  const body = typeof message === "string" ? { error: { status, message } } : message;
  return json(body, status, headers);
}

function oauthError(status: number, error: string, description: string): Response {
  return json({ error, error_description: description }, status);
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain" } });
}

function statusMessage(status: number): string {
  return status === 429
    ? "API rate limit exceeded"
    : status >= 500
    ? "Server error"
    : `HTTP ${status}`;
}

function bearer(request: Request): string | undefined {
  const h = request.headers.get("authorization");
  return h?.startsWith("Bearer ") ? h.slice(7) : undefined;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

async function s256(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return btoa(String.fromCharCode(...new Uint8Array(digest))).replace(/\+/g, "-").replace(
    /\//g,
    "_",
  ).replace(/=+$/, "");
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
