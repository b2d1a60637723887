/**
 * Command-line plumbing shared by every task: flag parsing (`node:util` parseArgs, since JSR's
 * @std/cli cannot be installed here), `--help` text, the logger, and the one place that turns an
 * error into a message and an exit code.
 * @module
 */

import { parseArgs } from "node:util";
import { type Config, configSecrets, loadConfig } from "./config.ts";
import { SETTINGS } from "./settings.ts";
import { ConfigError, EXIT_CODES_HELP, ExitCode, exitCodeOf, PipelineError } from "./errors.ts";
import { Logger, type LogSink, printable } from "./log.ts";
import { runPipeline } from "./pipeline.ts";
import { type StepName, validateRunId } from "./run.ts";
import { parseUserFlag } from "./spotify/accounts.ts";
import { parseStreamsFlag } from "./streams/registry.ts";

/** A flag of a task. */
export interface FlagSpec {
  type: "string" | "boolean";
  description: string;
  /** Placeholder shown in help for string flags. */
  value?: string;
}

/** A task's command-line interface. */
export interface TaskSpec {
  name: string;
  summary: string;
  flags: Record<string, FlagSpec>;
  /** Environment variables the task reads (names from {@link SETTINGS}). */
  env: string[];
  examples: string[];
  /** The positional arguments the task takes (shown in help), if any. */
  positionals?: string;
}

const RUN_FLAG: FlagSpec = {
  type: "string",
  value: "<id>",
  description: "run folder to use (default: the latest run)",
};
const STREAMS_FLAG: FlagSpec = {
  type: "string",
  value: "<a,b>",
  description:
    "streams of a new run: top_tracks, recently_played, top_artists (default: PIPELINE_STREAMS)",
};
const USER_FLAG: FlagSpec = {
  type: "string",
  value: "<a,b>",
  description: "accounts of a new run (default: every authorized one; see `auth --status`)",
};
const DATE_FLAG: FlagSpec = {
  type: "string",
  value: "YYYY-MM-DD",
  description: "snapshot date, 2008-10-07 (Spotify's launch) .. tomorrow (default: today, UTC)",
};

const CORE_ENV = [
  "PIPELINE_PROFILE",
  "PIPELINE_DATA_DIR",
  "PIPELINE_LOG_LEVEL",
  "PIPELINE_LOG_FORMAT",
];
const SPOTIFY_ENV = [
  "SPOTIFY_CLIENT_ID",
  "SPOTIFY_CLIENT_SECRET",
  "SPOTIFY_TOKENS_FILE",
  "SPOTIFY_USERS_DIR",
  "SPOTIFY_API_URL",
  "SPOTIFY_ACCOUNTS_URL",
];
const HTTP_ENV = ["HTTP_TIMEOUT_MS", "HTTP_MAX_RETRIES", "HTTP_MAX_RETRY_SECONDS"];
const S3_ENV = SETTINGS.map((s) => s.name).filter((n) => n.startsWith("S3_") || n === "AWS_REGION");
const SNOWFLAKE_ENV = SETTINGS.map((s) => s.name).filter((n) => n.startsWith("SNOWFLAKE_"));

/** Every task's interface (light: importing this loads no step). */
export const TASKS: Record<StepName | "auth" | "pipeline" | "poll", TaskSpec> = {
  import: {
    name: "import",
    summary:
      "Import Spotify's privacy export (Extended streaming history, Account data): files, folders or the zip, read in place → Parquet by month → upload → load. Streams already loaded are left out; `deno task transform` then builds the models.",
    positionals: "<path>...",
    flags: {
      user: {
        type: "string",
        value: "<account|id>",
        description:
          "whose history it is: an account (`auth --status` lists them) or a Spotify user id (default: the `default` account's user; the local sample's `sample` when there is none)",
      },
      resume: { type: "boolean", description: "finish the latest unfinished import run" },
      run: { type: "string", value: "<id>", description: "continue this import run" },
      from: { type: "string", value: "<step>", description: "with --run: first step to run" },
    },
    env: [
      ...CORE_ENV,
      "SPOTIFY_TOKENS_FILE",
      "FEATURES_PROVIDERS",
      "FEATURES_CACHE",
      "AUDIO_FEATURES_CSV",
      "AUDIO_FEATURES_CSV_COLUMNS",
      "DUCKDB_PATH",
      "PIPELINE_LAKE_DIR",
      ...S3_ENV,
      ...SNOWFLAKE_ENV,
    ],
    examples: [
      "deno task import ~/Downloads/my_spotify_data.zip",
      "deno task import ../shared/fixtures/spotify/history",
      "deno task import --user alice Streaming_History_Audio_2023.json",
      "deno task import --resume",
    ],
  },
  auth: {
    name: "auth",
    summary:
      "Authorize this toolkit with Spotify (Authorization Code + PKCE, scopes user-top-read and user-read-recently-played) and store the tokens.",
    flags: {
      user: {
        type: "string",
        value: "<name>",
        description:
          "the account to authorize (another household member: its tokens go to SPOTIFY_USERS_DIR/<name>.json; default: `default`, SPOTIFY_TOKENS_FILE)",
      },
      status: {
        type: "boolean",
        description: "show every account (or --user's): who, scopes, token ages",
      },
      remove: { type: "string", value: "<name>", description: "forget an account's tokens" },
      "no-browser": { type: "boolean", description: "print the authorize URL only" },
    },
    env: [...CORE_ENV, ...SPOTIFY_ENV, "SPOTIFY_REDIRECT_PORT"],
    examples: [
      "deno task auth",
      "deno task auth --user alice",
      "deno task auth --status",
      "deno task auth --remove alice",
    ],
  },
  fetch: {
    name: "fetch",
    summary:
      "Fetch the run's streams (top tracks, recently played, top artists; or the bundled samples) into a new run folder.",
    flags: { date: DATE_FLAG, run: RUN_FLAG, streams: STREAMS_FLAG, user: USER_FLAG },
    env: [
      ...CORE_ENV,
      ...SPOTIFY_ENV,
      "SPOTIFY_TIME_RANGES",
      "SPOTIFY_MAX_TRACKS",
      "SPOTIFY_SOURCE",
      "SPOTIFY_CONCURRENCY",
      "PIPELINE_STREAMS",
      ...HTTP_ENV,
    ],
    examples: [
      "deno task fetch",
      "deno task fetch --date 2026-11-25",
      "deno task fetch --streams recently_played",
    ],
  },
  enrich: {
    name: "enrich",
    summary:
      "Add audio features to the fetched tracks (Spotify, ReccoBeats, CSV catalog) and report coverage.",
    flags: { run: RUN_FLAG },
    env: [
      ...CORE_ENV,
      "FEATURES_PROVIDERS",
      "FEATURES_CACHE",
      "AUDIO_FEATURES_CSV",
      "AUDIO_FEATURES_CSV_COLUMNS",
      "RECCOBEATS_API_URL",
      ...SPOTIFY_ENV,
      ...HTTP_ENV,
    ],
    examples: ["deno task enrich", "AUDIO_FEATURES_CSV=dataset.csv deno task enrich"],
  },
  write: {
    name: "write",
    summary: "Write the enriched rows as Parquet (top_tracks/snapshot_date=YYYY-MM-DD/...).",
    flags: { run: RUN_FLAG },
    env: CORE_ENV,
    examples: ["deno task write"],
  },
  upload: {
    name: "upload",
    summary: "Put the Parquet file into the object store (a folder locally, S3 in prod).",
    flags: { run: RUN_FLAG },
    env: [...CORE_ENV, "PIPELINE_LAKE_DIR", ...S3_ENV],
    examples: ["deno task upload"],
  },
  load: {
    name: "load",
    summary:
      "Load the uploaded file into the warehouse (DuckDB locally, Snowflake COPY INTO in prod); already-loaded files are skipped.",
    flags: {
      run: RUN_FLAG,
      setup: { type: "boolean", description: "prod: print the one-time Snowflake setup SQL" },
      apply: { type: "boolean", description: "with --setup: run it" },
    },
    env: [...CORE_ENV, "DUCKDB_PATH", "PIPELINE_LAKE_DIR", ...SNOWFLAKE_ENV, ...S3_ENV],
    examples: ["deno task load", "PIPELINE_PROFILE=prod deno task load --setup"],
  },
  transform: {
    name: "transform",
    summary: "Run `dbt build` (models + tests) for the active profile's target.",
    flags: {
      run: RUN_FLAG,
      "full-refresh": { type: "boolean", description: "rebuild incremental models" },
    },
    env: [
      ...CORE_ENV,
      "DBT_PYTHON",
      "DBT_VENV_DIR",
      "DBT_SCHEMA",
      "DBT_COVERAGE_FLOOR",
      "DUCKDB_PATH",
      ...SNOWFLAKE_ENV,
    ],
    examples: ["deno task transform", "deno task transform --full-refresh"],
  },
  report: {
    name: "report",
    summary:
      "Build the report from the dbt models: $PIPELINE_DATA_DIR/report/index.html, one self-contained page of charts (no network at view time). The daily pipeline's last step.",
    flags: {},
    env: [...CORE_ENV, "DBT_SCHEMA", "DUCKDB_PATH", ...SNOWFLAKE_ENV],
    examples: ["deno task report", "PIPELINE_PROFILE=prod deno task report"],
  },
  pipeline: {
    name: "pipeline",
    summary: "Run fetch → enrich → write → upload → load → transform → report in one process.",
    flags: {
      date: DATE_FLAG,
      run: { type: "string", value: "<id>", description: "continue this run instead of a new one" },
      from: { type: "string", value: "<step>", description: "first step to run" },
      to: { type: "string", value: "<step>", description: "last step to run" },
      resume: { type: "boolean", description: "continue the latest unfinished run (or --run)" },
      streams: STREAMS_FLAG,
      user: USER_FLAG,
      "full-refresh": { type: "boolean", description: "dbt: rebuild incremental models" },
    },
    env: SETTINGS.map((s) => s.name),
    examples: [
      "deno task pipeline",
      "deno task pipeline --from load",
      "deno task pipeline --resume",
      "deno task pipeline --streams top_tracks",
      "deno task pipeline --user alice",
    ],
  },
  poll: {
    name: "poll",
    summary:
      "Collect the poll streams (recently played) since the last poll: fetch → enrich → write → upload → load, no dbt. Run it every 30 minutes; a poll that meets a running run is skipped (exit 0).",
    flags: {
      resume: { type: "boolean", description: "continue the latest unfinished poll run" },
      streams: STREAMS_FLAG,
      user: USER_FLAG,
    },
    env: SETTINGS.map((s) => s.name).filter((n) => !n.startsWith("DBT_")),
    examples: ["deno task poll", "*/30 * * * * cd /srv/spotify && deno task poll"],
  },
};

/** Formats a task's `--help` text. */
export function helpText(spec: TaskSpec): string {
  const all: Record<string, FlagSpec> = {
    ...spec.flags,
    help: { type: "boolean", description: "show this help" },
  };
  const flags = Object.entries(all).map((
    [name, f],
  ) => [`--${name}${f.value ? " " + f.value : ""}`, f.description]);
  const width = Math.max(...flags.map(([a]) => a!.length));
  const env = spec.env.map((name) => {
    const doc = SETTINGS.find((s) => s.name === name);
    return [
      name,
      doc ? `${doc.description}${doc.default ? ` (default: ${doc.default})` : ""}` : "",
    ];
  });
  const envWidth = Math.max(...env.map(([a]) => a!.length));
  return [
    `deno task ${spec.name}${spec.positionals ? ` ${spec.positionals}` : ""} — ${spec.summary}`,
    "",
    "Flags:",
    ...flags.map(([a, b]) => `  ${a!.padEnd(width)}  ${b}`),
    "",
    "Environment (also read from .env):",
    ...env.map(([a, b]) => `  ${a!.padEnd(envWidth)}  ${b}`),
    "",
    "Examples:",
    ...spec.examples.map((e) => `  ${e}`),
    "",
    EXIT_CODES_HELP,
  ].join("\n");
}

/** Parsed flags of a task. */
export type Flags = Record<string, string | boolean | undefined>;

/**
 * Parses `args` into the task's flags and (for a task that takes them) positional arguments;
 * unknown flags, and positionals for a task without, are a {@link ConfigError}.
 */
export function parseCommand(
  spec: TaskSpec,
  args: string[],
): { flags: Flags; positionals: string[] } {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [name, f] of Object.entries(spec.flags)) options[name] = { type: f.type };
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: spec.positionals !== undefined,
    });
    return { flags: values as Flags, positionals };
  } catch (error) {
    throw new ConfigError(`${(error as Error).message} (see \`deno task ${spec.name} --help\`)`);
  }
}

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  sink?: LogSink;
}

/** The logger of a task: level and format from config, every configured secret redacted. */
export function createLogger(
  config: Config | undefined,
  options: CreateLoggerOptions = {},
): Logger {
  return new Logger({
    level: config?.logLevel,
    format: config?.logFormat,
    sink: options.sink,
    secrets: config ? configSecrets(config) : [],
  });
}

/** Prints an error as one line (plus hint), redacted, and returns its exit code. */
export function reportError(log: Logger, error: unknown): number {
  const code = exitCodeOf(error);
  if (error instanceof PipelineError) {
    log.error(error.message, { exit_code: code, ...(error.hint ? { hint: error.hint } : {}) });
  } else {
    const e = error instanceof Error ? error : new Error(String(error));
    log.error(`Unexpected error: ${e.message}`, { exit_code: code, stack: e.stack });
  }
  return code;
}

/**
 * Runs a task body with the shared handling: `--help`, config, logger and one error exit.
 * @returns the exit code.
 */
export async function taskMain(
  spec: TaskSpec,
  args: string[],
  body: (
    ctx: { config: Config; log: Logger; flags: Flags; positionals: string[] },
  ) => Promise<void | number>,
): Promise<number> {
  let log = createLogger(undefined);
  try {
    const { flags, positionals } = parseCommand(spec, args);
    if (flags.help) {
      console.log(helpText(spec));
      return ExitCode.ok;
    }
    const config = loadConfig();
    log = createLogger(config);
    // a body may end with a code of its own (a partial run: the worst account's failure)
    return (await body({ config, log, flags, positionals })) ?? ExitCode.ok;
  } catch (error) {
    return reportError(log, error);
  }
}

/**
 * `main` of a single-step task (`scripts/<step>.ts`): a pipeline of that one step — on the latest
 * run (or `--run`), or for fetch without `--run` a new run — under the run lock like any run.
 */
export function stepMain(step: StepName, args: string[]): Promise<number> {
  return taskMain(TASKS[step], args, async ({ config, log, flags }) => {
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    const runId = str(flags.run);
    if (runId !== undefined) validateRunId(runId);
    const { run } = await runPipeline(config, {
      log,
      only: step,
      runId,
      date: str(flags.date),
      streams: str(flags.streams) === undefined ? undefined : parseStreamsFlag(str(flags.streams)!),
      accounts: str(flags.user) === undefined ? undefined : parseUserFlag(str(flags.user)!),
      flags,
    });
    log.child({ run_id: run.id }).info(`${step} done`, {
      ...(run.manifest.steps[step]?.counts ?? {}),
    });
    // The step's readable report (e.g. enrich's coverage), as the pipeline's summary prints it.
    const text = run.manifest.steps[step]?.summary?.text;
    if (typeof text === "string" && text.trim()) console.log(printable(text.trimEnd()));
    return run.exitCode;
  });
}
