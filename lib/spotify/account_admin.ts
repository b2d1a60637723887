/**
 * `deno task auth` for a household: authorize an account (`--user <name>`), show every
 * account's status (`--status`), forget one (`--remove <name>`).
 * @module
 */

import { dirname, join } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  accountTokensFile,
  authCommand,
  checkAccountName,
  DEFAULT_ACCOUNT,
  DEV_MODE_USER_LIMIT,
  tokenAccounts,
} from "./accounts.ts";
import { authStatus } from "./auth_status.ts";
import { authorize, type AuthorizeOptions, type AuthorizeResult } from "./pkce_auth.ts";
import { readTokenStore, writeTokenStore } from "./token_store.ts";

/** Options of {@link authorizeAccount}. */
export type AuthorizeAccountOptions = Omit<AuthorizeOptions, "tokensFile" | "showDialog">;

/**
 * Authorizes account `name` (the browser flow) and stores its tokens: `default` in
 * SPOTIFY_TOKENS_FILE, any other in SPOTIFY_USERS_DIR/<name>.json (folder mode 0700, file 0600).
 * The tokens are first written beside it under a temporary name; they replace the account's
 * only once Spotify's user is known not to be another account's already.
 * @throws {ConfigError} when that Spotify user is already another account.
 */
export async function authorizeAccount(
  config: Config,
  name: string,
  options: AuthorizeAccountOptions,
): Promise<AuthorizeResult & { accounts: number }> {
  checkAccountName(name);
  const { log } = options;
  const file = accountTokensFile(config, name);
  const before = await tokenAccounts(config);
  if (name !== DEFAULT_ACCOUNT) {
    await Deno.mkdir(config.spotify.usersDir, { recursive: true, mode: 0o700 });
  }
  const isNew = !before.some((a) => a.name === name);
  if (isNew && before.length >= DEV_MODE_USER_LIMIT) {
    log.warn(
      `This is account ${
        before.length + 1
      }: a Spotify app in development mode serves at most ${DEV_MODE_USER_LIMIT} users (each added under "User Management" in the app's dashboard); more need an extended quota (Spotify's quota extension request)`,
    );
  }
  const pending = join(dirname(file), `.pending-${name}.json`);
  try {
    const result = await authorize(config, {
      ...options,
      tokensFile: pending,
      // another household member may need to switch accounts on Spotify's page
      showDialog: name !== DEFAULT_ACCOUNT || before.length > 0,
    });
    const userId = result.tokens.user?.id;
    for (const other of before) {
      if (other.name === name || !other.tokensFile) continue;
      const theirs = await readTokenStore(other.tokensFile).catch(() => undefined);
      if (userId !== undefined && theirs?.user?.id === userId) {
        throw new ConfigError(
          `Spotify user ${userId} is already the account ${other.name}: not stored again as ${name}`,
          {
            hint:
              `On Spotify's page, choose "Not you?" and log in as ${name}'s Spotify user (or run \`${
                authCommand(other.name)
              }\` to renew ${other.name}).`,
          },
        );
      }
    }
    await writeTokenStore(file, result.tokens);
    return { tokens: result.tokens, file, accounts: before.length + (isNew ? 1 : 0) };
  } finally {
    await Deno.remove(pending).catch(() => {});
  }
}

/**
 * Forgets account `name`: deletes its token store. What was collected for it stays in the lake
 * and the warehouse (its rows carry its `user_id`).
 * @throws {ConfigError} naming the accounts there are when there is no such one.
 */
export async function removeAccount(
  config: Config,
  name: string,
): Promise<{ file: string; userId?: string }> {
  checkAccountName(name, "--remove");
  const accounts = await tokenAccounts(config);
  const account = accounts.find((a) => a.name === name);
  if (!account?.tokensFile) {
    throw new ConfigError(
      `--remove ${name}: no such account (accounts: ${
        accounts.map((a) => a.name).join(", ") || "none"
      })`,
    );
  }
  const userId = (await readTokenStore(account.tokensFile).catch(() => undefined))?.user?.id;
  await Deno.remove(account.tokensFile);
  return { file: account.tokensFile, userId };
}

/** Options of {@link accountsStatus}. */
export interface AccountsStatusOptions {
  log: Logger;
  /** Only these accounts (default every one). */
  names?: string[];
  now?: () => Date;
}

/**
 * Every account's status (who, scopes, access-token expiry, the 6-month refresh-token horizon),
 * one block each. A damaged store is reported in its block (and counted in `problems`); the
 * others are still shown.
 * @throws {ConfigError} when no account is authorized.
 */
export async function accountsStatus(
  config: Config,
  options: AccountsStatusOptions,
): Promise<{ text: string; warnings: string[]; problems: number }> {
  const all = await tokenAccounts(config);
  const accounts = options.names ? all.filter((a) => options.names!.includes(a.name)) : all;
  if (accounts.length === 0) {
    throw new ConfigError(
      options.names
        ? `--user ${options.names.join(", ")}: no such account (accounts: ${
          all.map((a) => a.name).join(", ") || "none"
        })`
        : `No Spotify account is authorized (no token store at "${config.spotify.tokensFile}" nor in "${config.spotify.usersDir}")`,
      { hint: "Run `deno task auth` (or `deno task auth --user <name>`) first." },
    );
  }
  const blocks: string[] = [];
  const warnings: string[] = [];
  let problems = 0;
  for (const a of accounts) {
    const again = authCommand(a.name);
    try {
      const status = await authStatus(config, {
        log: options.log,
        tokensFile: a.tokensFile,
        account: a.name,
        now: options.now,
      });
      blocks.push(`Account ${a.name}\n${indent(status.text)}`);
      if (status.warning) warnings.push(`${a.name}: ${status.warning}`);
    } catch (error) {
      const message = options.log.redact((error as Error).message);
      blocks.push(`Account ${a.name}\n${indent(`PROBLEM: ${message} — run \`${again}\``)}`);
      warnings.push(`${a.name}: ${message}`);
      problems++;
    }
  }
  const limit = all.length > DEV_MODE_USER_LIMIT
    ? ` — more than the ${DEV_MODE_USER_LIMIT} users a development-mode Spotify app serves: the app needs an extended quota`
    : ` (a development-mode Spotify app serves at most ${DEV_MODE_USER_LIMIT})`;
  blocks.push(`${all.length} account(s)${limit}`);
  return { text: blocks.join("\n\n"), warnings, problems };
}

function indent(text: string): string {
  return text.split("\n").map((l) => `  ${l}`).join("\n");
}
