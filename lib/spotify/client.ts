/**
 * The Spotify Web API client: holds the user's tokens, refreshes the access token when it has
 * expired or when the API answers 401 (once per request), saves refreshed tokens to the token
 * store, and sends every request through {@link fetchWithRetry} (timeout, retries on 429/5xx).
 * @module
 */

import type { Config } from "../config.ts";
import { isRecord } from "../json.ts";
import { SourceError } from "../errors.ts";
import { fetchWithRetry, HttpError, type RequestGate } from "../http.ts";
import type { Logger } from "../log.ts";
import { exchangeRefreshToken } from "./refresh_in_memory.ts";
import { readTokenStore, type StoredTokens, writeTokenStore } from "./token_store.ts";

/** Refresh this long before the access token's stated expiry. */
const EXPIRY_MARGIN_MS = 60_000;

/** Options of {@link SpotifyClient.getJson}. */
export interface GetJsonOptions {
  signal?: AbortSignal;
}

/** Options of the {@link SpotifyClient} constructor. */
export interface SpotifyClientOptions {
  log: Logger;
  /** Where refreshed tokens are saved (default: `config.spotify.tokensFile`). */
  tokensFile?: string;
  /** Clock (tests). */
  now?: () => Date;
  /** The request budget shared with the run's other accounts. */
  gate?: RequestGate;
}

/** A Spotify Web API client holding the user's tokens. */
export class SpotifyClient {
  #config: Config;
  #log: Logger;
  #tokens: StoredTokens;
  #tokensFile: string;
  #now: () => Date;
  #refreshing?: Promise<void>;
  #gate?: RequestGate;

  /** Creates a client from loaded tokens; {@link openSpotifyClient} reads them from the store. */
  constructor(config: Config, tokens: StoredTokens, options: SpotifyClientOptions) {
    this.#config = config;
    this.#log = options.log;
    this.#tokens = tokens;
    this.#tokensFile = options.tokensFile ?? config.spotify.tokensFile;
    this.#now = options.now ?? (() => new Date());
    this.#gate = options.gate;
    this.#log.addSecret(tokens.access_token);
    this.#log.addSecret(tokens.refresh_token);
    const configured = config.spotify.clientId;
    if (configured && configured !== tokens.client_id) {
      this.#log.warn(
        `The Spotify token store was authorized for client id ${tokens.client_id}, but SPOTIFY_CLIENT_ID is ${configured}: refreshing with the stored one; run \`deno task auth\` to switch apps`,
      );
    }
  }

  /** The current tokens (a copy). */
  get tokens(): StoredTokens {
    return structuredClone(this.#tokens);
  }

  /** Whether the access token has expired (or expires within a minute). */
  get expired(): boolean {
    return Date.parse(this.#tokens.expires_at) - EXPIRY_MARGIN_MS <= this.#now().getTime();
  }

  /**
   * GET a Web API path (e.g. `/v1/me/top/tracks?limit=50`) and parse the JSON answer.
   * Refreshes the access token first when it has expired, and once more on a 401.
   * @throws HttpError for a non-OK status (after retries and the refresh-once logic)
   * @throws NetworkError when no answer came
   * @throws SourceError for a body that is not JSON (naming the URL), or a failed refresh
   */
  async getJson(pathAndQuery: string, options: GetJsonOptions = {}): Promise<unknown> {
    const { signal } = options;
    const url = `${this.#config.spotify.apiUrl}${pathAndQuery}`;
    if (this.expired) {
      this.#log.info("Spotify access token expired: refreshing it");
      await this.refresh({ signal });
    }
    let response: Response;
    try {
      response = await this.#get(url, signal);
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 401) throw error;
      this.#log.info(`Spotify answered 401 for ${error.url}: refreshing the access token once`);
      await this.refresh({ signal });
      response = await this.#get(url, signal);
    }
    const text = await response.text();
    try {
      // unknown until its reader checks it (e.g. validateTopTracksPage, meOf)
      return JSON.parse(text);
    } catch (error) {
      throw new SourceError(
        `Spotify answered ${url} with a body that is not JSON (${(error as Error).message}); ` +
          `it starts: ${JSON.stringify(this.#log.redact(text.slice(0, 80)))}`,
      );
    }
  }

  /**
   * The authorized user's Spotify id: from the token store, or (for a store written before it
   * kept the user) `GET /v1/me` once, saved into the store.
   * @throws SourceError when Spotify gives no user id
   */
  async userId(options: GetJsonOptions = {}): Promise<string> {
    if (this.#tokens.user?.id) return this.#tokens.user.id;
    const me = await this.me(options);
    if (me.id === undefined) {
      throw new SourceError("Spotify's GET /v1/me answered without a user id", {
        hint: "Run `deno task auth` again.",
      });
    }
    this.#tokens = { ...this.#tokens, user: { id: me.id, display_name: me.display_name } };
    await writeTokenStore(this.#tokensFile, this.#tokens);
    this.#log.info(`Spotify user ${me.id} saved in the token store`);
    return me.id;
  }

  /** `GET /v1/me`: who the tokens belong to (`id` undefined when Spotify gives none). */
  async me(options: GetJsonOptions = {}): Promise<SpotifyUser> {
    return meOf(await this.getJson("/v1/me", options));
  }

  /**
   * Refreshes the access token and saves the tokens. Concurrent callers share one refresh. A
   * response without `refresh_token` keeps the old one; `invalid_grant` is a {@link SourceError}
   * telling to run `deno task auth` again.
   */
  refresh(options: GetJsonOptions = {}): Promise<void> {
    this.#refreshing ??= this.#refresh(options.signal).finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(signal?: AbortSignal): Promise<void> {
    const fresh = await exchangeRefreshToken(this.#config, this.#tokens, {
      log: this.#log,
      signal,
      now: this.#now,
    });
    await writeTokenStore(this.#tokensFile, fresh.tokens);
    this.#tokens = fresh.tokens;
    this.#log.info("Spotify access token refreshed", {
      expires_at: fresh.tokens.expires_at,
      refresh_token_rotated: fresh.rotated,
    });
  }

  async #get(url: string, signal?: AbortSignal): Promise<Response> {
    const { response } = await fetchWithRetry(url, {
      headers: {
        authorization: `Bearer ${this.#tokens.access_token}`,
        accept: "application/json",
      },
    }, { ...this.#config.http, log: this.#log, signal, gate: this.#gate });
    return response;
  }
}

/** The user of a `GET /v1/me` answer. */
export interface SpotifyUser {
  /** Undefined when the answer has no (string) id. */
  id?: string;
  display_name: string | null;
}

/** Reads a `GET /v1/me` answer of any shape (a field of the wrong type counts as absent). */
export function meOf(body: unknown): SpotifyUser {
  const o = isRecord(body) ? body : {};
  return {
    ...(typeof o.id === "string" && o.id !== "" ? { id: o.id } : {}),
    display_name: typeof o.display_name === "string" ? o.display_name : null,
  };
}

/** Options of {@link openSpotifyClient}. */
export interface OpenSpotifyClientOptions {
  log: Logger;
  /** The account's token store (default: `config.spotify.tokensFile`, the first account's). */
  tokensFile?: string;
  /** The request budget shared with the run's other accounts. */
  gate?: RequestGate;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * Loads a token store (default `config.spotify.tokensFile`) and returns a client; the tokens are
 * registered as secrets with `log`, so they are redacted from every log line.
 * @throws ConfigError when there is no token store (run `deno task auth`) or it is corrupt
 */
export async function openSpotifyClient(
  config: Config,
  options: OpenSpotifyClientOptions,
): Promise<SpotifyClient> {
  const tokensFile = options.tokensFile ?? config.spotify.tokensFile;
  const tokens = await readTokenStore(tokensFile, { log: options.log });
  return new SpotifyClient(config, tokens, {
    log: options.log,
    now: options.now,
    tokensFile,
    gate: options.gate,
  });
}
