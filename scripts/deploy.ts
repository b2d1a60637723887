/**
 * The Deno Deploy entry: registers the daily cron `top-tracks` (PIPELINE_SCHEDULE, UTC) running
 * fetch → enrich → write → upload → load in the prod profile without a file system — Parquet in
 * memory, tokens in Deno KV (seeded from the SPOTIFY_TOKENS_JSON secret), S3 and Snowflake. dbt
 * runs elsewhere (see README, "Deno Deploy").
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
import { type CronFn, registerSchedule } from "../lib/server/cron.ts";

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
      record: kvRunRecorder(kv),
      date,
    });
  } finally {
    kv.close();
  }
}

/** Options of {@link startDeploy}. */
export interface StartDeployOptions {
  /** Default `Deno.cron` (injectable for tests). */
  cron?: CronFn;
  config?: Config;
  settings?: DeploySettings;
}

/**
 * Registers the schedule. Called synchronously while the module loads: Deno Deploy picks up the
 * crons registered at start-up. A bad configuration throws here, so the deployment fails visibly.
 */
export function startDeploy(options: StartDeployOptions = {}): Promise<void> {
  const config = options.config ?? loadConfig({ tokensElsewhere: true });
  const settings = options.settings ?? deploySettings();
  const log = createLogger(config);
  return registerSchedule(config, {
    log,
    cron: options.cron,
    job: async () => {
      await runDeployOnce(config, { log, settings });
    },
  });
}

const HELP = `scripts/deploy.ts — the Deno Deploy entry (prod profile: S3 + Snowflake, no dbt)

On Deno Deploy it registers the cron "top-tracks" on PIPELINE_SCHEDULE (UTC).
Locally: deno task deploy-local [--once] [--date YYYY-MM-DD]

Flags:
  --once               run the pipeline once now and exit (instead of registering the cron)
  --date YYYY-MM-DD    snapshot date of that run (default: today, UTC)
  --help               this help

Settings: every prod setting (see README), plus SPOTIFY_TOKENS_JSON (the token file's content,
seeds Deno KV) and PIPELINE_KV_PATH (local runs only).`;

/** `--once`: one run now; returns the exit code. */
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
    if (values.help) {
      console.log(HELP);
      return ExitCode.ok;
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

if (import.meta.main) {
  if (Deno.args.length > 0) Deno.exit(await main(Deno.args));
  // No await before this: the cron is registered while the module loads.
  startDeploy();
}
