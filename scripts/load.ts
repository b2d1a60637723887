/** load: see `deno task load --help`. */
import { stepMain, taskMain, TASKS } from "../lib/cli.ts";
import { ConfigError } from "../lib/errors.ts";

/**
 * Entry point; returns the exit code. `--setup` (prod: the one-time Snowflake setup) runs outside
 * any run folder, so it neither needs a run nor marks one's load step as done (nor failed: a
 * stray `--apply` is refused here, before any run is opened).
 */
export function main(args: string[]): Promise<number> {
  if (args.includes("--setup") || args.includes("--apply")) {
    return taskMain(TASKS.load, args, async ({ config, log, flags }) => {
      if (!flags.setup) {
        throw new ConfigError("--apply only goes with --setup (`deno task load --setup --apply`)");
      }
      const { runLoadSetup } = await import("../lib/steps/load.ts");
      await runLoadSetup(config, { apply: flags.apply === true, log });
    });
  }
  return stepMain("load", args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
