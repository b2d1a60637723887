/** enrich: see `deno task enrich --help`. */
import { stepMain } from "../lib/cli.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return stepMain("enrich", args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
