/**
 * The schedules: `Deno.cron("top-tracks", <PIPELINE_SCHEDULE>, job)` for the daily pipeline —
 * the same registration for `serve --cron` on a server and for the Deno Deploy entry — and
 * `Deno.cron("recently-played", <PIPELINE_POLL_SCHEDULE>, job)` for the poll. Schedules are UTC.
 *
 * `Deno.cron` needs `--unstable-cron` outside Deno Deploy (the `serve` task passes it).
 * @module
 */

import type { Config } from "../config.ts";
import { parseCron } from "../cron_expr.ts";
import { ConfigError, exitCodeOf, LockedError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** Name of the daily cron job (shown in Deno Deploy's dashboard). */
export const CRON_NAME = "top-tracks";
/** Name of the poll cron job (recently played). */
export const POLL_CRON_NAME = "recently-played";

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
  /** Which schedule: `daily` (default; PIPELINE_SCHEDULE) or `poll` (PIPELINE_POLL_SCHEDULE). */
  kind?: "daily" | "poll";
  /**
   * Rethrow a failed run after logging it, so the cron runtime records the execution as failed
   * (Deno Deploy's dashboard shows it as Error). A skipped run (another one in progress) is not a
   * failure.
   */
  rethrow?: boolean;
}

/**
 * Registers the job on `config.serve.schedule` (or, `kind: "poll"`, `config.serve.pollSchedule`).
 * Call it synchronously while the module loads: Deno Deploy only picks up crons registered at
 * start-up.
 * @returns the promise `Deno.cron` returns (settles when the schedule is stopped).
 */
export function registerSchedule(
  config: Config,
  options: RegisterScheduleOptions,
): Promise<void> {
  const { log, job, signal, rethrow = false, kind = "daily" } = options;
  const name = kind === "poll" ? POLL_CRON_NAME : CRON_NAME;
  const setting = kind === "poll" ? "PIPELINE_POLL_SCHEDULE" : "PIPELINE_SCHEDULE";
  const cron = options.cron ?? denoCron();
  if (!cron) {
    throw new ConfigError(
      "Deno.cron is not available in this runtime: run with --unstable-cron (the `serve` task does)",
    );
  }
  const schedule = kind === "poll" ? config.serve.pollSchedule : config.serve.schedule;
  const denoSchedule = toDenoCronSchedule(schedule);
  let registered: Promise<void>;
  try {
    registered = cron(name, denoSchedule, { backoffSchedule: [], signal }, handler);
  } catch (error) {
    // A schedule the config accepted but Deno.cron's parser refuses: a bad setting, not a bug.
    throw new ConfigError(
      `${setting}="${schedule}" is refused by Deno.cron (${
        error instanceof Error ? error.message : String(error)
      }): expected 5 fields, minute hour day month weekday, as in crontab(5)`,
    );
  }
  log.info(`Schedule "${name}" registered: ${schedule} (UTC)`, {
    schedule,
    ...(denoSchedule === schedule ? {} : { deno_cron: denoSchedule }),
  });
  return registered;

  async function handler(): Promise<void> {
    log.info(`Schedule "${name}" fired`, { schedule });
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
  }
}

/**
 * `PIPELINE_SCHEDULE` (crontab(5) numbering: weekday 0-7, 0 and 7 = Sunday) as `Deno.cron`
 * reads it: its parser numbers weekdays like Quartz, 1 = Sunday … 7 = Saturday, and refuses 0
 * (denoland/deno#21555). Only the weekday field changes: it becomes the list of the same days
 * (`1-5`, Monday to Friday, becomes `2,3,4,5,6`); a field it cannot read is passed on unchanged.
 * @example toDenoCronSchedule("30 6 * * 1-5") // "30 6 * * 2,3,4,5,6"
 */
export function toDenoCronSchedule(schedule: string): string {
  const fields = schedule.trim().split(/\s+/);
  const weekdays = parseCron(schedule)?.[4];
  if (!weekdays || fields[4] === "*") return schedule;
  const days = [...new Set(weekdays.map((d) => d % 7))].sort((a, b) => a - b);
  const list = days.length === 7 ? "*" : days.map((d) => d + 1).join(",");
  return [...fields.slice(0, 4), list].join(" ");
}
