/**
 * `deno task auth --status`: who is authorized, scopes, access-token expiry, refresh-token age and
 * the refresh-token expiry warning.
 * @module
 */

import type { Config } from "../config.ts";
import { authCommand, DEFAULT_ACCOUNT, inAccountWords } from "./accounts.ts";
import type { Logger } from "../log.ts";
import { SCOPES } from "./_oauth.ts";
import { SpotifyClient } from "./client.ts";
import { readTokenStore, refreshTokenAge } from "./token_store.ts";

/** Options of {@link authStatus}. */
export interface AuthStatusOptions {
  log: Logger;
  /**
   * Ask Spotify who the user is (`GET /v1/me`) while the access token is valid; an expired one
   * is never refreshed here (the next run does, under the run lock). Default true.
   */
  lookUpUser?: boolean;
  now?: () => Date;
  /** The account's token store (default `config.spotify.tokensFile`). */
  tokensFile?: string;
  /** The account it is (default `default`): the commands shown are that account's. */
  account?: string;
}

/** The status report. */
export interface AuthStatus {
  /** Readable lines, for the terminal. */
  text: string;
  /** The refresh-token expiry warning, if any. */
  warning?: string;
}

/**
 * Describes the stored authorization.
 * @throws ConfigError when there is no token store (not authorized) or it is corrupt
 */
export async function authStatus(config: Config, options: AuthStatusOptions): Promise<AuthStatus> {
  const { log, lookUpUser = true } = options;
  const now = options.now ?? (() => new Date());
  const file = options.tokensFile ?? config.spotify.tokensFile;
  const account = options.account ?? DEFAULT_ACCOUNT;
  let tokens = await readTokenStore(file, { log });
  let who: string;
  // An expired access token is not refreshed here: outside the run lock, a refresh could race a
  // running fetch (a rotated refresh token would then be refused). The next run refreshes it.
  const expired = Date.parse(tokens.expires_at) - 60_000 <= now().getTime();
  if (lookUpUser && !expired) {
    const client = new SpotifyClient(config, tokens, { log, now });
    try {
      const me = await client.me();
      who = me.id !== undefined
        ? `${me.display_name ?? "(no display name)"} (${me.id})`
        : "unknown (GET /v1/me gave no id)";
    } catch (error) {
      who = `unknown (GET /v1/me failed: ${log.redact((error as Error).message)})`;
    }
    tokens = client.tokens;
  } else {
    who = tokens.user
      ? `${tokens.user.display_name ?? "(no display name)"} (${tokens.user.id}), as saved at auth`
      : "unknown";
    if (lookUpUser) who += " (not asked: the access token has expired; the next run refreshes it)";
  }
  const mode = (await Deno.stat(file)).mode;
  const t = now();
  const accessLeft = Date.parse(tokens.expires_at) - t.getTime();
  const age = refreshTokenAge(tokens, t);
  const scopes = tokens.scope.split(/\s+/).filter(Boolean);
  const missing = SCOPES.filter((s) => !scopes.includes(s));
  const lines = [
    `Token store:    ${file}${mode === null ? "" : ` (mode ${(mode & 0o777).toString(8)})`}`,
    `Authorized as:  ${who}`,
    `Client id:      ${tokens.client_id}`,
    `Scopes:         ${scopes.join(" ") || "(none)"}${
      missing.length === 0
        ? ""
        : `  — missing ${missing.join(" ")}: run \`${authCommand(account)}\` again`
    }`,
    `Access token:   ${
      accessLeft > 0
        ? `valid until ${tokens.expires_at} (${duration(accessLeft)} left)`
        : `expired at ${tokens.expires_at} (refreshed automatically on next use)`
    }`,
    `Refresh token:  consent ${tokens.consented_at.slice(0, 10)} (${age.ageDays} day(s) ago)` +
    (tokens.refreshed_at ? `, last refresh ${tokens.refreshed_at}` : ""),
    `                Spotify ends it on ${age.expiresAt.toISOString().slice(0, 10)} (${
      age.daysLeft >= 0 ? `${age.daysLeft} day(s) left` : "already ended"
    })`,
  ];
  const warning = age.warning && inAccountWords(account, age.warning);
  if (warning) lines.push(`WARNING: ${warning}`);
  return { text: lines.join("\n"), warning };
}

function duration(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h ${minutes % 60} min` : `${Math.floor(hours / 24)} days`;
}
