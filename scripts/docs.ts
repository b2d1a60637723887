/**
 * Writes the generated parts of the docs: the settings table of `docs/settings.md`, from the one
 * settings list in code (`lib/settings.ts`). `tests/docs_test.ts` fails when they disagree.
 * @example deno task docs
 * @module
 */
import { join } from "node:path";
import { PROJECT_ROOT } from "../lib/config.ts";
import { withSettingsTable } from "../lib/settings_table.ts";

/** The page the settings table lives in. */
export const SETTINGS_PAGE: string = join(PROJECT_ROOT, "docs", "settings.md");

/** Entry point; returns the exit code. */
export async function main(): Promise<number> {
  const page = await Deno.readTextFile(SETTINGS_PAGE);
  await Deno.writeTextFile(SETTINGS_PAGE, withSettingsTable(page));
  // the table is written unaligned; deno fmt aligns it as every page is
  const fmt = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--config", join(PROJECT_ROOT, "deno.json"), SETTINGS_PAGE],
    stdout: "null",
  }).output();
  console.log(`Wrote the settings table of ${SETTINGS_PAGE}`);
  return fmt.code;
}

if (import.meta.main) Deno.exit(await main());
