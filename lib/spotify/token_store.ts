/**
 * The Spotify token store: one JSON file (path `SPOTIFY_TOKENS_FILE`), written atomically with mode
 * 0600 from the moment it is created. It keeps the time of the user's consent, because Spotify ends
 * refresh tokens six months after consent (refreshing does not extend them).
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { writeJsonAtomic } from "../fs_atomic.ts";
import type { Logger } from "../log.ts";

/** What the token store holds. */
export interface StoredTokens {
  version: 1;
  /** The Spotify app the tokens belong to (refreshes must use the same client id). */
  client_id: string;
  access_token: string;
  /** `Bearer`. */
  token_type: string;
  /** Granted scopes, space-separated (e.g. `user-top-read`). */
  scope: string;
  /** When the access token expires (ISO-8601 UTC). */
  expires_at: string;
  refresh_token: string;
  /** When the user consented (ISO-8601 UTC); the refresh token ends 6 months later. */
  consented_at: string;
  /** Last refresh of the access token (ISO-8601 UTC), if any. */
  refreshed_at: string | null;
  /** The authorized user, when `GET /v1/me` answered during `auth`. */
  user: { id: string; display_name: string | null } | null;
}

/** Months after consent at which Spotify ends a refresh token. */
export const REFRESH_TOKEN_LIFETIME_MONTHS = 6;
/** Days before the refresh token's end from which a warning is given. */
export const REFRESH_TOKEN_WARN_DAYS = 30;

const DAY_MS = 86_400_000;

/** Options of {@link readTokenStore}. */
export interface ReadTokenStoreOptions {
  /** Receives a warning when the file is readable or writable by others. */
  log?: Logger;
}

/**
 * Reads and validates the token store. A missing or corrupt file is a {@link ConfigError} telling
 * to run `deno task auth`; a file with permissions wider than 0600 is reported on `log`.
 */
export async function readTokenStore(
  path: string,
  options: ReadTokenStoreOptions = {},
): Promise<StoredTokens> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(
        `No Spotify token store at "${path}" (SPOTIFY_TOKENS_FILE): run \`deno task auth\` first`,
      );
    }
    // a folder, a file of another user (cron under a different account), ...
    throw new ConfigError(
      `Cannot read the Spotify token store "${path}" (SPOTIFY_TOKENS_FILE): ${
        error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }`,
      { hint: "Check the path and that this user can read the file (mode 0600, same owner)." },
    );
  }
  const mode = (await Deno.stat(path)).mode;
  if (mode !== null && (mode & 0o077) !== 0) {
    options.log?.warn(
      `Spotify token store "${path}" has mode ${
        (mode & 0o777).toString(8).padStart(4, "0")
      }: other users can read it; run \`chmod 600 ${path}\``,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // JSON.parse quotes the text near the error, which may be part of a token: keep only where.
    const where = /position \d+(?: \(line \d+ column \d+\))?/.exec((error as Error).message);
    throw corrupt(path, `not JSON${where ? ` (at ${where[0]})` : ""}`);
  }
  return validateTokens(value, path);
}

/**
 * Writes the token store atomically; the file is created with mode 0600 (never wider).
 * @throws {ConfigError} naming SPOTIFY_TOKENS_FILE when it cannot be written.
 */
export async function writeTokenStore(path: string, tokens: StoredTokens): Promise<void> {
  try {
    // A store that is a symbolic link (e.g. to a secrets volume) is written through to its
    // target: replacing the link with a file would leave the target stale.
    const target = await linkTarget(path);
    await writeJsonAtomic(target, tokens, { mode: 0o600 });
  } catch (error) {
    throw new ConfigError(
      `Cannot write the Spotify token store "${path}" (SPOTIFY_TOKENS_FILE): ${
        error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }`,
      { hint: "Point SPOTIFY_TOKENS_FILE at a file in a folder this user can write." },
    );
  }
}

/** The file a path names: itself, or the end of its chain of symbolic links. */
async function linkTarget(path: string): Promise<string> {
  let current = path;
  for (let hops = 0; hops < 40; hops++) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(current);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return current;
      throw error;
    }
    if (!info.isSymlink) return current;
    const link = await Deno.readLink(current);
    current = isAbsolute(link) ? link : join(dirname(current), link);
  }
  throw new Deno.errors.FilesystemLoop(`${path}: too many levels of symbolic links`);
}

function corrupt(path: string, what: string): ConfigError {
  return new ConfigError(`Spotify token store "${path}" is corrupt: ${what}`, {
    hint: "Run `deno task auth` again to replace it.",
  });
}

function validateTokens(value: unknown, path: string): StoredTokens {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw corrupt(path, "expected a JSON object");
  }
  const v = value as Record<string, unknown>;
  for (const key of ["client_id", "access_token", "refresh_token", "expires_at", "consented_at"]) {
    if (typeof v[key] !== "string" || v[key] === "") {
      throw corrupt(path, `"${key}" is missing or not a string`);
    }
  }
  for (const key of ["expires_at", "consented_at"]) {
    if (Number.isNaN(Date.parse(v[key] as string))) {
      throw corrupt(path, `"${key}" is not a date`);
    }
  }
  const user = v.user as StoredTokens["user"] | undefined;
  return {
    version: 1,
    client_id: v.client_id as string,
    access_token: v.access_token as string,
    token_type: typeof v.token_type === "string" ? v.token_type : "Bearer",
    scope: typeof v.scope === "string" ? v.scope : "",
    expires_at: v.expires_at as string,
    refresh_token: v.refresh_token as string,
    consented_at: v.consented_at as string,
    refreshed_at: typeof v.refreshed_at === "string" ? v.refreshed_at : null,
    user: user && typeof user === "object" && typeof user.id === "string"
      ? { id: user.id, display_name: user.display_name ?? null }
      : null,
  };
}

/** How long the refresh token has left. */
export interface RefreshTokenAge {
  consentedAt: Date;
  /** When Spotify ends the refresh token (consent + 6 months). */
  expiresAt: Date;
  /** Whole days since consent. */
  ageDays: number;
  /** Whole days until the end (negative once past). */
  daysLeft: number;
  /** A warning from 30 days before the end, otherwise undefined. */
  warning?: string;
}

/** The refresh token's age and end date, with a warning from 30 days before the end. */
export function refreshTokenAge(tokens: StoredTokens, now: Date = new Date()): RefreshTokenAge {
  const consentedAt = new Date(tokens.consented_at);
  const expiresAt = new Date(consentedAt);
  expiresAt.setUTCMonth(expiresAt.getUTCMonth() + REFRESH_TOKEN_LIFETIME_MONTHS);
  const ageDays = Math.floor((now.getTime() - consentedAt.getTime()) / DAY_MS);
  const leftMs = expiresAt.getTime() - now.getTime();
  const daysLeft = Math.floor(leftMs / DAY_MS);
  const end = expiresAt.toISOString().slice(0, 10);
  const consent = tokens.consented_at.slice(0, 10);
  let warning: string | undefined;
  if (leftMs <= 0) {
    warning =
      `The Spotify refresh token (consent ${consent}) ended on ${end}: run \`deno task auth\` again`;
  } else if (leftMs <= REFRESH_TOKEN_WARN_DAYS * DAY_MS) {
    warning = `The Spotify refresh token ends on ${end} (${daysLeft} day(s) left; Spotify ends ` +
      `refresh tokens ${REFRESH_TOKEN_LIFETIME_MONTHS} months after consent, ${consent}): ` +
      "run `deno task auth` before then";
  }
  return { consentedAt, expiresAt, ageDays, daysLeft, warning };
}

/** Options of {@link refreshTokenWarning}. */
export interface RefreshTokenWarningOptions {
  now?: Date;
  /** The account's token store (default `config.spotify.tokensFile`). */
  tokensFile?: string;
}

/**
 * The refresh-token expiry warning for the configured token store, or `undefined` when there is
 * nothing to warn about (no store, as with the bundled sample, or more than 30 days left). A
 * corrupt store gives no warning here: the step that uses it reports it.
 * @example
 * const warning = await refreshTokenWarning(config);
 * if (warning) log.warn(warning);
 */
export async function refreshTokenWarning(
  config: Config,
  options: RefreshTokenWarningOptions = {},
): Promise<string | undefined> {
  let tokens: StoredTokens;
  try {
    tokens = await readTokenStore(options.tokensFile ?? config.spotify.tokensFile);
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
  return refreshTokenAge(tokens, options.now).warning;
}
