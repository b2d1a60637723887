/**
 * The Deno Deploy entry. Deno Deploy (the platform since Deploy Classic shut down on 2026-07-20)
 * evaluates this module's top level to find its crons, starts the app on demand, waits for its
 * HTTP server, may run several instances at once and gives each an ephemeral disk. So:
 *
 * 1. at the top level, before any server: the crons `top-tracks` (PIPELINE_SCHEDULE) and
 *    `recently-played` (PIPELINE_POLL_SCHEDULE, unless `off`), registered unconditionally from
 *    those settings alone — a bad secret fails a run, visibly, not the deployment;
 * 2. then the HTTP server (`PORT`, default 8000): the trigger API of `serve` — `POST
 *    /run-top-tracks` (`?wait=true`), `GET /runs`, `GET /runs/:id`, `/readyz` behind
 *    `PIPELINE_TRIGGER_TOKEN` (Deploy apps are public: without a token only `/healthz` answers),
 *    and `/healthz`.
 *
 * Runs go fetch → enrich → write → upload → load in memory in the prod profile (S3 + Snowflake);
 * everything that must outlive an instance is in Deno KV: the Spotify tokens (seeded from the
 * `SPOTIFY_TOKENS_JSON` secret), the recently-played cursor, the run records and the run lease
 * (one run at a time across instances and retried crons). dbt runs elsewhere (docs/scheduling.md).
 *
 * Deploy-only settings (read here, the entry): `SPOTIFY_TOKENS_JSON`, `PIPELINE_KV_PATH` (unset on
 * Deploy; a file or `:memory:` locally) and `PORT`.
 *
 * @example deno task deploy-local            # the app as Deploy runs it, on :8000
 * @example deno task deploy-local --once     # one run now, then exit
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger, reportError } from "../lib/cli.ts";
import { type Config, loadConfig } from "../lib/config.ts";
import { kvBackend, misconfiguredBackend, runLeased } from "../lib/deploy/backend.ts";
import type { DeployAccount, DeployRunSummary } from "../lib/deploy/pipeline.ts";
import {
  type DeployKv,
  kvTokenSource,
  openKv,
  parseTokensJson,
  userTokenSettings,
} from "../lib/deploy/tokens.ts";
import { ConfigError, ExitCode, type ExitKind, PipelineError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { PipelineApp } from "../lib/server/app.ts";
import { registerSchedule } from "../lib/server/cron.ts";

/** Settings only the Deploy entry reads. */
export interface DeploySettings {
  /** Deno KV path (unset on Deploy: the app's database). */
  kvPath?: string;
  /** The token store as JSON text, to seed Deno KV. */
  tokensJson?: string;
  /** The other accounts' token stores (`SPOTIFY_TOKENS_JSON_<NAME>`), to seed Deno KV. */
  userTokens: { account: string; variable: string; json: string }[];
  /** HTTP port (Deploy's default 8000). */
  port: number;
}

/** Reads the Deploy-only settings from the environment. */
export function deploySettings(): DeploySettings {
  const get = (name: string) => Deno.env.get(name)?.trim() || undefined;
  const port = get("PORT") ?? "8000";
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    throw new ConfigError(`PORT="${port}" is not valid: expected a port number 0 to 65535`);
  }
  return {
    kvPath: get("PIPELINE_KV_PATH"),
    tokensJson: get("SPOTIFY_TOKENS_JSON"),
    userTokens: userTokenSettings(Deno.env.toObject()),
    port: Number(port),
  };
}

/**
 * The settings needed before any secret: the schedules, the trigger token and the log settings,
 * validated like every setting.
 */
export function scheduleConfig(): Config {
  const names = [
    "PIPELINE_SCHEDULE",
    "PIPELINE_POLL_SCHEDULE",
    "PIPELINE_TRIGGER_TOKEN",
    "PIPELINE_LOG_LEVEL",
    "PIPELINE_LOG_FORMAT",
  ];
  return loadConfig({
    env: Object.fromEntries(names.map((n) => [n, Deno.env.get(n)])),
    envFile: false,
  });
}

let kvOpened: Promise<DeployKv> | undefined;
/** The app's Deno KV, opened once per instance. */
function sharedKv(settings: DeploySettings): Promise<DeployKv> {
  kvOpened ??= openKv(settings.kvPath);
  return kvOpened;
}

/**
 * The `default` account's tokens: seeded from `SPOTIFY_TOKENS_JSON`, else those KV holds — unless
 * only other accounts are configured (deleting a secret removes its account).
 */
function tokenSource(kv: DeployKv, settings: DeploySettings) {
  if (!settings.tokensJson && settings.userTokens.length) return undefined;
  const seed = settings.tokensJson
    ? parseTokensJson(settings.tokensJson, "SPOTIFY_TOKENS_JSON")
    : undefined;
  return kvTokenSource(kv, { seed });
}

/** The household's other accounts, each seeded from its `SPOTIFY_TOKENS_JSON_<NAME>`. */
function otherAccounts(kv: DeployKv, settings: DeploySettings): DeployAccount[] {
  return settings.userTokens.map((u) => ({
    name: u.account,
    tokens: kvTokenSource(kv, {
      account: u.account,
      variable: u.variable,
      seed: parseTokensJson(u.json, u.variable),
    }),
  }));
}

/** Options of {@link runDeployOnce}. */
export interface RunDeployOnceOptions {
  log: Logger;
  settings: DeploySettings;
  date?: string;
  schedule?: "daily" | "poll";
}

/** One run under the KV lease (a `LockedError` while another instance runs one). */
export async function runDeployOnce(
  config: Config,
  options: RunDeployOnceOptions,
): Promise<DeployRunSummary> {
  const { log, settings, date, schedule } = options;
  const kv = await sharedKv(settings);
  const { done } = await runLeased(config, {
    kv,
    tokens: tokenSource(kv, settings),
    otherAccounts: otherAccounts(kv, settings),
    log,
    date,
    schedule,
  });
  return await done;
}

/** What a cron runs: the prod config (secrets included) is loaded now, not at start-up. */
function scheduledRun(schedule: "daily" | "poll"): () => Promise<void> {
  return async () => {
    const config = loadConfig({ tokensElsewhere: true });
    const summary = await runDeployOnce(config, {
      log: createLogger(config),
      settings: deploySettings(),
      schedule,
    });
    // some accounts failed while the others' data landed: the execution shows as failed
    if (summary.status === "partial") {
      throw new PipelineError(
        exitKindOf(summary.exit_code),
        `Deploy run ${summary.run_id} is partial: ${
          summary.warnings.filter((w) => w.startsWith("user ")).join("; ")
        }`,
      );
    }
  };
}

/** The exit kind of a code (a partial run's worst failure). */
function exitKindOf(code: number | undefined): ExitKind {
  const kind = (Object.keys(ExitCode) as ExitKind[]).find((k) => ExitCode[k] === code);
  return kind ?? "internal";
}

/** Serves the trigger API until the process ends (SIGTERM: stops accepting, then exits). */
export async function serveDeploy(boot: Config, log: Logger): Promise<void> {
  const settings = deploySettings();
  let app: PipelineApp;
  try {
    const config = loadConfig({ tokensElsewhere: true });
    const kv = await sharedKv(settings);
    const runLog = createLogger(config);
    app = new PipelineApp({
      config,
      log: runLog,
      backend: kvBackend(config, {
        kv,
        tokens: tokenSource(kv, settings),
        otherAccounts: otherAccounts(kv, settings),
        log: runLog,
      }),
      requireToken: true,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Serve anyway: /healthz answers, /readyz and the triggers name the problem.
    log.error(`The app's settings are invalid: ${error.message}`, { exit_code: ExitCode.config });
    app = new PipelineApp({
      config: boot,
      log,
      backend: misconfiguredBackend(error),
      requireToken: true,
    });
  }
  if (boot.serve.triggerToken === undefined) {
    log.warn(
      "PIPELINE_TRIGGER_TOKEN is not set: only /healthz answers (a Deploy app is public); set it as a secret",
    );
  }
  const server = Deno.serve({
    port: settings.port,
    onListen: ({ hostname, port }) => log.info(`Listening on http://${hostname}:${port}`),
  }, app.handler);
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  Deno.removeSignalListener("SIGTERM", stop);
  await app.close();
}

const HELP = `scripts/deploy.ts — the Deno Deploy entry (prod profile: S3 + Snowflake, no dbt)

Registers the crons "top-tracks" (PIPELINE_SCHEDULE) and "recently-played"
(PIPELINE_POLL_SCHEDULE) when the module loads, then serves the trigger API on PORT (8000).
Locally: deno task deploy-local [--once [--poll] [--date YYYY-MM-DD]]

Flags:
  --once               run the pipeline once now instead of serving, then exit
  --poll               with --once: the poll (recently played) instead of the daily run
  --date YYYY-MM-DD    snapshot date of that run (default: today, UTC)
  --help               this help

Settings: every prod setting (see docs/settings.md), PIPELINE_TRIGGER_TOKEN (required to use the API),
plus SPOTIFY_TOKENS_JSON (the token file's content, seeds Deno KV), SPOTIFY_TOKENS_JSON_<NAME> (each other account's, from \`auth --user <name>\`), PIPELINE_KV_PATH (local
runs only) and PORT.`;

/** Local use (`--once`, `--help`); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let log = createLogger(undefined);
  try {
    let values: { once?: boolean; poll?: boolean; date?: string; help?: boolean };
    try {
      ({ values } = parseArgs({
        args,
        options: {
          once: { type: "boolean" },
          poll: { type: "boolean" },
          date: { type: "string" },
          help: { type: "boolean" },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (error) {
      throw new ConfigError(`${(error as Error).message} (see --help)`);
    }
    if (values.help || !values.once) {
      console.log(HELP);
      return values.help ? ExitCode.ok : ExitCode.config;
    }
    const config = loadConfig({ tokensElsewhere: true });
    log = createLogger(config);
    const summary = await runDeployOnce(config, {
      log,
      settings: deploySettings(),
      date: values.date,
      schedule: values.poll ? "poll" : "daily",
    });
    console.log(JSON.stringify(summary, null, 2));
    return ExitCode.ok;
  } catch (error) {
    return reportError(log, error);
  }
}

// Top level, unconditional, before any server: this is how Deno Deploy finds the crons.
const boot = scheduleConfig();
const bootLog = createLogger(boot);
registerSchedule(boot, { log: bootLog, job: scheduledRun("daily"), rethrow: true });
if (boot.serve.pollSchedule !== "off") {
  registerSchedule(boot, {
    log: bootLog,
    kind: "poll",
    job: scheduledRun("poll"),
    rethrow: true,
  });
}

if (import.meta.main) {
  if (Deno.args.length > 0) Deno.exit(await main(Deno.args));
  await serveDeploy(boot, bootLog);
}
