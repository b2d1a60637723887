/**
 * Authorize this toolkit with Spotify, or show the stored authorization.
 * @example deno task auth
 * @example deno task auth --status
 * @module
 */
import { taskMain, TASKS } from "../lib/cli.ts";
import { printable } from "../lib/log.ts";
import { authStatus } from "../lib/spotify/auth_status.ts";
import { authorize } from "../lib/spotify/pkce_auth.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(TASKS.auth, args, async ({ config, log, flags }) => {
    if (flags.status) {
      const status = await authStatus(config, { log });
      console.log(printable(status.text));
      return;
    }
    const { tokens, file } = await authorize(config, {
      log,
      openBrowser: !flags["no-browser"],
      onAuthorizeUrl: (url) => {
        console.log(`Open this URL in a browser and accept the request:\n\n  ${url}\n`);
      },
    });
    const who = tokens.user
      ? ` as ${tokens.user.display_name ?? tokens.user.id} (${tokens.user.id})`
      : "";
    console.log(
      printable(`Authorized${who}; scope ${tokens.scope}. Tokens saved to ${file} (mode 0600).`),
    );
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
