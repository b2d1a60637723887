/**
 * Spotify tokens on Deno Deploy, where there is no file to keep them in: Deno KV holds the token
 * store (refreshed tokens are saved back, so a rotated refresh token is never lost), seeded from
 * the `SPOTIFY_TOKENS_JSON` secret — the content of the token file `deno task auth` wrote.
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { RequestGate } from "../http.ts";
import type { Logger } from "../log.ts";
import { SpotifyClient } from "../spotify/client.ts";
import { refreshTokensInMemory } from "../spotify/refresh_in_memory.ts";
import { refreshTokenAge, type StoredTokens } from "../spotify/token_store.ts";
import type { AtomicKv } from "./lease.ts";

/** The part of `Deno.Kv` used here (Deno KV's types are unstable: not referenced directly). */
export interface KvLike {
  get<T>(key: readonly unknown[]): Promise<{ value: T | null }>;
  set(key: readonly unknown[], value: unknown, options?: { expireIn?: number }): Promise<unknown>;
  list<T>(
    selector: { prefix: readonly unknown[] },
    options?: { reverse?: boolean; limit?: number },
  ): AsyncIterable<{ key: readonly unknown[]; value: T }>;
  close(): void;
}

/** Deno KV as the Deploy entry uses it: the plain operations and the atomic ones (the lease). */
export type DeployKv = KvLike & AtomicKv;

/** Where the tokens live: loaded at the start of a run, saved after a refresh. */
export interface TokenSource {
  /** For messages (`Deno KV`, `SPOTIFY_TOKENS_JSON`). */
  readonly name: string;
  load(): Promise<StoredTokens>;
  save(tokens: StoredTokens): Promise<void>;
}

/** KV key of the `default` account's token store. */
export const TOKENS_KEY: readonly unknown[] = ["spotify", "tokens"];

/** KV key of an account's token store (`default`: {@link TOKENS_KEY}). */
export function accountTokensKey(account: string): readonly unknown[] {
  return account === "default" ? TOKENS_KEY : ["spotify", "tokens", account];
}

/** The prefix of the Deploy settings that seed the other accounts' tokens. */
export const USER_TOKENS_PREFIX = "SPOTIFY_TOKENS_JSON_";

/**
 * The household's other accounts from the environment: `SPOTIFY_TOKENS_JSON_<NAME>` holds the
 * token file `deno task auth --user <name>` wrote (`<NAME>` the name upper-cased; an account whose
 * name has a `-` is named with `_` there).
 * @throws {ConfigError} naming the variable when its name is no account name.
 */
export function userTokenSettings(
  env: Record<string, string | undefined>,
): { account: string; variable: string; json: string }[] {
  const out: { account: string; variable: string; json: string }[] = [];
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith(USER_TOKENS_PREFIX) || !value?.trim()) continue;
    const account = variable.slice(USER_TOKENS_PREFIX.length).toLowerCase();
    if (!/^[a-z0-9][a-z0-9_]{0,31}$/.test(account) || account === "default") {
      throw new ConfigError(
        `${variable}: "${account}" is not an account name (expected SPOTIFY_TOKENS_JSON_<NAME>, NAME of A-Z, 0-9 and _)`,
      );
    }
    out.push({ account, variable, json: value.trim() });
  }
  return out.sort((a, b) => (a.account < b.account ? -1 : 1));
}

/**
 * Opens Deno KV: the deployment's database on Deno Deploy (`path` unset), or a local file or
 * `:memory:`. Needs `--unstable-kv` outside Deno Deploy.
 */
export async function openKv(path?: string): Promise<DeployKv> {
  const open = (Deno as unknown as { openKv?: (path?: string) => Promise<DeployKv> }).openKv;
  if (typeof open !== "function") {
    throw new ConfigError(
      "Deno KV is not available in this runtime: run with --unstable-kv (Deno Deploy has it)",
    );
  }
  return await open.call(Deno, path);
}

/**
 * Parses a token store (what `deno task auth` writes) given as text, e.g. the
 * `SPOTIFY_TOKENS_JSON` secret; `what` names it in errors.
 */
export function parseTokensJson(text: string, what: string): StoredTokens {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // V8's message may quote the text ("AQDx..." is not valid JSON): keep only the position,
    // since the text is a token store (or a token pasted on its own).
    const at = /at position \d+/.exec((error as Error).message)?.[0];
    throw new ConfigError(`${what} is not JSON${at ? ` (${at})` : ""}`, {
      hint: "Set it to the content of the token file `deno task auth` wrote.",
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${what} is not a token store: expected a JSON object`);
  }
  for (const key of ["client_id", "access_token", "refresh_token", "expires_at", "consented_at"]) {
    if (typeof value[key] !== "string" || value[key] === "") {
      throw new ConfigError(`${what} is not a token store: "${key}" is missing or not a string`, {
        hint: "Set it to the content of the token file `deno task auth` wrote.",
      });
    }
  }
  return {
    version: 1,
    token_type: "Bearer",
    scope: "",
    refreshed_at: null,
    user: null,
    ...value,
  } as StoredTokens;
}

/** Options of {@link kvTokenSource}. */
export interface KvTokenSourceOptions {
  /** The account (default `default`, under {@link TOKENS_KEY}; others under its name). */
  account?: string;
  /** The setting that seeds it, for messages (default `SPOTIFY_TOKENS_JSON`). */
  variable?: string;
  /**
   * Tokens to start from (`SPOTIFY_TOKENS_JSON`): used when KV has none, or when they come from
   * a newer consent than KV's (the user ran `deno task auth` again and updated the secret).
   */
  seed?: StoredTokens;
}

/** Tokens kept in Deno KV under {@link TOKENS_KEY}. */
export function kvTokenSource(kv: KvLike, options: KvTokenSourceOptions = {}): TokenSource {
  const { seed, account = "default", variable = "SPOTIFY_TOKENS_JSON" } = options;
  const key = accountTokensKey(account);
  return {
    name: account === "default" ? "Deno KV" : `Deno KV (${account})`,
    async load() {
      const stored = (await kv.get<StoredTokens>(key)).value;
      if (seed && (!stored || Date.parse(seed.consented_at) > Date.parse(stored.consented_at))) {
        await kv.set(key, seed);
        return seed;
      }
      if (!stored) {
        throw new ConfigError(
          `No Spotify tokens in Deno KV${
            account === "default" ? "" : ` for ${account}`
          }: set ${variable} to the content of the token file \`deno task auth${
            account === "default" ? "" : ` --user ${account}`
          }\` wrote`,
        );
      }
      return stored;
    },
    async save(tokens) {
      await kv.set(key, tokens);
    },
  };
}

/** Options of {@link openDeploySpotifyClient}. */
export interface OpenDeploySpotifyClientOptions {
  log: Logger;
  signal?: AbortSignal;
  /** Clock (tests). */
  now?: () => Date;
  /** The request budget shared with the run's other accounts. */
  gate?: RequestGate;
}

/**
 * A Spotify client for a Deploy run: tokens from `source`, the access token refreshed in memory
 * when expired (always, for a daily run) and the new tokens saved back to `source`. The client is
 * then good for the run (an hour); a 401 in the middle of a run would make it refresh through the
 * token file, which Deploy cannot write — the run fails and the next one refreshes again.
 */
export async function openDeploySpotifyClient(
  config: Config,
  source: TokenSource,
  options: OpenDeploySpotifyClientOptions,
): Promise<SpotifyClient> {
  const { log, signal, now = () => new Date(), gate } = options;
  let tokens = await source.load();
  let client = new SpotifyClient(config, tokens, { log, now, gate });
  if (client.expired) {
    tokens = await refreshTokensInMemory(config, tokens, { log, signal, now });
    await source.save(tokens);
    client = new SpotifyClient(config, tokens, { log, now, gate });
  }
  const { warning } = refreshTokenAge(tokens, now());
  if (warning) log.warn(warning);
  return client;
}
