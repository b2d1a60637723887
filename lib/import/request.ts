/**
 * What an import reads and whose history it is, decided once when the import run starts (and
 * kept in its manifest, so `import --resume` reads the same).
 * @module
 */

import { resolve } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ImportRequest } from "../run.ts";
import { listAccounts } from "../spotify/accounts.ts";
import { readTokenStore } from "../spotify/token_store.ts";
import { SAMPLE_USER } from "../streams/names.ts";

/** Options of {@link importRequest}. */
export interface ImportRequestOptions {
  /** The paths given on the command line. */
  paths: readonly string[];
  /** `--user`. */
  user?: string;
  /** `--resume` / `--run`: the run's own request is used (no paths allowed). */
  continuing: boolean;
  log: Logger;
}

const USER_ID = /^[A-Za-z0-9_.\-@+]{1,128}$/;

/**
 * The request of a new import run: absolute paths, and the user from `--user`, else the token
 * store's user, else (local profile, no token store) the bundled sample's user.
 * @returns `undefined` when continuing a run (its manifest holds the request).
 * @throws {ConfigError} naming the flag or setting that is missing or wrong.
 */
export async function importRequest(
  config: Config,
  options: ImportRequestOptions,
): Promise<ImportRequest | undefined> {
  const { paths, user, continuing, log } = options;
  if (continuing) {
    if (paths.length || user !== undefined) {
      throw new ConfigError(
        "--resume/--run continue an import with the paths and user it started with: drop the paths and --user",
      );
    }
    return undefined;
  }
  if (paths.length === 0) {
    throw new ConfigError(
      "No export to import: expected one or more paths (the zip Spotify sends, its folder, or its JSON files), e.g. `deno task import ~/Downloads/my_spotify_data.zip`",
    );
  }
  if (user !== undefined) {
    // an account of the household (`auth --user alice`): its Spotify user
    const account = /^[a-z0-9][a-z0-9_-]{0,31}$/.test(user) && config.spotify.source === "api"
      ? (await listAccounts(config).catch(() => [])).find((a) => a.name === user)
      : undefined;
    if (account?.tokensFile) {
      const id = (await readTokenStore(account.tokensFile).catch(() => undefined))?.user?.id;
      if (id) {
        log.info(`Importing as account ${user}'s Spotify user ${id}`);
        return { paths: paths.map((p) => resolve(p)), user_id: id };
      }
    }
    if (!USER_ID.test(user)) {
      throw new ConfigError(
        `--user "${user}" is not a Spotify user id: expected 1-128 letters, digits or . _ - @ +`,
      );
    }
    return { paths: paths.map((p) => resolve(p)), user_id: user };
  }
  let stored: string | undefined;
  try {
    stored = (await readTokenStore(config.spotify.tokensFile)).user?.id;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound) && !(error instanceof ConfigError)) throw error;
  }
  if (stored) return { paths: paths.map((p) => resolve(p)), user_id: stored };
  if (config.profile === "local" && config.spotify.source !== "api") {
    log.info(
      `No token store (${config.spotify.tokensFile}): importing as the local sample's user "${SAMPLE_USER}" (pass --user <id> to name the user)`,
    );
    return { paths: paths.map((p) => resolve(p)), user_id: SAMPLE_USER };
  }
  throw new ConfigError(
    `Whose history is it? No user in the token store ${config.spotify.tokensFile}`,
    { hint: "Pass --user <spotify user id>, or authorize first with `deno task auth`." },
  );
}
