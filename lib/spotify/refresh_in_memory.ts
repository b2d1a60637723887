/**
 * Refreshing the Spotify access token: the token request, its error mapping and the new token
 * shape, once. {@link SpotifyClient.refresh} saves the result to the token file; the Deno Deploy
 * entry keeps it in Deno KV.
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
 * without `refresh_token` keeps the old one), and whether the refresh token was rotated; nothing
 * is written — the caller stores them (the client to the token file, Deploy to Deno KV).
 * @throws SourceError for `invalid_grant` (run `deno task auth` again) and other token failures
 */
export async function exchangeRefreshToken(
  config: Config,
  tokens: StoredTokens,
  options: RefreshTokensInMemoryOptions,
): Promise<{ tokens: StoredTokens; rotated: boolean }> {
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
  return { tokens: fresh, rotated: result.refresh_token !== undefined };
}

/** {@link exchangeRefreshToken}, logged as kept in memory (the Deno Deploy entry). */
export async function refreshTokensInMemory(
  config: Config,
  tokens: StoredTokens,
  options: RefreshTokensInMemoryOptions,
): Promise<StoredTokens> {
  const fresh = await exchangeRefreshToken(config, tokens, options);
  options.log.info("Spotify access token refreshed (kept in memory)", {
    expires_at: fresh.tokens.expires_at,
    refresh_token_rotated: fresh.rotated,
  });
  return fresh.tokens;
}
