/**
 * Run folders: `<data dir>/runs/<run_id>/` holds each step's output in `<step>/` and a
 * `manifest.json` saying which steps finished, with counts and durations. Every file is written to
 * a temporary name and renamed, so any step can be re-run alone and a failed run resumes.
 * @module
 */

import { isAbsolute, join, relative, resolve } from "node:path";
import type { Config, Profile } from "./config.ts";
import { ConfigError, IntegrityError, StorageError } from "./errors.ts";
import { isRecord } from "./json.ts";
import {
  NotARegularFileError,
  readRegularFile,
  readRegularTextFile,
  writeFileAtomic,
  writeJsonAtomic,
} from "./fs_atomic.ts";
import { sha256Hex } from "./sha256.ts";
import { type Schedule, SCHEDULES, STREAM_NAMES, type StreamName } from "./streams/names.ts";
import { streamsFor } from "./streams/registry.ts";

/**
 * Names of the steps, in order: `import` reads a privacy export (the import schedule's first
 * step, in place of fetch → enrich → write), the others are the pipeline's.
 */
export const STEP_NAMES = [
  "import",
  "fetch",
  "enrich",
  "write",
  "upload",
  "load",
  "transform",
  "report",
] as const;
/** A pipeline step. */
export type StepName = typeof STEP_NAMES[number];

/**
 * The steps each schedule runs: the daily pipeline fetch → transform, a poll up to the load, an
 * import its own first step, then upload and load (`deno task transform` builds the models).
 */
export const SCHEDULE_STEPS: Readonly<Record<Schedule, readonly StepName[]>> = {
  daily: ["fetch", "enrich", "write", "upload", "load", "transform", "report"],
  poll: ["fetch", "enrich", "write", "upload", "load"],
  import: ["import", "upload", "load"],
};

/** Status of a step or run (`partial`: a run stopped early on purpose, e.g. `--to write`). */
export type Status = "running" | "succeeded" | "failed" | "partial";

/** Size and SHA-256 of one output file, recorded when its step finished (checked on resume). */
export interface OutputDigest {
  bytes: number;
  sha256: string;
}

/** What the manifest records about one step. */
export interface StepRecord {
  status: Status;
  started_at: string;
  finished_at?: string;
  duration_ms?: number;
  /** Counts the step reports (rows, files, tests...). */
  counts?: Record<string, number>;
  /** Free-form details the step reports (coverage, receipts...). */
  summary?: Record<string, unknown>;
  /** Output files, relative to the run folder. */
  outputs?: string[];
  /** Size and SHA-256 of each output when the step finished, by relative path. */
  files?: Record<string, OutputDigest>;
  /** One-line cause of a failure (already redacted). */
  error?: string;
  exit_code?: number;
}

/** One account's part in a step. */
export interface UserStepRecord {
  /** `skipped`: the account had failed before this step (nothing of it to carry). */
  status: "succeeded" | "failed" | "skipped";
  rows?: number;
  files?: number;
  /** Why the account failed here, or which of its streams stopped (redacted, one line). */
  error?: string;
}

/** What the manifest records about one account of the run (`users`, by account name). */
export interface UserRecord {
  /** Its Spotify user id, once known. */
  user_id?: string;
  /** `partial`: some of its streams stopped (a missing scope, the daily quota). */
  status: "succeeded" | "partial" | "failed";
  /** The failure, redacted, one line; and its exit code and the fix. */
  error?: string;
  exit_code?: number;
  hint?: string;
  steps: Partial<Record<StepName, UserStepRecord>>;
}

/** The paths an import run reads and whose history it is. */
export interface ImportRequest {
  /** Absolute paths: files, folders or zips. */
  paths: string[];
  user_id: string;
}

/** The run manifest (`manifest.json`). */
export interface Manifest {
  version: 1;
  run_id: string;
  snapshot_date: string;
  profile: Profile;
  created_at: string;
  updated_at: string;
  status: Status;
  /** The streams the run carries (manifests from before streams: `top_tracks` only). */
  streams?: StreamName[];
  /** `daily` (the pipeline, default), `poll` (the poll streams, up to the load) or `import`. */
  schedule?: Schedule;
  /** What an import run reads (so `import --resume` reads the same). */
  import?: ImportRequest;
  /** The accounts named with `--user` (unset: every authorized account). */
  accounts?: string[];
  /** Each account's outcome per step, by account name (set by fetch). */
  users?: Record<string, UserRecord>;
  steps: Partial<Record<StepName, StepRecord>>;
  warnings: string[];
}

const RUN_ID = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Throws a {@link ConfigError} unless `id` is a run id made by {@link newRunId}. */
export function validateRunId(id: string): string {
  if (!RUN_ID.test(id)) {
    throw new ConfigError(
      `--run "${id}" is not a run id: expected the form 20261126T120000Z-ab12 (see the folders in runs/)`,
    );
  }
  return id;
}

/** The earliest snapshot date accepted: the day Spotify launched. */
export const FIRST_DATE = "2008-10-07";

/**
 * Throws a {@link ConfigError} unless `date` is a real calendar date `YYYY-MM-DD` from Spotify's
 * launch ({@link FIRST_DATE}) to tomorrow (UTC; a day ahead for clocks and time zones): a
 * snapshot of another day is a typo, never data.
 */
export function validateDate(date: string, what = "--date", now: Date = new Date()): string {
  const d = new Date(`${date}T00:00:00Z`);
  if (date === "") throw new ConfigError(`${what} is empty: expected a calendar date YYYY-MM-DD`);
  if (!DATE.test(date) || Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== date) {
    throw new ConfigError(`${what} "${date}" is not valid: expected a calendar date YYYY-MM-DD`);
  }
  const tomorrow = new Date(now.getTime() + 86_400_000).toISOString().slice(0, 10);
  if (date < FIRST_DATE || date > tomorrow) {
    throw new ConfigError(
      `${what} "${date}" is out of range: expected a date from ${FIRST_DATE} (Spotify's launch) to ${tomorrow}`,
    );
  }
  return date;
}

/** A new run id: UTC time to the second (so ids sort by time) and 4 random hex digits. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const rand = Array.from(
    crypto.getRandomValues(new Uint8Array(2)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${stamp}-${rand}`;
}

/** A run folder with its manifest. */
export class Run {
  readonly id: string;
  readonly dir: string;
  manifest: Manifest;

  constructor(dir: string, manifest: Manifest) {
    this.id = manifest.run_id;
    this.dir = dir;
    this.manifest = manifest;
  }

  /** The snapshot date (UTC) this run collects. */
  get snapshotDate(): string {
    return this.manifest.snapshot_date;
  }

  /** The streams this run carries. */
  get streams(): StreamName[] {
    return this.manifest.streams ?? ["top_tracks"];
  }

  /** The run's schedule (`daily` unless it is a poll). */
  get schedule(): Schedule {
    return this.manifest.schedule ?? "daily";
  }

  /** The steps the run's schedule runs. */
  get plannedSteps(): readonly StepName[] {
    return SCHEDULE_STEPS[this.schedule];
  }

  /** Whether every step of the run's schedule has finished. */
  get complete(): boolean {
    return this.plannedSteps.every((s) => this.finished(s));
  }

  /** The accounts that failed, or lost a stream, in this run (by name). */
  get userFailures(): [string, UserRecord][] {
    return Object.entries(this.manifest.users ?? {}).filter(([, u]) => u.status !== "succeeded");
  }

  /**
   * The run's exit code: 0, or (when some accounts failed while the others' data landed) that
   * of the worst failure — an unexpected error first, then the highest code.
   */
  get exitCode(): number {
    const codes = this.userFailures.map(([, u]) => u.exit_code ?? 1);
    if (codes.length === 0) return 0;
    return codes.includes(1) ? 1 : Math.max(...codes);
  }

  /** The status a run ends with once its steps are done: partial while anything is missing. */
  get endStatus(): Status {
    return this.complete && this.userFailures.length === 0 ? "succeeded" : "partial";
  }

  /**
   * Absolute path of a file inside the run folder.
   * @throws IntegrityError when the parts lead outside the run folder (e.g. a tampered `file`).
   */
  path(...parts: string[]): string {
    const path = resolve(this.dir, ...parts);
    const rel = relative(this.dir, path);
    if (rel === ".." || rel.startsWith("../") || isAbsolute(rel)) {
      throw new IntegrityError(
        `Run ${this.id}: "${parts.join("/")}" is outside the run folder ${this.dir}`,
      );
    }
    return path;
  }

  /** Saves the manifest atomically. */
  async save(): Promise<void> {
    this.manifest.updated_at = new Date().toISOString();
    await writeJsonAtomic(join(this.dir, "manifest.json"), this.manifest);
  }

  /** Writes a step output (JSON) atomically and returns its path relative to the run folder. */
  async writeJson(step: StepName, name: string, value: unknown): Promise<string> {
    const rel = join(step, name);
    await writeJsonAtomic(this.path(rel), value);
    return rel;
  }

  /** Writes a step output (bytes or text) atomically and returns its relative path. */
  async writeFile(step: StepName, name: string, data: Uint8Array | string): Promise<string> {
    const rel = join(step, name);
    await writeFileAtomic(this.path(rel), data);
    return rel;
  }

  /**
   * Reads a previous step's JSON output; a missing or corrupt file is a {@link ConfigError} naming
   * it and saying how to recover.
   */
  async readJson(step: StepName, name: string): Promise<unknown> {
    const file = this.path(step, name);
    let text: string;
    try {
      text = await readRegularTextFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ConfigError(
          `Run ${this.id} has no ${step} output (${step}/${name}): run \`deno task ${step} --run ${this.id}\` first`,
        );
      }
      if (error instanceof NotARegularFileError) {
        throw new ConfigError(
          `Run ${this.id}: ${file} is not a regular file (a folder, a FIFO or a device is in its place)`,
          {
            hint:
              `Remove it and redo that step: \`deno task pipeline --run ${this.id} --from ${step}\`.`,
          },
        );
      }
      throw error;
    }
    try {
      // unknown until its reader checks it (lib/streams/handoff.ts)
      return JSON.parse(text);
    } catch (error) {
      throw new ConfigError(
        `Run ${this.id}: ${file} is not valid JSON (${(error as Error).message})`,
        {
          hint:
            `Redo that step with \`deno task pipeline --run ${this.id} --from ${step}\`, or start a new run.`,
        },
      );
    }
  }

  /** Size and SHA-256 of output files (relative paths), as recorded in the manifest. */
  async digest(outputs: readonly string[]): Promise<Record<string, OutputDigest>> {
    const files: Record<string, OutputDigest> = {};
    for (const rel of outputs) {
      const data = await readRegularFile(this.path(rel));
      files[rel] = { bytes: data.length, sha256: await sha256Hex(data) };
    }
    return files;
  }

  /**
   * Why a finished step cannot be skipped on resume, or `undefined` when it can: every output
   * recorded in the manifest must still be there with the same size and SHA-256, and the step
   * must have started after the step before it finished (otherwise its input changed since).
   */
  async staleReason(step: StepName): Promise<string | undefined> {
    const record = this.manifest.steps[step];
    if (record?.status !== "succeeded") return `${step} has not finished`;
    const files: Record<string, OutputDigest | undefined> = record.files ??
      Object.fromEntries((record.outputs ?? []).map((rel) => [rel, undefined]));
    for (const [rel, want] of Object.entries(files)) {
      let data: Uint8Array;
      try {
        data = await readRegularFile(this.path(rel));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return `its output ${rel} is missing`;
        if (error instanceof NotARegularFileError) return `its output ${rel} is not a regular file`;
        return `its output ${rel} cannot be read (${(error as Error).message})`;
      }
      if (want === undefined) continue;
      if (data.length !== want.bytes) {
        return `its output ${rel} changed since the step finished (${data.length} bytes, the manifest says ${want.bytes})`;
      }
      const sha256 = await sha256Hex(data);
      if (sha256 !== want.sha256) {
        return `its output ${rel} changed since the step finished (sha256 ${
          sha256.slice(0, 12)
        }…, the manifest says ${want.sha256.slice(0, 12)}…)`;
      }
    }
    const planned = this.plannedSteps;
    const previous = planned[planned.indexOf(step) - 1];
    const before = previous === undefined ? undefined : this.manifest.steps[previous];
    if (before?.finished_at && before.finished_at > record.started_at) {
      return `${previous} finished again after ${step} ran, so ${step}'s input changed`;
    }
    return undefined;
  }

  /** Whether a step finished in this run. */
  finished(step: StepName): boolean {
    return this.manifest.steps[step]?.status === "succeeded";
  }

  /** Adds a warning to the manifest (deduplicated). */
  warn(message: string): void {
    if (!this.manifest.warnings.includes(message)) this.manifest.warnings.push(message);
  }
}

/** Options of {@link createRun}. */
export interface CreateRunOptions {
  /** Snapshot date (UTC `YYYY-MM-DD`, default today). */
  date?: string;
  now?: Date;
  /** Run id made beforehand with {@link newRunId} (e.g. to name it in the run lock first). */
  id?: string;
  /** Streams the run carries (default: `config.streams`, from PIPELINE_STREAMS). */
  streams?: readonly StreamName[];
  /** Default `daily`. */
  schedule?: Schedule;
  /** An import run's request. */
  import?: ImportRequest;
  /** The accounts the run covers (`--user`; default every authorized one). */
  accounts?: readonly string[];
}

/** Creates a new run folder with a fresh manifest. */
export async function createRun(config: Config, options: CreateRunOptions = {}): Promise<Run> {
  const now = options.now ?? new Date();
  const date = options.date !== undefined
    ? validateDate(options.date, "--date", now)
    : now.toISOString().slice(0, 10);
  const id = options.id === undefined ? newRunId(now) : validateRunId(options.id);
  const schedule = options.schedule ?? "daily";
  // the streams of the run's schedule (the daily run never carries the imported history)
  const streams = streamsFor(schedule, options.streams ?? config.streams);
  if (streams.length === 0) {
    throw new ConfigError(
      `No stream to run: the ${schedule} schedule runs ${
        streamsFor(schedule, STREAM_NAMES).join(", ")
      }, and PIPELINE_STREAMS/--streams selects ${(options.streams ?? config.streams).join(", ")}`,
    );
  }
  const dir = join(config.runsDir, id);
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    throw new StorageError(`Cannot create the run folder ${dir}: ${(error as Error).message}`, {
      hint: "Check that PIPELINE_DATA_DIR is a folder this user can write (its runs/ a folder).",
      cause: error,
    });
  }
  const stamp = now.toISOString();
  const run = new Run(dir, {
    version: 1,
    run_id: id,
    snapshot_date: date,
    profile: config.profile,
    created_at: stamp,
    updated_at: stamp,
    status: "running",
    streams,
    schedule,
    ...(options.import ? { import: options.import } : {}),
    ...(options.accounts?.length ? { accounts: [...options.accounts] } : {}),
    steps: {},
    warnings: [],
  });
  await run.save();
  return run;
}

/** Options of {@link openRun}. */
export interface OpenRunOptions {
  /** Run id (default: the latest run). */
  runId?: string;
  /** With no id: the latest run that has not succeeded. */
  unfinished?: boolean;
  /** With no id: only runs of this schedule (a poll resumes polls, the pipeline dailies). */
  schedule?: Schedule;
}

/** Opens an existing run (by id, or the latest), validating its manifest. */
export async function openRun(config: Config, options: OpenRunOptions = {}): Promise<Run> {
  let id = options.runId;
  if (id !== undefined) validateRunId(id);
  else {
    const ids = await listRunIds(config);
    if (options.unfinished) {
      for (const candidate of ids.toReversed()) {
        const run = await readRun(config, candidate);
        if (options.schedule !== undefined && run.schedule !== options.schedule) continue;
        if (run.manifest.status !== "succeeded") return run;
      }
      throw new ConfigError(
        `No unfinished ${
          options.schedule ? `${options.schedule} ` : ""
        }run in ${config.runsDir}: nothing to resume`,
      );
    }
    if (options.schedule !== undefined) {
      // the latest run of that schedule (a poll between two daily runs is not "the latest")
      for (const candidate of ids.toReversed()) {
        const run = await readRun(config, candidate);
        if (run.schedule === options.schedule) return run;
      }
    }
    id = ids.at(-1);
    if (id === undefined || options.schedule !== undefined) {
      throw new ConfigError(`No run in ${config.runsDir} yet: run \`deno task fetch\` first`);
    }
  }
  return await readRun(config, id);
}

/**
 * Run ids in the runs folder, oldest first. Ids sort by their time to the second; runs started
 * within the same second are ordered by their manifest's `created_at` (milliseconds), since their
 * random suffixes say nothing about which came last.
 */
export async function listRunIds(config: Config): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const entry of Deno.readDir(config.runsDir)) {
      if (entry.isDirectory && RUN_ID.test(entry.name)) ids.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  ids.sort();
  const second = (id: string) => id.slice(0, id.indexOf("-"));
  const created = new Map<string, string>();
  for (let i = 0; i < ids.length; i++) {
    const same = ids[i - 1] !== undefined && second(ids[i - 1]!) === second(ids[i]!);
    if (!same && second(ids[i + 1] ?? "") !== second(ids[i]!)) continue;
    created.set(ids[i]!, await createdAt(config, ids[i]!));
  }
  if (created.size === 0) return ids;
  return ids.sort((a, b) =>
    second(a) !== second(b)
      ? (a < b ? -1 : 1)
      : (created.get(a)! < created.get(b)! ? -1 : created.get(a)! > created.get(b)! ? 1 : 0) ||
        (a < b ? -1 : 1)
  );
}

/** A run's `created_at` from its manifest ("" when unreadable: sorts first among its second). */
async function createdAt(config: Config, id: string): Promise<string> {
  try {
    const m = JSON.parse(await readRegularTextFile(join(config.runsDir, id, "manifest.json")));
    return typeof m?.created_at === "string" ? m.created_at : "";
  } catch {
    return "";
  }
}

async function readRun(config: Config, id: string): Promise<Run> {
  const dir = join(config.runsDir, id);
  const file = join(dir, "manifest.json");
  let text: string;
  try {
    text = await readRegularTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(`Run ${id} not found (no ${file})`);
    }
    throw new ConfigError(`Run ${id}: cannot read ${file} (${(error as Error).message})`, {
      hint: CORRUPT_MANIFEST_HINT,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `Run ${id}: manifest ${file} is corrupt (not JSON: ${(error as Error).message})`,
      { hint: CORRUPT_MANIFEST_HINT },
    );
  }
  const problem = manifestProblem(value, id);
  if (problem) {
    throw new ConfigError(`Run ${id}: manifest ${file} is corrupt (${problem})`, {
      hint: CORRUPT_MANIFEST_HINT,
    });
  }
  const manifest = value as Manifest; // checked by manifestProblem
  manifest.warnings ??= [];
  return new Run(dir, manifest);
}

const CORRUPT_MANIFEST_HINT =
  "The run's steps cannot be trusted: start a new run (`deno task pipeline`, or `--date <its snapshot date>` to redo that day), or delete that run folder.";
const STATUSES: readonly string[] = ["running", "succeeded", "failed", "partial"];

/** What is wrong with a parsed manifest, or undefined when it has the expected shape. */
function manifestProblem(value: unknown, id: string): string | undefined {
  const isObject = isRecord;
  if (!isObject(value)) return "expected a JSON object";
  if (value.run_id !== id) return `"run_id" is ${JSON.stringify(value.run_id)}, expected "${id}"`;
  if (typeof value.snapshot_date !== "string" || !DATE.test(value.snapshot_date)) {
    return `"snapshot_date" is not a date YYYY-MM-DD`;
  }
  if (!STATUSES.includes(value.status as string)) return `"status" is not a run status`;
  if (value.warnings !== undefined && !Array.isArray(value.warnings)) {
    return `"warnings" is not a list`;
  }
  if (
    value.streams !== undefined &&
    (!Array.isArray(value.streams) || value.streams.length === 0 ||
      !value.streams.every((n) => (STREAM_NAMES as readonly unknown[]).includes(n)))
  ) {
    return `"streams" is not a list of ${STREAM_NAMES.join(", ")}`;
  }
  if (value.schedule !== undefined && !(SCHEDULES as readonly unknown[]).includes(value.schedule)) {
    return `"schedule" is not ${SCHEDULES.join(", ")}`;
  }
  if (value.schedule === "import") {
    const req = value.import;
    if (
      !isObject(req) || !Array.isArray(req.paths) || req.paths.length === 0 ||
      !req.paths.every((p) => typeof p === "string" && p !== "") ||
      typeof req.user_id !== "string" || req.user_id === ""
    ) {
      return `"import" is not {paths: [...], user_id}`;
    }
  }
  if (
    value.accounts !== undefined &&
    (!Array.isArray(value.accounts) || !value.accounts.every((a) => typeof a === "string"))
  ) {
    return `"accounts" is not a list of account names`;
  }
  if (value.users !== undefined && !isObject(value.users)) return `"users" is not an object`;
  if (!isObject(value.steps)) return `"steps" is not an object`;
  for (const [step, record] of Object.entries(value.steps)) {
    if (!(STEP_NAMES as readonly string[]).includes(step)) return `unknown step "${step}"`;
    if (!isObject(record) || !STATUSES.includes(record.status as string)) {
      return `steps.${step} has no valid "status"`;
    }
    if (typeof record.started_at !== "string") return `steps.${step} has no "started_at"`;
    if (record.outputs !== undefined && !Array.isArray(record.outputs)) {
      return `steps.${step}.outputs is not a list`;
    }
    if (record.files !== undefined && !isObject(record.files)) {
      return `steps.${step}.files is not an object`;
    }
  }
  return undefined;
}
