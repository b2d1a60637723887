/**
 * The Deno Deploy entry: registers the daily cron `top-tracks` (PIPELINE_SCHEDULE, UTC) running
 * fetch → enrich → write → upload → load in the prod profile without a file system — Parquet in
 * memory, tokens in Deno KV (seeded from the SPOTIFY_TOKENS_JSON secret), S3 and Snowflake. dbt
 * runs elsewhere (see README, "Deno Deploy").
 *
 * Deno Deploy discovers crons by evaluating the entry's top-level code, so the registration below
 * is unconditional and needs only PIPELINE_SCHEDULE; the full prod configuration (secrets
 * included) is loaded when the cron fires, so a bad secret fails that run, visibly, not the
 * deployment.
 *
 * Deploy-only settings (read here, the entry): `SPOTIFY_TOKENS_JSON` (the token file `deno task
 * auth` wrote, as text) and `PIPELINE_KV_PATH` (unset on Deploy; a file or `:memory:` locally).
 *
 * @example deno task deploy-local --once   # one run now, with Deploy-like permissions
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger, reportError } from "../lib/cli.ts";
import { type Config, loadConfig } from "../lib/config.ts";
import { ConfigError, ExitCode } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { type DeployRunSummary, kvRunRecorder, runOnDeploy } from "../lib/deploy/pipeline.ts";
import { kvTokenSource, openKv, parseTokensJson } from "../lib/deploy/tokens.ts";
import { registerSchedule } from "../lib/server/cron.ts";

/** Settings only the Deploy entry reads. */
export interface DeploySettings {
  /** Deno KV path (unset on Deploy: the deployment's database). */
  kvPath?: string;
  /** The token store as JSON text, to seed Deno KV. */
  tokensJson?: string;
}

/** Reads the Deploy-only settings from the environment. */
export function deploySettings(): DeploySettings {
  const get = (name: string) => Deno.env.get(name)?.trim() || undefined;
  return { kvPath: get("PIPELINE_KV_PATH"), tokensJson: get("SPOTIFY_TOKENS_JSON") };
}

/**
 * The settings needed to register the schedule — PIPELINE_SCHEDULE and the log settings —
 * validated like every setting, without requiring the prod secrets.
 */
export function scheduleConfig(): Config {
  const names = ["PIPELINE_SCHEDULE", "PIPELINE_LOG_LEVEL", "PIPELINE_LOG_FORMAT"];
  return loadConfig({
    env: Object.fromEntries(names.map((n) => [n, Deno.env.get(n)])),
    envFile: false,
  });
}

/** Options of {@link runDeployOnce}. */
export interface RunDeployOnceOptions {
  log: Logger;
  settings: DeploySettings;
  date?: string;
}

/** One Deploy run: opens Deno KV, runs the pipeline, records the summary, closes KV. */
export async function runDeployOnce(
  config: Config,
  options: RunDeployOnceOptions,
): Promise<DeployRunSummary> {
  const { log, settings, date } = options;
  const seed = settings.tokensJson
    ? parseTokensJson(settings.tokensJson, "SPOTIFY_TOKENS_JSON")
    : undefined;
  const kv = await openKv(settings.kvPath);
  try {
    return await runOnDeploy(config, {
      log,
      tokens: kvTokenSource(kv, { seed }),
      kv,
      record: kvRunRecorder(kv),
      date,
    });
  } finally {
    kv.close();
  }
}

/** What the cron runs: the prod config (secrets included) is loaded now, not at start-up. */
async function scheduledRun(): Promise<void> {
  const config = loadConfig({ tokensElsewhere: true });
  await runDeployOnce(config, { log: createLogger(config), settings: deploySettings() });
}

const HELP = `scripts/deploy.ts — the Deno Deploy entry (prod profile: S3 + Snowflake, no dbt)

Registers the cron "top-tracks" on PIPELINE_SCHEDULE (UTC) when the module loads.
Locally: deno task deploy-local [--once] [--date YYYY-MM-DD]

Flags:
  --once               also run the pipeline once now, then exit
  --date YYYY-MM-DD    snapshot date of that run (default: today, UTC)
  --help               this help

Settings: every prod setting (see README), plus SPOTIFY_TOKENS_JSON (the token file's content,
seeds Deno KV) and PIPELINE_KV_PATH (local runs only).`;

/** Local use (`--once`, `--help`); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let log = createLogger(undefined);
  try {
    let values: { once?: boolean; date?: string; help?: boolean };
    try {
      ({ values } = parseArgs({
        args,
        options: { once: { type: "boolean" }, date: { type: "string" }, help: { type: "boolean" } },
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
    });
    console.log(JSON.stringify(summary, null, 2));
    return ExitCode.ok;
  } catch (error) {
    return reportError(log, error);
  }
}

// Top level, unconditional: this is how Deno Deploy finds the cron.
const boot = scheduleConfig();
registerSchedule(boot, { log: createLogger(boot), job: scheduledRun, rethrow: true });

if (import.meta.main && Deno.args.length > 0) Deno.exit(await main(Deno.args));
