/**
 * Starting a pipeline run in the background — what `POST /run-top-tracks` and the cron handler
 * share. The run takes the run lock (`lib/lock.ts`) like every other way of starting one, so a
 * second trigger while a run is going fails with a `LockedError` before any run folder exists.
 * @module
 */

import type { Config } from "../config.ts";
import { exitCodeOf, PipelineError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type PipelineOptions, type PipelineResult, runPipeline } from "../pipeline.ts";
import type { Run, StepName } from "../run.ts";
import type { Schedule } from "../streams/names.ts";

/** What a trigger may ask for (the JSON body of `POST /run-top-tracks`). */
export interface TriggerParams {
  /** Snapshot date of the new run (default: today, UTC). */
  date?: string;
  /** Last step to run (default: transform). */
  to?: StepName;
  /** dbt: rebuild incremental models. */
  fullRefresh?: boolean;
  /** `poll`: the poll streams up to the load (the poll schedule); default the daily run. */
  schedule?: Exclude<Schedule, "import">;
  /** The accounts of the run (default every authorized one). */
  accounts?: string[];
}

/** How a background run ended. */
export interface RunOutcome {
  run: Run;
  /** 0 when it succeeded, otherwise the documented exit code of its error. */
  exitCode: number;
  /** One-line cause of the failure (redacted). */
  error?: string;
}

/** A run that has started. */
export interface StartedRun {
  run: Run;
  /** Settles when the run ends; never rejects. */
  done: Promise<RunOutcome>;
}

/** The pipeline function (injectable for tests). */
export type PipelineFn = (config: Config, options: PipelineOptions) => Promise<PipelineResult>;

/** Options of {@link startRun}. */
export interface StartRunOptions {
  log: Logger;
  params?: TriggerParams;
  /** Aborts the run between steps (server shutdown). */
  signal?: AbortSignal;
  /** Default: {@link runPipeline}. */
  pipeline?: PipelineFn;
}

/**
 * Starts a pipeline run and resolves once the run exists (its id known), leaving it running.
 * Rejects when it cannot start: `LockedError` when another run holds the lock, `ConfigError` for
 * bad parameters.
 */
export function startRun(config: Config, options: StartRunOptions): Promise<StartedRun> {
  const { log, params = {}, signal, pipeline = runPipeline } = options;
  return new Promise<StartedRun>((resolve, reject) => {
    let started: Run | undefined;
    let resolveDone!: (outcome: RunOutcome) => void;
    const done = new Promise<RunOutcome>((r) => (resolveDone = r));
    pipeline(config, {
      log,
      date: params.date,
      to: params.to,
      schedule: params.schedule,
      accounts: params.accounts,
      flags: params.fullRefresh ? { "full-refresh": true } : {},
      signal,
      onRun: (run) => {
        started = run;
        resolve({ run, done });
      },
    }).then(
      ({ run }) => {
        // some accounts failed while the others' data landed: the worst failure's code
        const failures = run.userFailures;
        if (failures.length === 0) return resolveDone({ run, exitCode: 0 });
        const message = `Run ${run.id} is partial: ${
          failures.map(([name, u]) => `user ${name}: ${u.error}`).join("; ")
        }`;
        log.error(message, { run_id: run.id, exit_code: run.exitCode });
        resolveDone({ run, exitCode: run.exitCode, error: message });
      },
      (error: unknown) => {
        if (started === undefined) return reject(error);
        const exitCode = exitCodeOf(error);
        const message = log.redact(error instanceof Error ? error.message : String(error))
          .split("\n")[0]!;
        if (error instanceof PipelineError) {
          log.error(`Run ${started.id} failed: ${message}`, {
            run_id: started.id,
            exit_code: exitCode,
          });
        } else {
          log.error(`Run ${started.id} failed with an unexpected error: ${message}`, {
            run_id: started.id,
            exit_code: exitCode,
            stack: error instanceof Error ? error.stack : undefined,
          });
        }
        resolveDone({ run: started, exitCode, error: message });
      },
    );
  });
}
