/**
 * Authorize this toolkit with Spotify for an account of the household, show every account, or
 * forget one.
 * @example deno task auth
 * @example deno task auth --user alice
 * @example deno task auth --status
 * @example deno task auth --remove alice
 * @module
 */
import { taskMain, TASKS } from "../lib/cli.ts";
import { ConfigError, ExitCode } from "../lib/errors.ts";
import { printable } from "../lib/log.ts";
import { accountsStatus, authorizeAccount, removeAccount } from "../lib/spotify/account_admin.ts";
import { checkAccountName, DEFAULT_ACCOUNT } from "../lib/spotify/accounts.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(TASKS.auth, args, async ({ config, log, flags }) => {
    const user = typeof flags.user === "string" ? checkAccountName(flags.user) : undefined;
    if (typeof flags.remove === "string") {
      if (flags.status || user) throw new ConfigError("--remove goes alone (no --user, --status)");
      const { file, userId } = await removeAccount(config, flags.remove);
      console.log(printable(
        `Removed account ${flags.remove}${
          userId ? ` (Spotify user ${userId})` : ""
        }: deleted ${file}. ` +
          `Runs no longer collect it; what was collected stays in the lake and the warehouse${
            userId ? ` (user_id = '${userId}')` : ""
          }. To end the app's access on Spotify's side too: https://www.spotify.com/account/apps/`,
      ));
      return;
    }
    if (flags.status) {
      const status = await accountsStatus(config, { log, names: user ? [user] : undefined });
      console.log(printable(status.text));
      // a store that cannot be read is a setting to fix (its block says which and how)
      return status.problems ? ExitCode.config : ExitCode.ok;
    }
    const name = user ?? DEFAULT_ACCOUNT;
    const { tokens, file, accounts } = await authorizeAccount(config, name, {
      log,
      openBrowser: !flags["no-browser"],
      onAuthorizeUrl: (url) => {
        console.log(`Open this URL in a browser and accept the request:\n\n  ${url}\n`);
      },
    });
    const who = tokens.user
      ? ` as ${tokens.user.display_name ?? tokens.user.id} (${tokens.user.id})`
      : "";
    console.log(printable(
      `Authorized account ${name}${who}; scope ${tokens.scope}. Tokens saved to ${file} (mode 0600). ` +
        `${accounts} account(s) now.`,
    ));
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
