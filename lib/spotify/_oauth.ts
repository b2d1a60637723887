/**
 * Private to `lib/spotify/`: the Spotify Accounts service as an oauth4webapi authorization server,
 * the client authentication (HTTP Basic with a secret, else a public PKCE client), token requests
 * through {@link fetchWithRetry}, and the mapping of token-endpoint failures to clear errors.
 * @module
 */

import * as oauth from "oauth4webapi";
import { basicCredentialForms, type Config } from "../config.ts";
import { ConfigError, SourceError } from "../errors.ts";
import { fetchWithRetry, HttpError, NetworkError } from "../http.ts";
import type { Logger } from "../log.ts";
import type { StoredTokens } from "./token_store.ts";

/** The scopes this toolkit needs: top tracks and artists, and recently played tracks. */
export const SCOPES: readonly string[] = ["user-top-read", "user-read-recently-played"];
/** The scope parameter this toolkit asks for (space-separated {@link SCOPES}). */
export const SCOPE = SCOPES.join(" ");

/** Everything oauth4webapi needs to talk to the Accounts service. */
export interface OAuthContext {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  clientAuth: oauth.ClientAuth;
  tokenUrl: string;
  options: oauth.TokenEndpointRequestOptions;
}

/** Options of {@link oauthContext}. */
export interface OAuthContextOptions {
  log: Logger;
  /** Client id to use instead of the configured one (the one saved in the token store, which the
   * refresh token is bound to). */
  clientId?: string;
  signal?: AbortSignal;
}

/** Builds the oauth4webapi context from the config; the secret is registered with the logger. */
export function oauthContext(config: Config, options: OAuthContextOptions): OAuthContext {
  const { log, signal } = options;
  const clientId = options.clientId ?? config.spotify.clientId;
  if (!clientId) {
    throw new ConfigError(
      "SPOTIFY_CLIENT_ID is not set: the client id of your Spotify app (developer.spotify.com/dashboard) is needed to authorize",
    );
  }
  const secret = config.spotify.clientSecret;
  log.addSecret(secret);
  // the client id used may be the token store's, not SPOTIFY_CLIENT_ID's
  for (const form of basicCredentialForms(clientId, secret)) log.addSecret(form);
  const base = config.spotify.accountsUrl;
  const tokenUrl = `${base}/api/token`;
  const as: oauth.AuthorizationServer = {
    issuer: base,
    authorization_endpoint: `${base}/authorize`,
    token_endpoint: tokenUrl,
  };
  const insecure = new URL(base).protocol === "http:";
  const requestOptions: oauth.TokenEndpointRequestOptions = {
    [oauth.allowInsecureRequests]: insecure,
    [oauth.customFetch]: async (
      url: string,
      init: oauth.CustomFetchOptions<"POST", URLSearchParams>,
    ) => {
      try {
        const { response } = await fetchWithRetry(url, {
          method: init.method,
          headers: init.headers,
          body: init.body,
          redirect: init.redirect,
        }, { ...config.http, log, signal });
        return response;
      } catch (error) {
        // oauth4webapi reads OAuth error bodies ({"error": "invalid_grant"}) from the response.
        if (error instanceof HttpError) {
          return new Response(error.body, { status: error.status, headers: error.headers });
        }
        throw error;
      }
    },
  };
  return {
    as,
    client: { client_id: clientId },
    clientAuth: secret ? oauth.ClientSecretBasic(secret) : oauth.None(),
    tokenUrl,
    options: requestOptions,
  };
}

/** Turns a token-endpoint failure into a {@link SourceError} naming the URL and the cause. */
export function tokenError(error: unknown, tokenUrl: string, grant: string): Error {
  if (error instanceof oauth.ResponseBodyError) {
    const what = `${error.error}${error.error_description ? `: ${error.error_description}` : ""}`;
    if (grant === "refresh_token" && error.error === "invalid_grant") {
      return new SourceError(
        `Spotify refused the refresh token (${what}) at ${tokenUrl}: the authorization was revoked or has expired; run \`deno task auth\` again`,
        { hint: "Run `deno task auth` to authorize again.", cause: error },
      );
    }
    if (error.error === "invalid_client") {
      return new SourceError(
        `Spotify rejected the client (${what}) at ${tokenUrl}: check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET`,
        { cause: error },
      );
    }
    return new SourceError(
      `Token request (${grant}) to ${tokenUrl} failed with HTTP ${error.status}: ${what}`,
      { cause: error },
    );
  }
  if (error instanceof NetworkError) {
    return new SourceError(`Cannot reach the Spotify token endpoint: ${error.message}`, {
      cause: error,
    });
  }
  if (error instanceof oauth.OperationProcessingError) {
    return new SourceError(
      `Unexpected answer from the Spotify token endpoint ${tokenUrl} (${grant}): ${error.message}`,
      { cause: error },
    );
  }
  if (error instanceof oauth.UnsupportedOperationError) {
    return new SourceError(
      `Unexpected answer from the Spotify token endpoint ${tokenUrl} (${grant}): ${error.message}`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}

/** Options of {@link tokensFromResponse}. */
export interface TokensFromResponseOptions {
  clientId: string;
  now: Date;
  /** The stored tokens being refreshed (keeps refresh token, consent time and user). */
  previous?: StoredTokens;
}

/** Builds the stored tokens from a token-endpoint answer. */
export function tokensFromResponse(
  result: oauth.TokenEndpointResponse,
  options: TokensFromResponseOptions,
): StoredTokens {
  const { clientId, now, previous } = options;
  const refreshToken = result.refresh_token ?? previous?.refresh_token;
  if (!refreshToken) {
    throw new SourceError("The Spotify token endpoint answered without a refresh_token", {
      hint: "Run `deno task auth` again.",
    });
  }
  const expiresIn = typeof result.expires_in === "number" ? result.expires_in : 3600;
  return {
    version: 1,
    client_id: clientId,
    access_token: result.access_token,
    token_type: "Bearer",
    scope: result.scope ?? previous?.scope ?? SCOPE,
    expires_at: new Date(now.getTime() + expiresIn * 1000).toISOString(),
    refresh_token: refreshToken,
    consented_at: previous?.consented_at ?? now.toISOString(),
    refreshed_at: previous ? now.toISOString() : null,
    user: previous?.user ?? null,
  };
}
