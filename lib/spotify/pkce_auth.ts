/**
 * Spotify authorization: Authorization Code flow with PKCE (npm:oauth4webapi). Serves the loopback
 * callback `http://127.0.0.1:<port>/callback` (Spotify accepts only the exact registered redirect
 * URI, and no longer `localhost`), checks `state`, exchanges the code (the client secret, when
 * configured, goes as HTTP Basic) and saves the tokens in the token store (mode 0600).
 * @module
 */

import * as oauth from "oauth4webapi";
import type { Config } from "../config.ts";
import { ConfigError, SourceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { oauthContext, SCOPE, tokenError, tokensFromResponse } from "./_oauth.ts";
import { SpotifyClient } from "./client.ts";
import { type StoredTokens, writeTokenStore } from "./token_store.ts";

/** The redirect URI registered in the Spotify app for a port. */
export function redirectUri(port: number): string {
  return `http://127.0.0.1:${port}/callback`;
}

/** Options of {@link authorize}. */
export interface AuthorizeOptions {
  log: Logger;
  /** Receives the authorize URL once the callback server listens (the user opens it). */
  onAuthorizeUrl: (url: string) => void | Promise<void>;
  /** Try to open the URL in a browser (xdg-open / open; failure is fine). Default true. */
  openBrowser?: boolean;
  /** Stop waiting for the callback after this long (default 5 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Clock (tests). */
  now?: () => Date;
  /** The token store to write (default `config.spotify.tokensFile`, the `default` account's). */
  tokensFile?: string;
  /**
   * Ask Spotify to show its consent page even to a user who consented before (`show_dialog`),
   * so another household member can switch accounts there ("Not you?").
   */
  showDialog?: boolean;
}

/** What {@link authorize} returns. */
export interface AuthorizeResult {
  tokens: StoredTokens;
  /** The token store written. */
  file: string;
}

/**
 * Runs the whole flow: starts the callback server on `config.spotify.redirectPort`, hands the
 * authorize URL to `onAuthorizeUrl` (and tries a browser), waits for Spotify's redirect, checks
 * `state`, exchanges the code, looks up the user (`GET /v1/me`, optional) and writes the store.
 * @example
 * const { tokens } = await authorize(config, { log, onAuthorizeUrl: (url) => console.log(url) });
 */
export async function authorize(
  config: Config,
  options: AuthorizeOptions,
): Promise<AuthorizeResult> {
  const { log, onAuthorizeUrl, openBrowser = true, timeoutMs = 300_000, signal } = options;
  const now = options.now ?? (() => new Date());
  const ctx = oauthContext(config, { log, signal });
  const port = config.spotify.redirectPort;
  const redirect = redirectUri(port);

  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const state = oauth.generateRandomState();
  log.addSecret(verifier);

  const authorizeUrl = new URL(ctx.as.authorization_endpoint!);
  authorizeUrl.search = new URLSearchParams({
    client_id: ctx.client.client_id,
    response_type: "code",
    redirect_uri: redirect,
    scope: SCOPE,
    state,
    code_challenge_method: "S256",
    code_challenge: challenge,
    ...(options.showDialog ? { show_dialog: "true" } : {}),
  }).toString();

  const done = Promise.withResolvers<oauth.TokenEndpointResponse>();
  let settled = false;
  // set once a callback passed validation: a repeated callback (a reload, a browser's duplicate
  // request) must not exchange the one-time code a second time while the first exchange runs
  let exchanging = false;
  let strays = 0;
  const settle = (fn: () => void) => {
    if (!settled) {
      settled = true;
      fn();
    }
  };

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (url.pathname !== "/callback") return page(404, "Not found.");
    if (settled || exchanging) {
      return page(410, "This authorization has already been handled.");
    }
    if (url.searchParams.get("state") !== state) {
      // Not this authorization's redirect (a stale tab, another local program, a forged link):
      // refused, and the real one still awaited — up to a bounded number of strays.
      strays++;
      if (strays > MAX_STRAY_CALLBACKS) {
        settle(() =>
          done.reject(
            new SourceError(
              `${strays} callbacks to ${redirect} did not carry this authorization's state: stopped waiting`,
              { hint: "Run `deno task auth` again and open the URL it prints (only that one)." },
            ),
          )
        );
      }
      return page(
        400,
        "This callback does not belong to the authorization in progress (its state does not match): ignored. Use the link `deno task auth` printed.",
      );
    }
    let params: URLSearchParams;
    try {
      const code = url.searchParams.get("code");
      if (code) log.addSecret(code);
      params = oauth.validateAuthResponse(ctx.as, ctx.client, url.searchParams, state);
    } catch (error) {
      const failure = callbackError(error);
      settle(() => done.reject(failure));
      return page(400, `Authorization failed: ${failure.message}`);
    }
    exchanging = true;
    try {
      const response = await oauth.authorizationCodeGrantRequest(
        ctx.as,
        ctx.client,
        ctx.clientAuth,
        params,
        redirect,
        verifier,
        ctx.options,
      );
      const result = await oauth.processAuthorizationCodeResponse(ctx.as, ctx.client, response);
      log.addSecret(result.access_token);
      log.addSecret(result.refresh_token);
      settle(() => done.resolve(result));
      return page(200, "Authorized. You can close this tab and return to the terminal.");
    } catch (error) {
      const failure = tokenError(error, ctx.tokenUrl, "authorization_code");
      settle(() => done.reject(failure));
      return page(502, `Authorization failed: ${log.redact(failure.message)}`);
    }
  };

  const stop = new AbortController();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve(
      { hostname: "127.0.0.1", port, signal: stop.signal, onListen: () => {} },
      handler,
    );
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ConfigError(
        `Port ${port} on 127.0.0.1 is in use, so the auth callback ${redirect} cannot be served: stop what uses it, or set SPOTIFY_REDIRECT_PORT and register http://127.0.0.1:<port>/callback in the Spotify app`,
      );
    }
    throw error;
  }

  const timer = setTimeout(
    () =>
      settle(() =>
        done.reject(
          new SourceError(
            `No authorization callback on ${redirect} within ${
              Math.round(timeoutMs / 1000)
            } s: run \`deno task auth\` again and open the URL it prints`,
          ),
        )
      ),
    timeoutMs,
  );
  const onAbort = () => settle(() => done.reject(signal!.reason));
  signal?.addEventListener("abort", onAbort, { once: true });

  try {
    log.info(`Waiting for Spotify's redirect to ${redirect}`);
    await onAuthorizeUrl(authorizeUrl.href);
    if (openBrowser) tryOpenBrowser(authorizeUrl.href, log);
    const result = await done.promise;
    let tokens = tokensFromResponse(result, { clientId: ctx.client.client_id, now: now() });
    tokens = { ...tokens, user: await lookUpUser(config, tokens, log) };
    const file = options.tokensFile ?? config.spotify.tokensFile;
    await writeTokenStore(file, tokens);
    log.info(`Spotify tokens saved to ${file} (mode 0600)`, {
      scope: tokens.scope,
      user: tokens.user?.id ?? null,
    });
    return { tokens, file };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    // The page of the callback that settled the flow (success or error) is sent before the
    // server stops: a graceful shutdown, bounded, then the rest is cut.
    let timer2: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      server.shutdown().then(() => true),
      new Promise<false>((resolve) => (timer2 = setTimeout(() => resolve(false), 2_000))),
    ]);
    clearTimeout(timer2);
    if (!closed) stop.abort();
    await server.finished;
  }
}

/** Callbacks with a foreign state ignored before the flow gives up. */
const MAX_STRAY_CALLBACKS = 5;

function callbackError(error: unknown): Error {
  if (error instanceof oauth.AuthorizationResponseError) {
    return new SourceError(
      `Spotify did not authorize the app: ${error.error}${
        error.error_description ? ` (${error.error_description})` : ""
      }`,
      {
        hint:
          "Run `deno task auth` again and accept the request (scopes user-top-read, user-read-recently-played).",
      },
    );
  }
  if (error instanceof oauth.OperationProcessingError) {
    return new SourceError(
      `The authorization callback was rejected: ${error.message} (a stale browser tab, or a request this run did not start)`,
      { hint: "Run `deno task auth` again and use the URL it prints." },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}

async function lookUpUser(
  config: Config,
  tokens: StoredTokens,
  log: Logger,
): Promise<StoredTokens["user"]> {
  try {
    const client = new SpotifyClient(config, tokens, { log });
    const me = await client.me();
    return me.id === undefined ? null : { id: me.id, display_name: me.display_name };
  } catch (error) {
    log.warn(`Could not look up the authorized user (GET /v1/me): ${(error as Error).message}`);
    return null;
  }
}

function tryOpenBrowser(url: string, log: Logger): void {
  const [cmd, args] = Deno.build.os === "darwin"
    ? ["open", [url]]
    : Deno.build.os === "windows"
    ? ["cmd", ["/c", "start", "", url]]
    : ["xdg-open", [url]];
  try {
    const child = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    child.status.catch(() => {});
  } catch (error) {
    log.info(
      `Could not open a browser (${cmd}: ${(error as Error).message}): open the URL yourself`,
    );
  }
}

function page(status: number, text: string): Response {
  const escaped = text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return new Response(
    `<!doctype html><meta charset="utf-8"><title>Spotify pipeline</title><p>${escaped}</p>\n`,
    { status, headers: { "content-type": "text/html; charset=utf-8" } },
  );
}
