/**
 * One entry for every task — what `deno compile` turns into the single binary. Each subcommand
 * runs the same `main()` as its `deno task`, imported only when chosen, so `cli fetch --help`
 * loads nothing heavy.
 * @example deno task cli pipeline --date 2026-11-25
 * @example ./dist/spotify-pipeline serve --cron
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };
import { EXIT_CODES_HELP } from "../lib/errors.ts";

/** Name shown in help (the compiled binary's name). */
const PROGRAM = "spotify-pipeline";

/** The toolkit's version (deno.json `version`). */
export const VERSION: string = denoJson.version;

type Main = (args: string[]) => Promise<number>;

/** Subcommands: summary and a lazy loader of the task's `main` (literal specifiers: compiled in). */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Main> }> = {
  auth: {
    summary: "authorize with Spotify (PKCE) and store the tokens; --status shows them",
    load: async () => (await import("./auth.ts")).main,
  },
  fetch: {
    summary: "fetch the run's streams (top tracks, recently played, top artists) into a new run",
    load: async () => (await import("./fetch.ts")).main,
  },
  enrich: {
    summary: "add audio features (Spotify, ReccoBeats, CSV catalog) and report coverage",
    load: async () => (await import("./enrich.ts")).main,
  },
  write: {
    summary: "write the enriched rows as Parquet",
    load: async () => (await import("./write.ts")).main,
  },
  upload: {
    summary: "put the Parquet files into the object store (folder or S3)",
    load: async () => (await import("./upload.ts")).main,
  },
  load: {
    summary: "load it into the warehouse (DuckDB or Snowflake COPY INTO)",
    load: async () => (await import("./load.ts")).main,
  },
  transform: {
    summary: "run dbt build (models and tests)",
    load: async () => (await import("./transform.ts")).main,
  },
  report: {
    summary: "build the report (charts from the dbt models) at $PIPELINE_DATA_DIR/report/",
    load: async () => (await import("./report.ts")).main,
  },
  pipeline: {
    summary: "run every step in order (--resume, --from, --to, --run)",
    load: async () => (await import("./pipeline.ts")).main,
  },
  import: {
    summary: "import Spotify's privacy export (files, folders, the zip) into streaming_history",
    load: async () => (await import("./import.ts")).main,
  },
  poll: {
    summary: "collect recently played since the last poll (fetch → load, no dbt); every 30 min",
    load: async () => (await import("./poll.ts")).main,
  },
  serve: {
    summary: "HTTP trigger and run status API; --cron adds the daily and poll schedules",
    load: async () => (await import("./serve.ts")).main,
  },
};

/** The top-level `--help` text. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    `${PROGRAM} ${VERSION} — collect Spotify listening (top tracks, plays, top artists): fetch → enrich → write → upload → load → transform → report`,
    "",
    `Usage: ${PROGRAM} <command> [flags]      (from a checkout: deno task cli <command> [flags])`,
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Flags:",
    "  --help      this help; `<command> --help` shows a command's flags and settings",
    "  --version   print the version",
    "",
    "Settings come from the environment and .env in the current folder (see docs/settings.md).",
    "",
    EXIT_CODES_HELP,
  ].join("\n");
}

/** Entry point; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    if (first === "help" && rest[0] !== undefined && rest[0] in COMMANDS) {
      return await (await COMMANDS[rest[0]]!.load())(["--help"]);
    }
    if (first === undefined) {
      console.error(usage());
      return 2;
    }
    console.log(usage());
    return 0;
  }
  if (first === "--version" || first === "-V") {
    console.log(`${PROGRAM} ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!command) {
    console.error(
      `${PROGRAM}: unknown command "${first}": expected one of ${
        Object.keys(COMMANDS).join(", ")
      } (see \`${PROGRAM} --help\`)`,
    );
    return 2;
  }
  return await (await command.load())(rest);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
