/** Run every step in one process: fetch → enrich → write → upload → load → transform.
 * @example deno task pipeline --date 2026-11-25
 */
import { taskMain, TASKS } from "../lib/cli.ts";
import { printable } from "../lib/log.ts";
import { formatSummary, runPipeline } from "../lib/pipeline.ts";
import { parseUserFlag } from "../lib/spotify/accounts.ts";
import { parseStreamsFlag } from "../lib/streams/registry.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(TASKS.pipeline, args, async ({ config, log, flags }) => {
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    const { run } = await runPipeline(config, {
      log,
      date: str(flags.date),
      runId: str(flags.run),
      resume: flags.resume === true,
      from: str(flags.from),
      to: str(flags.to),
      streams: str(flags.streams) === undefined ? undefined : parseStreamsFlag(str(flags.streams)!),
      accounts: str(flags.user) === undefined ? undefined : parseUserFlag(str(flags.user)!),
      flags,
    });
    console.log(printable(formatSummary(run, config)));
    // some accounts failed while the others' data landed: the worst failure's code
    return run.exitCode;
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
