/**
 * Runs as the HTTP API shows them, read from the run folders (`<data dir>/runs/<id>/manifest.json`):
 * a short summary per run for `GET /runs`, the whole manifest for `GET /runs/:id`.
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Schedule } from "../streams/names.ts";
import { readRunLock } from "../lock.ts";
import {
  listRunIds,
  type Manifest,
  openRun,
  type Status,
  STEP_NAMES,
  type StepName,
  type UserRecord,
} from "../run.ts";

/** One step of a {@link RunSummary}. */
export interface StepSummary {
  /** As in the manifest; `interrupted` for a step left `running` by a killed process. */
  status: Status | "interrupted";
  duration_ms?: number;
  counts?: Record<string, number>;
  error?: string;
  exit_code?: number;
}

/** What `GET /runs` shows of a run. */
export interface RunSummary {
  run_id: string;
  snapshot_date: string;
  profile: string;
  /**
   * The manifest's status; a run whose manifest still says `running` but holds no lock (its
   * process was killed) shows `interrupted` — resume it with `deno task pipeline --resume`.
   */
  status: Status | "interrupted";
  /** Whether this run holds the run lock right now. */
  active: boolean;
  created_at: string;
  updated_at: string;
  steps: Partial<Record<StepName, StepSummary>>;
  /** The streams the run carries, and its schedule (`daily`, `poll` or `import`). */
  streams: string[];
  schedule: Schedule;
  /** Share of top tracks that got audio features (from the enrich step), when known. */
  coverage: number | null;
  /**
   * 1 when recently played came back as a full page still newer than the cursor: plays between
   * the previous poll and this one may be lost (poll more often).
   */
  possible_gap: number;
  warnings: number;
  /** Each account's outcome per step (`deno task auth --status` lists the accounts). */
  users: Record<string, UserRecord>;
}

/** What `GET /runs/:id` shows: the summary plus the whole manifest. */
export interface RunDetail extends RunSummary {
  manifest: Manifest;
}

/** Options of {@link listRuns}. */
export interface ListRunsOptions {
  /** Most runs returned, newest first (default 20). */
  limit?: number;
}

/** The most recent runs, newest first. Runs whose manifest cannot be read are skipped. */
export async function listRuns(
  config: Config,
  options: ListRunsOptions = {},
): Promise<RunSummary[]> {
  const { limit = 20 } = options;
  const activeId = (await readRunLock(config))?.run_id;
  const out: RunSummary[] = [];
  for (const id of (await listRunIds(config)).toReversed()) {
    if (out.length >= limit) break;
    try {
      const run = await openRun(config, { runId: id });
      out.push(summarize(run.manifest, activeId));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
    }
  }
  return out;
}

/**
 * One run with its manifest, or `undefined` when there is no such run; a corrupt manifest is a
 * `ConfigError`. `id` must already be a valid run id (see `validateRunId`): it names a folder.
 */
export async function getRun(config: Config, id: string): Promise<RunDetail | undefined> {
  try {
    await Deno.stat(join(config.runsDir, id, "manifest.json"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const { manifest } = await openRun(config, { runId: id });
  const activeId = (await readRunLock(config))?.run_id;
  return { ...summarize(manifest, activeId), manifest };
}

/** The summary of a manifest; `activeId` is the run holding the lock, if any. */
export function summarize(manifest: Manifest, activeId: string | undefined): RunSummary {
  const active = activeId === manifest.run_id;
  const steps: Partial<Record<StepName, StepSummary>> = {};
  for (const name of STEP_NAMES) {
    const record = manifest.steps[name];
    if (!record) continue;
    steps[name] = {
      status: !active && record.status === "running" ? "interrupted" : record.status,
      ...(record.duration_ms === undefined ? {} : { duration_ms: record.duration_ms }),
      ...(record.counts ? { counts: record.counts } : {}),
      ...(record.error ? { error: record.error } : {}),
      ...(record.exit_code === undefined ? {} : { exit_code: record.exit_code }),
    };
  }
  return {
    run_id: manifest.run_id,
    snapshot_date: manifest.snapshot_date,
    profile: manifest.profile,
    status: !active && manifest.status === "running" ? "interrupted" : manifest.status,
    active,
    created_at: manifest.created_at,
    updated_at: manifest.updated_at,
    steps,
    streams: manifest.streams ?? ["top_tracks"],
    schedule: manifest.schedule ?? "daily",
    coverage: coverageOf(manifest),
    possible_gap: manifest.steps.fetch?.counts?.possible_gap ?? 0,
    warnings: manifest.warnings.length,
    users: manifest.users ?? {},
  };
}

/** The enrich step's coverage (0..1), whichever way it reports it. */
function coverageOf(manifest: Manifest): number | null {
  const enrich = manifest.steps.enrich;
  if (!enrich) return null;
  const fromSummary = enrich.summary?.coverage;
  if (typeof fromSummary === "number") return fromSummary;
  if (typeof fromSummary === "object" && fromSummary !== null) {
    const c = fromSummary as Record<string, unknown>;
    for (const key of ["ratio", "share", "coverage"]) {
      if (typeof c[key] === "number") return c[key] as number;
    }
  }
  const counts = enrich.counts ?? {};
  const total = counts.tracks ?? counts.rows;
  const matched = counts.with_features ?? counts.matched ?? counts.enriched;
  if (typeof total === "number" && typeof matched === "number" && total > 0) {
    return Math.round((matched / total) * 1000) / 1000;
  }
  return null;
}
