/**
 * The daily schedule: `Deno.cron("top-tracks", <PIPELINE_SCHEDULE>, job)` — the same registration
 * for `serve --cron` on a server and for the Deno Deploy entry. Schedules are UTC.
 *
 * `Deno.cron` needs `--unstable-cron` outside Deno Deploy (the `serve` task passes it).
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError, exitCodeOf, LockedError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** Name of the cron job (shown in Deno Deploy's dashboard). */
export const CRON_NAME = "top-tracks";

/** Options `Deno.cron` takes. */
export interface CronOptions {
  /** Retry delays (ms) after a failed handler; none here: a failed run is resumed, not redone. */
  backoffSchedule?: number[];
  signal?: AbortSignal;
}

/** The `Deno.cron` signature used here (injectable, to observe registrations in tests). */
export type CronFn = (
  name: string,
  schedule: string,
  options: CronOptions,
  handler: () => Promise<void>,
) => Promise<void>;

/** `Deno.cron` when this runtime has it (Deno Deploy, or `--unstable-cron`), else `undefined`. */
export function denoCron(): CronFn | undefined {
  const cron = (Deno as unknown as { cron?: CronFn }).cron;
  return typeof cron === "function" ? cron.bind(Deno) : undefined;
}

/** Options of {@link registerSchedule}. */
export interface RegisterScheduleOptions {
  log: Logger;
  /** What runs on each tick; its errors are logged, never thrown into the cron runtime. */
  job: () => Promise<void>;
  /** Default: {@link denoCron}. */
  cron?: CronFn;
  /** Stops the schedule. */
  signal?: AbortSignal;
  /**
   * Rethrow a failed run after logging it, so the cron runtime records the execution as failed
   * (Deno Deploy's dashboard shows it as Error). A skipped run (another one in progress) is not a
   * failure.
   */
  rethrow?: boolean;
}

/**
 * Registers the job on `config.serve.schedule`. Call it synchronously while the module loads:
 * Deno Deploy only picks up crons registered at start-up.
 * @returns the promise `Deno.cron` returns (settles when the schedule is stopped).
 */
export function registerSchedule(
  config: Config,
  options: RegisterScheduleOptions,
): Promise<void> {
  const { log, job, signal, rethrow = false } = options;
  const cron = options.cron ?? denoCron();
  if (!cron) {
    throw new ConfigError(
      "Deno.cron is not available in this runtime: run with --unstable-cron (the `serve` task does)",
    );
  }
  const schedule = config.serve.schedule;
  log.info(`Schedule "${CRON_NAME}" registered: ${schedule} (UTC)`, { schedule });
  return cron(CRON_NAME, schedule, { backoffSchedule: [], signal }, async () => {
    log.info(`Schedule "${CRON_NAME}" fired`, { schedule });
    try {
      await job();
    } catch (error) {
      if (error instanceof LockedError) {
        log.warn(`Scheduled run skipped: ${error.message}`, { running: error.runId });
        return;
      }
      const message = log.redact(error instanceof Error ? error.message : String(error));
      log.error(`Scheduled run failed: ${message.split("\n")[0]}`, {
        exit_code: exitCodeOf(error),
      });
      if (rethrow) throw error;
    }
  });
}
