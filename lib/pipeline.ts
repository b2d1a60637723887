/**
 * The pipeline: runs the steps in order in one process, on a new run or continuing one
 * (`--run`, `--resume`, `--from`, `--to`), and prints a summary at the end.
 * @module
 */

import { join } from "node:path";
import type { Config } from "./config.ts";
import { CancelledError, ConfigError } from "./errors.ts";
import { acquireRunLock, type RunLock } from "./lock.ts";
import type { Logger } from "./log.ts";
import {
  createRun,
  type ImportRequest,
  newRunId,
  openRun,
  type Run,
  SCHEDULE_STEPS,
  STEP_NAMES,
  type StepName,
} from "./run.ts";
import { DEFAULT_ACCOUNT, inAccountWords, listAccounts } from "./spotify/accounts.ts";
import { refreshTokenWarning } from "./spotify/token_store.ts";
import { runStep } from "./steps.ts";
import { type Schedule, STREAM_NAMES, type StreamName } from "./streams/names.ts";

/** Options of {@link runPipeline}. */
export interface PipelineOptions {
  log: Logger;
  /** Snapshot date of a new run. */
  date?: string;
  /** Continue this run. */
  runId?: string;
  /** Continue the latest unfinished run (or `runId`), skipping finished steps. */
  resume?: boolean;
  from?: string;
  to?: string;
  /** Streams of a new run (default: `config.streams`, narrowed to the schedule's). */
  streams?: readonly StreamName[];
  /** `daily` (default: fetch → transform), `poll` (the poll streams, fetch → load) or `import`. */
  schedule?: Schedule;
  /** An import run's request (a new import run). */
  import?: ImportRequest;
  /** The accounts of a new run (`--user`; default every authorized one). */
  accounts?: readonly string[];
  /** Extra flags passed to every step (e.g. `full-refresh`). */
  flags?: Record<string, string | boolean | undefined>;
  signal?: AbortSignal;
  /** Called once the run exists (e.g. to report its id before the steps finish). */
  onRun?: (run: Run) => void;
  /**
   * Run this one step (a single-step task, `deno task enrich`): on the latest run of any schedule
   * (or `runId`), or — fetch without `runId` — a new run; it runs even where the run's schedule
   * does not plan it.
   */
  only?: StepName;
}

/** Result of a pipeline run. */
export interface PipelineResult {
  run: Run;
  /** Steps run in this invocation (skipped ones excluded). */
  ran: StepName[];
  /** Steps skipped because they had already finished (resume). */
  skipped: StepName[];
}

function stepName(value: string | undefined, flag: string): StepName | undefined {
  if (value === undefined) return undefined;
  if ((STEP_NAMES as readonly string[]).includes(value)) return value as StepName;
  throw new ConfigError(
    `${flag} "${value}" is not a step: expected one of ${STEP_NAMES.join(", ")}`,
  );
}

/** Runs the pipeline's steps in order; throws the first step's error. */
export async function runPipeline(
  config: Config,
  options: PipelineOptions,
): Promise<PipelineResult> {
  const { log, only } = options;
  const schedule = options.schedule ?? "daily";
  const planned = SCHEDULE_STEPS[schedule];
  const from = only ?? stepName(options.from, "--from") ?? planned[0]!;
  const to = only ?? stepName(options.to, "--to") ?? planned.at(-1)!;
  const steps = STEP_NAMES.slice(STEP_NAMES.indexOf(from), STEP_NAMES.indexOf(to) + 1);
  if (steps.length === 0) throw new ConfigError(`--from ${from} comes after --to ${to}`);
  const continuing = options.runId !== undefined || options.resume === true ||
    from !== planned[0];
  // what only a new run can take (a run keeps its date, streams and accounts)
  const drop = options.resume ? "drop --run/--resume" : "drop --run";
  if (options.date !== undefined && continuing) {
    throw new ConfigError(
      only
        ? `--date cannot change an existing run's snapshot date (${drop})`
        : `--date only applies to a new run (${drop})`,
    );
  }
  if (options.streams !== undefined && continuing) {
    throw new ConfigError(`--streams applies to a new run (${drop})`);
  }
  if (options.accounts !== undefined && continuing) {
    throw new ConfigError(`--user applies to a new run (${drop}: a run keeps its accounts)`);
  }
  const streams = options.streams ?? config.streams;

  // One run at a time (lib/lock.ts): a second run fails here with LockedError (exit 6).
  const newId = continuing ? undefined : newRunId();
  const lock = await acquireRunLock(config, {
    runId: options.runId ?? newId,
    onStale: (held) =>
      log.warn(`Took over a stale lock left by pid ${held.pid} (run ${held.run_id})`),
  });
  try {
    return await runSteps(config, { ...options, streams, schedule }, {
      steps,
      continuing,
      newId,
      lock,
    });
  } finally {
    await lock.release();
  }
}

async function runSteps(
  config: Config,
  options: PipelineOptions,
  { steps, continuing, newId, lock }: {
    steps: StepName[];
    continuing: boolean;
    newId?: string;
    lock: RunLock;
  },
): Promise<PipelineResult> {
  const { log } = options;
  const run = continuing
    ? await openRun(config, {
      runId: options.runId,
      unfinished: options.resume && !options.runId,
      // `pipeline --resume` continues the latest daily run, `poll --resume` the latest poll; a
      // single step the latest run of any schedule
      schedule: options.only ? undefined : options.schedule,
    })
    : await createRun(config, {
      date: options.date,
      id: newId,
      streams: options.streams,
      schedule: options.schedule,
      import: options.import,
      accounts: options.accounts,
    });
  if (lock.info.run_id !== run.id) await lock.setRunId(run.id);
  options.onRun?.(run);
  const runLog = log.child({ run_id: run.id });
  runLog.info(
    `${
      options.only ?? (run.schedule === "daily" ? "pipeline" : run.schedule)
    }: run ${run.id} (snapshot ${run.snapshotDate}, profile ${config.profile}, streams ${
      run.streams.join(", ")
    }, steps ${steps.filter((s) => options.only || run.plannedSteps.includes(s)).join(" → ")})`,
  );

  if (config.spotify.source === "api" && steps.includes("fetch")) {
    // Spotify ends refresh tokens 6 months after consent: say so from 30 days before.
    const accounts = await listAccounts(config).catch(() => []);
    for (const account of accounts) {
      const warning = await refreshTokenWarning(config, { tokensFile: account.tokensFile });
      if (!warning) continue;
      const words = account.name === DEFAULT_ACCOUNT
        ? warning
        : `user ${account.name}: ${inAccountWords(account.name, warning)}`;
      runLog.warn(words);
      run.warn(words);
    }
  }

  const ran: StepName[] = [];
  const skipped: StepName[] = [];
  // On resume, a finished step is skipped only while its outputs check out; from the first one
  // that does not, that step and every later one run again.
  let redoing = false;
  for (const step of steps) {
    if (options.resume && !redoing && run.finished(step)) {
      const stale = await run.staleReason(step);
      if (stale === undefined) {
        skipped.push(step);
        runLog.info(`${step}: already finished in this run, outputs verified, skipped`, { step });
        continue;
      }
      redoing = true;
      runLog.warn(`${step}: ${stale}; redoing ${step} and the steps after it`, { step });
    }
    if (!options.only && !run.plannedSteps.includes(step)) continue;
    if (options.signal?.aborted) {
      // stopped on purpose, between steps: the finished steps stand, --resume continues
      run.manifest.status = "partial";
      run.warn(`cancelled before ${step}`);
      await run.save();
      throw new CancelledError(`Run ${run.id} cancelled before ${step}`);
    }
    if (options.resume) await removeTempFiles(run.path(step));
    await runStep(step, {
      config,
      run,
      log: runLog,
      flags: options.flags ?? {},
      signal: options.signal,
    });
    ran.push(step);
  }
  run.manifest.status = run.endStatus;
  await run.save();
  return { run, ran, skipped };
}

/**
 * Removes the temporary files (`.<random>.<name>.tmp`, see `lib/fs_atomic.ts`) a killed process
 * left in a step's folder before the step runs again. Only the pipeline does this, under the run
 * lock, so no writer is using them.
 */
async function removeTempFiles(dir: string): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return;
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await removeTempFiles(path);
    else if (entry.isFile && entry.name.startsWith(".") && entry.name.endsWith(".tmp")) {
      await Deno.remove(path).catch(() => {});
    }
  }
}

/** A readable summary of a run (what the pipeline prints at the end). */
export function formatSummary(run: Run, config: Config): string {
  const lines: string[] = [];
  const m = run.manifest;
  lines.push(
    "",
    `Run ${m.run_id} — ${
      run.schedule === "daily" ? "snapshot" : run.schedule
    } ${m.snapshot_date} — ${m.status}`,
    `  streams: ${run.streams.join(", ")}`,
  );
  for (const step of STEP_NAMES) {
    const r = m.steps[step];
    if (!r) continue;
    // totals and each stream's rows here; every per-stream count is in the manifest
    const counts = Object.entries(r.counts ?? {})
      .filter(([k]) => {
        const stream = STREAM_NAMES.find((n) => k.startsWith(`${n}_`));
        return stream === undefined || k === `${stream}_rows`;
      })
      .map(([k, v]) => `${k}=${v}`).join(" ");
    const secs = r.duration_ms === undefined ? "" : `${(r.duration_ms / 1000).toFixed(2)}s`;
    lines.push(`  ${step.padEnd(9)} ${r.status.padEnd(9)} ${secs.padStart(7)}  ${counts}`);
  }
  const summaryText = (step: StepName) => m.steps[step]?.summary?.text;
  for (const step of STEP_NAMES) {
    const text = summaryText(step);
    if (typeof text === "string" && text.trim()) lines.push("", text.trimEnd());
  }
  const users = Object.entries(m.users ?? {});
  if (users.length > 1 || users.some(([, u]) => u.status !== "succeeded")) {
    lines.push("", "Users:");
    for (const [name, u] of users) {
      const steps = STEP_NAMES.filter((s) => u.steps[s]).map((s) => {
        const r = u.steps[s]!;
        const what = r.rows !== undefined
          ? `${r.rows} rows`
          : r.files !== undefined
          ? `${r.files} files`
          : "ok";
        return `${s} ${r.status === "succeeded" ? what : r.status}`;
      });
      lines.push(
        `  ${name.padEnd(12)} ${u.status.padEnd(9)} ${u.user_id ?? ""}${
          steps.length ? `  ${steps.join(", ")}` : ""
        }`,
      );
      if (u.status !== "succeeded") {
        lines.push(`      ${u.error}${u.hint ? `\n      ${u.hint}` : ""}`);
      }
    }
  }
  if (config.warehouse.kind === "duckdb") lines.push("", `Warehouse: ${config.warehouse.path}`);
  if (m.warnings.length) lines.push("", "Warnings:", ...m.warnings.map((w) => `  - ${w}`));
  lines.push(`Run folder: ${run.dir}`);
  const report = m.steps.report;
  if (report?.status === "succeeded" && typeof report.summary?.path === "string") {
    const c = report.counts ?? {};
    lines.push(
      `Report: ${report.summary.path} (${c.charts ?? 0} charts${
        c.charts_empty ? `, ${c.charts_empty} waiting for data` : ""
      })`,
    );
  }
  return lines.join("\n");
}
