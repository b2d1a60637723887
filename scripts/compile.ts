/**
 * `deno task compile`: the single binary `dist/spotify-pipeline` (the CLI with `data/` and `dbt/`
 * embedded), after checking that this Deno can build it: `--self-extracting` (dbt, a separate
 * process, must read the project on disk) needs Deno 2.7.
 * @example deno task compile
 * @module
 */

import { createLogger, reportError } from "../lib/cli.ts";
import { requireDeno } from "../lib/deno_version.ts";

/** The oldest Deno whose `deno compile` has `--self-extracting`. */
export const MIN_COMPILE_DENO = "2.7.0";

/** `deno compile`'s arguments (extra ones, e.g. `--target`, go before the entry). */
export function compileArgs(extra: string[] = []): string[] {
  return [
    "compile",
    "--allow-all",
    "--unstable-cron",
    "--self-extracting",
    "--include",
    "data/",
    "--include",
    "dbt/",
    "--include",
    "lib/features/_scan_worker.ts",
    "--exclude",
    "dbt/target",
    "--exclude",
    "dbt/logs",
    "--exclude",
    "dbt/dbt_packages",
    "--output",
    "dist/spotify-pipeline",
    ...extra,
    "scripts/cli.ts",
  ];
}

/** Entry point; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const log = createLogger(undefined);
  try {
    requireDeno(MIN_COMPILE_DENO, "`deno task compile` (deno compile --self-extracting)");
    const root = new URL("..", import.meta.url);
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: compileArgs(args),
      cwd: root,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    return code;
  } catch (error) {
    return reportError(log, error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
