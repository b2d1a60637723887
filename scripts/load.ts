/** load: see `deno task load --help`. */
import { stepMain } from "../lib/cli.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return stepMain("load", args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
