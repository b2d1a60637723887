/**
 * Spotify Web API client (first version: signatures only, implementation follows).
 * @module
 */

import type { Config } from "../config.ts";
import { SourceError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** Options of {@link SpotifyClient.getJson}. */
export interface GetJsonOptions {
  signal?: AbortSignal;
}

/** A Spotify Web API client holding the user's tokens. */
export class SpotifyClient {
  #config: Config;
  #log: Logger;

  /** Creates a client; use {@link openSpotifyClient}. */
  constructor(config: Config, log: Logger) {
    this.#config = config;
    this.#log = log;
  }

  /**
   * GET a Web API path (e.g. `/v1/me/top/tracks?limit=50`) and parse the JSON answer.
   * Throws `HttpError` for non-OK statuses after the refresh-once logic.
   */
  getJson<T>(pathAndQuery: string, _options: GetJsonOptions = {}): Promise<T> {
    this.#log.debug(`GET ${this.#config.spotify.apiUrl}${pathAndQuery}`);
    return Promise.reject(new SourceError("SpotifyClient is not implemented yet"));
  }
}

/** Options of {@link openSpotifyClient}. */
export interface OpenSpotifyClientOptions {
  log: Logger;
}

/** Loads the token store and returns a client; the tokens are registered as log secrets. */
export function openSpotifyClient(
  config: Config,
  options: OpenSpotifyClientOptions,
): Promise<SpotifyClient> {
  return Promise.resolve(new SpotifyClient(config, options.log));
}
