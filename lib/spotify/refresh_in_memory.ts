/**
 * Refreshing the Spotify access token without a token file — for the Deno Deploy entry, which
 * cannot write files and keeps the tokens in Deno KV (or env) instead. Same token request,
 * error mapping and token shape as {@link SpotifyClient.refresh}, which saves to the file.
 * @module
 */

import * as oauth from "oauth4webapi";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { oauthContext, tokenError, tokensFromResponse } from "./_oauth.ts";
import type { StoredTokens } from "./token_store.ts";

/** Options of {@link refreshTokensInMemory}. */
export interface RefreshTokensInMemoryOptions {
  log: Logger;
  signal?: AbortSignal;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * Exchanges the refresh token for a new access token and returns the new tokens (a response
 * without `refresh_token` keeps the old one); nothing is written — the caller stores them.
 * @throws SourceError for `invalid_grant` (run `deno task auth` again) and other token failures
 */
export async function refreshTokensInMemory(
  config: Config,
  tokens: StoredTokens,
  options: RefreshTokensInMemoryOptions,
): Promise<StoredTokens> {
  const { log, signal, now = () => new Date() } = options;
  log.addSecret(tokens.access_token);
  log.addSecret(tokens.refresh_token);
  const ctx = oauthContext(config, { log, clientId: tokens.client_id, signal });
  let result: oauth.TokenEndpointResponse;
  try {
    const response = await oauth.refreshTokenGrantRequest(
      ctx.as,
      ctx.client,
      ctx.clientAuth,
      tokens.refresh_token,
      ctx.options,
    );
    result = await oauth.processRefreshTokenResponse(ctx.as, ctx.client, response);
  } catch (error) {
    throw tokenError(error, ctx.tokenUrl, "refresh_token");
  }
  log.addSecret(result.access_token);
  log.addSecret(result.refresh_token);
  const fresh = tokensFromResponse(result, {
    clientId: ctx.client.client_id,
    now: now(),
    previous: tokens,
  });
  log.info("Spotify access token refreshed (kept in memory)", {
    expires_at: fresh.expires_at,
    refresh_token_rotated: result.refresh_token !== undefined,
  });
  return fresh;
}
