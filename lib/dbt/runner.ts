/**
 * Runs dbt (`build` by default) from the project's venv for the active target, streams its
 * output to the log, and summarises `run_results.json`: models built, tests passed, warned and
 * failed, durations. The profile (`dbt/profiles.yml`) reads everything from environment
 * variables, which {@link dbtEnv} derives from the validated config — secrets travel in the
 * child's environment only, never on its command line.
 *
 * dbt's artifacts and logs go under the data folder (`<data dir>/dbt/target`, `.../dbt/logs`),
 * so runs on different data folders (tests, benchmarks) never share or overwrite them; partial
 * parsing (`partial_parse.msgpack` there) makes every run after the first parse only what
 * changed. No `dbt deps`: the project has no packages.
 * @module
 */

import { join } from "node:path";
import { isRecord } from "../json.ts";
import type { Config } from "../config.ts";
import { DbtError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { runLines } from "./_process.ts";
import { type Venv, venvExecutable } from "./venv.ts";

/** Kind of a dbt node, from its unique id. */
export type DbtNodeKind = "model" | "test" | "unit_test" | "seed" | "snapshot" | "other";

/** One node's result. */
export interface DbtNodeResult {
  unique_id: string;
  /** Short name: the model, the test, or `model::unit_test`. */
  name: string;
  kind: DbtNodeKind;
  /** dbt's status: success/error/skipped (models), pass/warn/fail/error/skipped (tests). */
  status: string;
  execution_time_s: number;
  /** Failing rows of a test. */
  failures?: number;
  message?: string;
  rows_affected?: number;
  relation?: string;
}

/** The summary of one dbt invocation (saved as `transform/run_results.json`). */
export interface DbtSummary {
  command: string;
  target: "duckdb" | "snowflake";
  /** Schema the models are built in. */
  schema: string;
  full_refresh: boolean;
  exit_code: number;
  dbt_version?: string;
  invocation_id?: string;
  generated_at?: string;
  /** dbt's own elapsed time. */
  elapsed_s?: number;
  /** Wall time of the process, start-up and parsing included. */
  wall_s: number;
  /**
   * Where the wall time went, from when dbt's log events reached us: Python's start-up and dbt's
   * imports (to its first event), parsing (to `FoundStats`), running the nodes (to
   * `FinishedRunningStats`), and writing artifacts and exiting (the rest). Absent when dbt
   * stopped before running nodes.
   */
  phases_s?: { startup: number; parse: number; execute: number; exit: number };
  models: { built: number; failed: number; skipped: number };
  tests: { passed: number; warned: number; failed: number; skipped: number };
  /** Names of failed models and tests. */
  failed: string[];
  /** Names of tests that warned. */
  warned: string[];
  nodes: DbtNodeResult[];
  /** dbt's error lines when it stopped before running nodes (bad profile, parse error). */
  errors: string[];
  run_results_path: string;
  log_path: string;
}

/** Options of {@link runDbt}. */
export interface RunDbtOptions {
  log: Logger;
  venv: Pick<Venv, "bin">;
  /** dbt command (default `build`). */
  command?: "build" | "run" | "test" | "parse" | "compile";
  /** `--full-refresh`: rebuild incremental models from scratch. */
  fullRefresh?: boolean;
  /** More arguments (e.g. `["--select", "top_tracks"]`). */
  args?: string[];
  /** Throw a {@link DbtError} when a model or test fails (default true). */
  throwOnFailure?: boolean;
  signal?: AbortSignal;
}

/** Where dbt writes its artifacts and logs for a config. */
export function dbtPaths(config: Config): { targetPath: string; logPath: string } {
  return {
    targetPath: join(config.dataDir, "dbt", "target"),
    logPath: join(config.dataDir, "dbt", "logs"),
  };
}

/**
 * Environment variables `dbt/profiles.yml` and the project read, from the config. Every
 * variable of the active target is set (unset ones to ""), so a stale value inherited from the
 * parent process never leaks into the profile.
 */
export function dbtEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {
    DBT_PROFILES_DIR: config.dbt.projectDir,
    DBT_TARGET: config.dbt.target,
    DBT_SCHEMA: config.dbt.schema,
    DBT_COVERAGE_FLOOR: String(config.dbt.coverageFloor),
    DBT_SEND_ANONYMOUS_USAGE_STATS: "false",
    PYTHONUNBUFFERED: "1",
  };
  const w = config.warehouse;
  if (w.kind === "duckdb") {
    env.DBT_DUCKDB_PATH = w.path;
  } else {
    Object.assign(env, {
      SNOWFLAKE_ACCOUNT: w.account,
      SNOWFLAKE_USER: w.user,
      SNOWFLAKE_AUTHENTICATOR: w.authenticator,
      SNOWFLAKE_PRIVATE_KEY_PATH: w.privateKeyPath ?? "",
      SNOWFLAKE_PRIVATE_KEY: w.privateKey ?? "",
      SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: w.privateKeyPassphrase ?? "",
      SNOWFLAKE_PASSWORD: w.password ?? "",
      SNOWFLAKE_TOKEN: w.token ?? "",
      SNOWFLAKE_ROLE: w.role ?? "",
      SNOWFLAKE_WAREHOUSE: w.warehouse,
      SNOWFLAKE_DATABASE: w.database,
      SNOWFLAKE_SCHEMA: w.schema,
      SNOWFLAKE_HOST: w.host ?? "",
      SNOWFLAKE_PORT: String(w.port ?? 443),
      SNOWFLAKE_PROTOCOL: w.protocol ?? "https",
      SNOWFLAKE_TIMEOUT_SECONDS: String(w.timeoutSeconds),
    });
  }
  return env;
}

/**
 * Runs `dbt <command>` for the config's target and returns the summary of `run_results.json`.
 * @throws DbtError naming the failed models/tests (unless `throwOnFailure` is false), or with
 *   dbt's error when it stopped before running anything.
 * @example
 * const summary = await runDbt(config, { log, venv, fullRefresh: true });
 */
export async function runDbt(config: Config, options: RunDbtOptions): Promise<DbtSummary> {
  const { log, venv, command = "build", fullRefresh = false, signal } = options;
  const { targetPath, logPath } = dbtPaths(config);
  const runResultsPath = join(targetPath, "run_results.json");
  // never read a previous invocation's results
  await Deno.remove(runResultsPath).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });

  const args = [
    command,
    "--project-dir",
    config.dbt.projectDir,
    "--profiles-dir",
    config.dbt.projectDir,
    "--target",
    config.dbt.target,
    "--target-path",
    targetPath,
    "--log-path",
    logPath,
    "--vars",
    JSON.stringify({ coverage_floor: config.dbt.coverageFloor }),
    "--log-format",
    "json",
    "--no-use-colors",
    "--partial-parse",
    ...(fullRefresh ? ["--full-refresh"] : []),
    ...(options.args ?? []),
  ];
  const dbt = venvExecutable(venv, "dbt");
  log.info(
    `dbt ${command} (target ${config.dbt.target}, schema ${config.dbt.schema}${
      fullRefresh ? ", full refresh" : ""
    })`,
  );
  log.debug(`${dbt} ${args.join(" ")}`);

  const errors: string[] = [];
  const started = performance.now();
  const seen: { first?: number; found?: number; finished?: number } = {};
  let code: number;
  try {
    ({ code } = await runLines(dbt, {
      args,
      env: dbtEnv(config),
      cwd: config.projectRoot,
      signal,
      onLine: (line) => {
        const event = parseEvent(line);
        if (!event) {
          if (line.trim()) log.info(line);
          return;
        }
        const at = performance.now();
        seen.first ??= at;
        if (event.name === "FoundStats") seen.found = at;
        if (event.name === "FinishedRunningStats") seen.finished = at;
        if (event.level === "error" && event.msg.trim()) errors.push(event.msg.trim());
        if (!event.msg.trim()) return;
        // per-node START lines are noise next to their result lines
        const level = event.name === "LogStartLine" ? "debug" : event.level;
        log[level](event.msg);
      },
    }));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new DbtError(`dbt is not installed in the venv: "${dbt}" not found`, {
        hint:
          `Delete the venv folder (DBT_VENV_DIR) to have it recreated from dbt/requirements.lock.`,
      });
    }
    throw error;
  }
  const ended = performance.now();
  const wall = (ended - started) / 1000;
  const { first, found, finished } = seen;
  const phases = first !== undefined && found !== undefined && finished !== undefined
    ? {
      startup: round((first - started) / 1000, 2),
      parse: round((found - first) / 1000, 2),
      execute: round((finished - found) / 1000, 2),
      exit: round((ended - finished) / 1000, 2),
    }
    : undefined;

  const summary = await summarize(runResultsPath, {
    command,
    target: config.dbt.target,
    schema: config.dbt.schema,
    full_refresh: fullRefresh,
    exit_code: code,
    wall_s: round(wall, 2),
    ...(phases ? { phases_s: phases } : {}),
    errors: errors.slice(0, 20),
    run_results_path: runResultsPath,
    log_path: join(logPath, "dbt.log"),
  });
  log.info(
    `dbt ${command}: ${summary.models.built} models built, tests ${summary.tests.passed} passed, ${summary.tests.warned} warned, ${summary.tests.failed} failed (${
      summary.wall_s.toFixed(1)
    } s)`,
  );
  if (options.throwOnFailure !== false) {
    const error = dbtErrorOf(summary);
    if (error) throw error;
  }
  return summary;
}

/** The {@link DbtError} a summary stands for, or undefined when dbt succeeded. */
export function dbtErrorOf(summary: DbtSummary): DbtError | undefined {
  if (summary.exit_code === 0 && summary.failed.length === 0) return undefined;
  const rawMissing = summary.nodes.some((n) =>
    /top_tracks.*does not exist|does not exist.*top_tracks/is.test(n.message ?? "")
  );
  const hint = rawMissing
    ? `The raw table is created by the load step: run \`deno task load\` (or the pipeline) first. dbt's log: ${summary.log_path}`
    : `dbt's log: ${summary.log_path}`;
  if (summary.failed.length === 0) {
    // one line: dbt's error events span lines ("Encountered an error:\nIO Error: ...")
    const cause = (summary.errors.find((e) => !/^Encountered an error:?$/i.test(e)) ??
      summary.errors[0] ?? "no error message (see the log)")
      .replace(/^Encountered an error:?\s*/i, "").split("\n").map((l) => l.trim())
      .filter(Boolean).join(" ");
    const locked = /Could not set lock on file/i.test(cause);
    return new DbtError(
      `dbt ${summary.command} failed (exit ${summary.exit_code}) before running any model: ${cause}`,
      {
        hint: locked
          ? `Another process holds the warehouse file (a dbt left running by a killed pipeline, a notebook...): let it finish, then run again (\`deno task pipeline --resume\`). ${hint}`
          : hint,
      },
    );
  }
  const describe = (name: string) => {
    const node = summary.nodes.find((n) => n.name === name);
    if (!node) return name;
    const what = node.kind === "unit_test" ? "unit test" : node.kind;
    const rows = node.failures
      ? ` (${node.failures} failing row${node.failures === 1 ? "" : "s"})`
      : "";
    const msg = node.kind === "model" && node.message ? `: ${firstLine(node.message)}` : "";
    return `${what} ${name} ${node.status === "error" ? "errored" : "failed"}${rows}${msg}`;
  };
  const shown = summary.failed.slice(0, 5).map(describe);
  const more = summary.failed.length > 5 ? `; and ${summary.failed.length - 5} more` : "";
  const skipped = summary.models.skipped
    ? `; ${summary.models.skipped} model${summary.models.skipped === 1 ? "" : "s"} skipped`
    : "";
  return new DbtError(`dbt ${summary.command} failed: ${shown.join("; ")}${more}${skipped}`, {
    hint,
  });
}

interface RunResults {
  metadata?: { dbt_version?: string; invocation_id?: string; generated_at?: string };
  elapsed_time?: number;
  results?: {
    unique_id: string;
    status: string;
    execution_time?: number;
    failures?: number | null;
    message?: string | null;
    adapter_response?: { rows_affected?: number };
    relation_name?: string | null;
  }[];
}

/**
 * The parts of dbt's `run_results.json` read here, checked (dbt writes it, but a file of another
 * dbt version, or a damaged one, must not become a crash): a field of the wrong type is absent,
 * a result without a string id and status is left out.
 */
function runResultsOf(value: unknown): RunResults {
  const obj = (v: unknown) => (isRecord(v) ? v : {});
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  const root = obj(value);
  const meta = obj(root.metadata);
  const list = Array.isArray(root.results) ? root.results : [];
  return {
    metadata: {
      dbt_version: str(meta.dbt_version),
      invocation_id: str(meta.invocation_id),
      generated_at: str(meta.generated_at),
    },
    elapsed_time: num(root.elapsed_time),
    results: list.map(obj).filter((r) => str(r.unique_id) && str(r.status)).map((r) => ({
      unique_id: r.unique_id as string,
      status: r.status as string,
      execution_time: num(r.execution_time),
      failures: num(r.failures) ?? null,
      message: str(r.message) ?? null,
      adapter_response: { rows_affected: num(obj(r.adapter_response).rows_affected) },
      relation_name: str(r.relation_name) ?? null,
    })),
  };
}

type SummaryBase = Omit<
  DbtSummary,
  | "models"
  | "tests"
  | "failed"
  | "warned"
  | "nodes"
  | "dbt_version"
  | "invocation_id"
  | "generated_at"
  | "elapsed_s"
>;

async function summarize(path: string, base: SummaryBase): Promise<DbtSummary> {
  let results: RunResults = {};
  try {
    results = runResultsOf(JSON.parse(await Deno.readTextFile(path)));
  } catch (error) {
    // missing: dbt stopped before running (the error lines say why)
    if (!(error instanceof Deno.errors.NotFound) && !(error instanceof SyntaxError)) throw error;
  }
  const nodes: DbtNodeResult[] = (results.results ?? []).map((r) => {
    const node: DbtNodeResult = {
      unique_id: r.unique_id,
      name: nodeName(r.unique_id),
      kind: nodeKind(r.unique_id),
      status: r.status,
      execution_time_s: round(r.execution_time ?? 0, 3),
    };
    if (typeof r.failures === "number") node.failures = r.failures;
    if (r.message) node.message = r.message;
    const rows = r.adapter_response?.rows_affected;
    if (typeof rows === "number" && rows >= 0) node.rows_affected = rows;
    if (r.relation_name) node.relation = r.relation_name;
    return node;
  });
  const isTest = (n: DbtNodeResult) => n.kind === "test" || n.kind === "unit_test";
  const isBuilt = (n: DbtNodeResult) => ["model", "seed", "snapshot"].includes(n.kind);
  const count = (pred: (n: DbtNodeResult) => boolean) => nodes.filter(pred).length;
  return {
    ...base,
    dbt_version: results.metadata?.dbt_version,
    invocation_id: results.metadata?.invocation_id,
    generated_at: results.metadata?.generated_at,
    elapsed_s: results.elapsed_time === undefined ? undefined : round(results.elapsed_time, 2),
    models: {
      built: count((n) => isBuilt(n) && n.status === "success"),
      failed: count((n) => isBuilt(n) && n.status === "error"),
      skipped: count((n) => isBuilt(n) && n.status === "skipped"),
    },
    tests: {
      passed: count((n) => isTest(n) && n.status === "pass"),
      warned: count((n) => isTest(n) && n.status === "warn"),
      failed: count((n) => isTest(n) && (n.status === "fail" || n.status === "error")),
      skipped: count((n) => isTest(n) && n.status === "skipped"),
    },
    failed: nodes.filter((n) => n.status === "error" || n.status === "fail").map((n) => n.name),
    warned: nodes.filter((n) => n.status === "warn").map((n) => n.name),
    nodes,
  };
}

function nodeKind(uniqueId: string): DbtNodeKind {
  const kind = uniqueId.split(".")[0];
  return kind === "model" || kind === "test" || kind === "unit_test" || kind === "seed" ||
      kind === "snapshot"
    ? kind
    : "other";
}

/** `test.proj.not_null_x_y.abc123` → `not_null_x_y`; `unit_test.proj.m.t` → `m::t`. */
function nodeName(uniqueId: string): string {
  const parts = uniqueId.split(".");
  switch (parts[0]) {
    case "test":
      return parts.length > 3 ? parts.slice(2, -1).join(".") : parts.slice(2).join(".");
    case "unit_test":
      return parts.slice(2).join("::");
    default:
      return parts.slice(2).join(".") || uniqueId;
  }
}

interface DbtEvent {
  name: string;
  level: "debug" | "info" | "warn" | "error";
  msg: string;
}

/** One line of `--log-format json` output, or undefined when the line is not an event. */
function parseEvent(line: string): DbtEvent | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const record: unknown = JSON.parse(line);
    const info = isRecord(record) ? record.info : undefined;
    if (!isRecord(info)) return undefined;
    const { name, level, msg } = info;
    if (typeof msg !== "string") return undefined;
    return {
      name: typeof name === "string" ? name : "",
      level: level === "warn" || level === "error" || level === "debug" ? level : "info",
      msg,
    };
  } catch {
    return undefined;
  }
}

function firstLine(text: string): string {
  return text.trim().split("\n").map((l) => l.trim()).filter(Boolean).slice(0, 3).join(" ");
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
