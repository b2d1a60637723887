/**
 * The step registry: each pipeline step lives in `lib/steps/<name>.ts` and is imported only when
 * it runs, so a task never loads another step's heavy dependencies (AWS SDK, snowflake-sdk,
 * DuckDB). {@link runStep} records the step in the run manifest.
 * @module
 */

import type { Config } from "./config.ts";
import { exitCodeOf } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Run, StepName } from "./run.ts";
import { keySafeUser } from "./streams/stream.ts";

/** What a step receives. */
export interface StepContext {
  config: Config;
  run: Run;
  log: Logger;
  /** Step-specific flags parsed from the command line (e.g. `{ "full-refresh": true }`). */
  flags: Record<string, string | boolean | undefined>;
  /** Aborted when the process is asked to stop. */
  signal?: AbortSignal;
}

/** What a step reports; stored in the manifest. */
export interface StepOutcome {
  counts?: Record<string, number>;
  summary?: Record<string, unknown>;
  /** Output files relative to the run folder. */
  outputs?: string[];
  /** What the step carried of each user, by Spotify user id (recorded per account). */
  users?: Record<string, { rows?: number; files?: number }>;
}

/** A step implementation. */
export type StepFn = (ctx: StepContext) => Promise<StepOutcome>;

const LOADERS: Record<StepName, () => Promise<StepFn>> = {
  import: async () => (await import("./steps/import.ts")).importStep,
  fetch: async () => (await import("./steps/fetch.ts")).fetchStep,
  enrich: async () => (await import("./steps/enrich.ts")).enrichStep,
  write: async () => (await import("./steps/write.ts")).writeStep,
  upload: async () => (await import("./steps/upload.ts")).uploadStep,
  load: async () => (await import("./steps/load.ts")).loadStep,
  transform: async () => (await import("./steps/transform.ts")).transformStep,
  report: async () => (await import("./steps/report.ts")).reportStep,
};

/**
 * Runs one step, recording status, duration, counts, any error, and the size and SHA-256 of each
 * output (checked by a resume before it skips the step) in the run manifest.
 */
export async function runStep(name: StepName, ctx: StepContext): Promise<StepOutcome> {
  const { run, log } = ctx;
  const started = performance.now();
  run.manifest.steps[name] = { status: "running", started_at: new Date().toISOString() };
  run.manifest.status = "running";
  await run.save();
  const stepLog = log.child({ step: name });
  try {
    const step = await LOADERS[name]();
    const outcome = await step({ ...ctx, log: stepLog });
    // Outputs are in place (written to a temp name, then renamed) before the manifest says
    // succeeded; their size and SHA-256 let a resume check them before skipping the step.
    const files = await run.digest(outcome.outputs ?? []);
    const record = run.manifest.steps[name]!;
    Object.assign(record, {
      status: "succeeded",
      finished_at: new Date().toISOString(),
      duration_ms: Math.round(performance.now() - started),
      counts: outcome.counts,
      summary: outcome.summary,
      outputs: outcome.outputs,
      files,
    });
    recordUsers(run, name, outcome);
    await run.save();
    return outcome;
  } catch (error) {
    const record = run.manifest.steps[name]!;
    Object.assign(record, {
      status: "failed",
      finished_at: new Date().toISOString(),
      duration_ms: Math.round(performance.now() - started),
      error: log.redact(error instanceof Error ? error.message : String(error)).split("\n")[0],
      exit_code: exitCodeOf(error),
    });
    run.manifest.status = "failed";
    for (const u of Object.values(run.manifest.users ?? {})) {
      if (u.status !== "failed") u.steps[name] = { status: "failed", error: record.error };
    }
    await run.save().catch(() => {});
    throw error;
  }
}

/** What a step that reports per user carried of a user it did not name. */
const NOTHING: Partial<Record<StepName, { rows?: number; files?: number }>> = {
  enrich: { rows: 0 },
  write: { rows: 0, files: 0 },
  upload: { files: 0 },
  load: { files: 0, rows: 0 },
};

/** Each account's part in a finished step (fetch records its own: who failed and why). */
function recordUsers(run: Run, step: StepName, outcome: StepOutcome): void {
  if (step === "fetch") return;
  for (const u of Object.values(run.manifest.users ?? {})) {
    if (u.status === "failed" || u.user_id === undefined) {
      u.steps[step] = { status: "skipped" };
      continue;
    }
    // steps that know files only report them by the key-safe id their keys carry
    const part = outcome.users?.[u.user_id] ?? outcome.users?.[keySafeUser(u.user_id)];
    u.steps[step] = { status: "succeeded", ...(outcome.users ? part ?? NOTHING[step] : {}) };
  }
}
