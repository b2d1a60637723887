/** load: see `deno task load --help`. */
import { stepMain, taskMain, TASKS } from "../lib/cli.ts";

/**
 * Entry point; returns the exit code. `--setup` (prod: the one-time Snowflake setup) runs outside
 * any run folder, so it neither needs a run nor marks one's load step as done.
 */
export function main(args: string[]): Promise<number> {
  if (args.includes("--setup")) {
    return taskMain(TASKS.load, args, async ({ config, log, flags }) => {
      const { runLoadSetup } = await import("../lib/steps/load.ts");
      await runLoadSetup(config, { apply: flags.apply === true, log });
    });
  }
  return stepMain("load", args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
