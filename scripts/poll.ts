/** Collect the poll streams (recently played) since the last poll, up to the load (no dbt).
 * Meant for cron every 30 minutes; a poll that meets a running run is skipped with exit 0.
 * @example deno task poll
 */
import { taskMain, TASKS } from "../lib/cli.ts";
import { LockedError } from "../lib/errors.ts";
import { printable } from "../lib/log.ts";
import { formatSummary, runPipeline } from "../lib/pipeline.ts";
import { parseUserFlag } from "../lib/spotify/accounts.ts";
import { parseStreamsFlag } from "../lib/streams/registry.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(TASKS.poll, args, async ({ config, log, flags }) => {
    try {
      const { run } = await runPipeline(config, {
        log,
        schedule: "poll",
        resume: flags.resume === true,
        streams: typeof flags.streams === "string" ? parseStreamsFlag(flags.streams) : undefined,
        accounts: typeof flags.user === "string" ? parseUserFlag(flags.user) : undefined,
        flags,
      });
      console.log(printable(formatSummary(run, config)));
      return run.exitCode;
    } catch (error) {
      // The daily run (or another poll) holds the lock: this poll is skipped, not failed; the
      // next one asks Spotify for everything since the cursor.
      if (!(error instanceof LockedError)) throw error;
      log.warn(`poll skipped: ${error.message}`, { running: error.runId });
    }
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
