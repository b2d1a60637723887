/**
 * The household's accounts: each Spotify user this toolkit collects for, by a local name.
 *
 * - `default`: the token store `SPOTIFY_TOKENS_FILE` (what a single-user setup has always had,
 *   so it keeps working unchanged: its store is the first account);
 * - every other account: `SPOTIFY_USERS_DIR/<name>.json` (`deno task auth --user <name>`).
 *
 * With the bundled sample (local profile, no tokens) the accounts are the two sample users.
 * A Spotify app in development mode serves at most 5 users (README, "Household accounts").
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { SAMPLE_USER } from "../streams/names.ts";

/** The account whose token store is `SPOTIFY_TOKENS_FILE`. */
export const DEFAULT_ACCOUNT = "default";

/** Users a Spotify app in development mode may serve (more need an extended quota). */
export const DEV_MODE_USER_LIMIT = 5;

/** One account: a Spotify user with its own token store, or a bundled sample user. */
export interface Account {
  /** Local name (`default`, or the `<name>` of `auth --user <name>`; the sample's user id). */
  name: string;
  /** Its token store (API accounts). */
  tokensFile?: string;
  /** The bundled sample's folder and user id (sample accounts). */
  sample?: { dir: string; userId: string };
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * Checks an account name (`--user`): 1–32 of a-z, 0-9, `_`, `-`, starting with a letter or digit.
 * @throws {ConfigError} naming the flag and what is expected.
 */
export function checkAccountName(name: string, flag = "--user"): string {
  if (!NAME.test(name)) {
    throw new ConfigError(
      `${flag} "${name}" is not an account name: expected 1-32 characters of a-z, 0-9, _ and - (e.g. alice)`,
    );
  }
  return name;
}

/** The token store of an account name. */
export function accountTokensFile(config: Config, name: string): string {
  return name === DEFAULT_ACCOUNT
    ? config.spotify.tokensFile
    : join(config.spotify.usersDir, `${checkAccountName(name)}.json`);
}

/** The bundled sample's users: two people of one household (see `data/README.md`). */
export function sampleAccounts(config: Config): Account[] {
  const data = join(config.projectRoot, "data");
  return [
    { name: SAMPLE_USER, sample: { dir: data, userId: SAMPLE_USER } },
    { name: "sample_2", sample: { dir: join(data, "sample_2"), userId: "sample_2" } },
  ];
}

/**
 * Every authorized account, `default` first then by name (API source), or the sample users.
 * @throws {ConfigError} when the users folder cannot be read.
 */
export async function listAccounts(config: Config): Promise<Account[]> {
  return config.spotify.source === "sample" ? sampleAccounts(config) : await tokenAccounts(config);
}

/**
 * The accounts that have a token store (whatever the source: what `auth` manages), `default`
 * first then by name.
 * @throws {ConfigError} when the users folder cannot be read.
 */
export async function tokenAccounts(config: Config): Promise<Account[]> {
  const out: Account[] = [];
  if (await isFile(config.spotify.tokensFile)) {
    out.push({ name: DEFAULT_ACCOUNT, tokensFile: config.spotify.tokensFile });
  }
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(config.spotify.usersDir));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new ConfigError(
        `Cannot read SPOTIFY_USERS_DIR "${config.spotify.usersDir}": ${(error as Error).message}`,
      );
    }
  }
  const names = entries
    .filter((e) => e.isFile && e.name.endsWith(".json") && !e.name.startsWith("."))
    .map((e) => e.name.slice(0, -".json".length))
    .filter((n) => NAME.test(n) && n !== DEFAULT_ACCOUNT)
    .sort();
  for (const name of names) out.push({ name, tokensFile: accountTokensFile(config, name) });
  return out;
}

/**
 * The accounts a run covers: every one, or those named (`--user a,b`).
 * @throws {ConfigError} for a name that is no account (listing the accounts there are), or
 * when there is none (run `deno task auth`).
 */
export async function selectAccounts(
  config: Config,
  names?: readonly string[],
): Promise<Account[]> {
  const all = await listAccounts(config);
  if (all.length === 0) {
    throw new ConfigError(
      `No Spotify account is authorized: no token store at "${config.spotify.tokensFile}" (SPOTIFY_TOKENS_FILE) nor in "${config.spotify.usersDir}" (SPOTIFY_USERS_DIR)`,
      { hint: "Run `deno task auth` (or `deno task auth --user <name>`) first." },
    );
  }
  if (names === undefined || names.length === 0) return all;
  const unknown = names.filter((n) => !all.some((a) => a.name === n));
  if (unknown.length) {
    throw new ConfigError(
      `--user ${unknown.join(", ")}: no such account (accounts: ${
        all.map((a) => a.name).join(", ")
      })`,
      {
        hint: config.spotify.source === "sample"
          ? "The bundled sample has the users sample and sample_2."
          : `Authorize it with \`deno task auth --user ${unknown[0]}\`.`,
      },
    );
  }
  return all.filter((a) => names.includes(a.name));
}

/**
 * Parses `--user a,b` into account names.
 * @throws {ConfigError} naming the flag.
 */
export function parseUserFlag(value: string): string[] {
  const names = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new ConfigError(`--user "${value}": no account named`);
  return [...new Set(names.map((n) => checkAccountName(n)))];
}

/** The command that (re-)authorizes an account. */
export function authCommand(name: string): string {
  return name === DEFAULT_ACCOUNT ? "deno task auth" : `deno task auth --user ${name}`;
}

/**
 * A message in an account's words: the command it names, `deno task auth`, becomes that
 * account's (`deno task auth --user <name>`).
 */
export function inAccountWords(name: string, text: string): string {
  return name === DEFAULT_ACCOUNT
    ? text
    : text.replaceAll("`deno task auth`", `\`${authCommand(name)}\``);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
