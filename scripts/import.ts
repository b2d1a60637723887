/** Import Spotify's privacy export (files, folders or the zip) into streaming_history.
 * @example deno task import ~/Downloads/my_spotify_data.zip
 * @example deno task import --resume
 */
import { taskMain, TASKS } from "../lib/cli.ts";
import { importRequest } from "../lib/import/request.ts";
import { printable } from "../lib/log.ts";
import { formatSummary, runPipeline } from "../lib/pipeline.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(TASKS.import, args, async ({ config, log, flags, positionals }) => {
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    const continuing = flags.resume === true || str(flags.run) !== undefined;
    const request = await importRequest(config, {
      paths: positionals,
      user: str(flags.user),
      continuing,
      log,
    });
    const { run } = await runPipeline(config, {
      log,
      schedule: "import",
      // a new import run carries the history; a continued one keeps its own
      streams: continuing ? undefined : ["streaming_history"],
      runId: str(flags.run),
      resume: flags.resume === true,
      from: str(flags.from),
      import: request,
      flags,
    });
    console.log(printable(formatSummary(run, config)));
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
