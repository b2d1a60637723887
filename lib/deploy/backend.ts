/**
 * The HTTP trigger's runs on Deno Deploy: started in memory by {@link runOnDeploy} under the
 * Deno KV lease (one run at a time across every instance of the app), recorded and listed from
 * Deno KV. Plugged into the same `PipelineApp` as `serve` (routes, bearer token, body limits).
 * @module
 */

import type { Config } from "../config.ts";
import { type ConfigError, exitCodeOf, PipelineError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { newRunId, validateRunId } from "../run.ts";
import type { ReadyCheck, RunBackend } from "../server/backend.ts";
import { refreshTokenAge } from "../spotify/token_store.ts";
import { acquireKvLease, LEASE_KEY, type LeaseValue } from "./lease.ts";
import {
  type DeployAccount,
  type DeployRunSummary,
  kvRunRecorder,
  recentDeployRuns,
  runOnDeploy,
  RUNS_PREFIX,
} from "./pipeline.ts";
import type { DeployKv, TokenSource } from "./tokens.ts";

/** Options of {@link kvBackend} and {@link runLeased}. */
export interface KvBackendOptions {
  kv: DeployKv;
  /** The `default` account's tokens (none when only other accounts are configured). */
  tokens?: TokenSource;
  /** The household's other accounts. */
  otherAccounts?: readonly DeployAccount[];
  log: Logger;
  /** Clock (tests). */
  now?: () => Date;
  /** Lease length (default `KV_LEASE_MS`). */
  leaseMs?: number;
}

/** Options of one {@link runLeased} run. */
export interface LeasedRunOptions {
  date?: string;
  schedule?: "daily" | "poll";
  signal?: AbortSignal;
}

/**
 * Takes the KV lease (a `LockedError` naming the holder when a run is in progress), then starts
 * the run; `done` settles with the summary or the error once the run has ended and the lease is
 * released.
 */
export async function runLeased(
  config: Config,
  options: KvBackendOptions & LeasedRunOptions,
): Promise<{ id: string; done: Promise<DeployRunSummary> }> {
  const { kv, tokens, log, now = () => new Date(), leaseMs } = options;
  const id = newRunId(now());
  const lease = await acquireKvLease(kv, { runId: id, leaseMs, now });
  const done = runOnDeploy(config, {
    log,
    tokens,
    otherAccounts: options.otherAccounts,
    kv,
    record: kvRunRecorder(kv),
    runId: id,
    date: options.date,
    schedule: options.schedule,
    signal: options.signal,
    now,
  }).finally(() => lease.release());
  return { id, done };
}

/** A {@link RunBackend} on Deno KV for the Deploy entry. */
export function kvBackend(config: Config, options: KvBackendOptions): RunBackend {
  const { kv, tokens, log, now = () => new Date() } = options;
  return {
    fields: ["date"],
    async start(params, signal) {
      const { id, done } = await runLeased(config, {
        ...options,
        date: params.date,
        schedule: params.schedule,
        signal,
      });
      return {
        id,
        done: done.then(
          () => ({ exitCode: 0 }),
          (error: unknown) => {
            const message = log.redact(error instanceof Error ? error.message : String(error))
              .split("\n")[0]!;
            log.error(`Run ${id} failed: ${message}`, {
              run_id: id,
              exit_code: exitCodeOf(error),
              ...(error instanceof PipelineError ? {} : { stack: (error as Error)?.stack }),
            });
            return { exitCode: exitCodeOf(error), error: message };
          },
        ),
      };
    },
    list: (limit) => recentDeployRuns(kv, limit),
    async get(id) {
      return (await kv.get<DeployRunSummary>([...RUNS_PREFIX, validateRunId(id)])).value ??
        undefined;
    },
    report: () =>
      Promise.resolve({
        missing:
          "Deploy keeps no report (no dbt here, and its disk is per instance): run `deno task report` where dbt runs",
      }),
    async readiness() {
      const checks: Record<string, ReadyCheck> = {
        config: { ok: true, detail: "profile prod, valid at start-up" },
      };
      // every account: `spotify_tokens` (default), `spotify_tokens:<name>`
      const accounts = [
        ...(tokens ? [{ name: "default", tokens }] : []),
        ...(options.otherAccounts ?? []),
      ];
      for (const account of accounts) {
        const key = account.name === "default"
          ? "spotify_tokens"
          : `spotify_tokens:${account.name}`;
        try {
          const age = refreshTokenAge(await account.tokens.load(), now());
          checks[key] = age.warning
            ? { ok: false, detail: age.warning }
            : { ok: true, detail: `refresh token valid for ${age.daysLeft} more days (Deno KV)` };
        } catch (error) {
          if (!(error instanceof PipelineError)) throw error;
          checks[key] = { ok: false, detail: error.message };
        }
      }
      const lease = (await kv.get<LeaseValue>(LEASE_KEY)).value;
      const running = lease && Date.parse(lease.expires_at) > now().getTime() ? lease.run_id : null;
      return { checks, running };
    },
  };
}

/**
 * The backend of an entry whose settings did not load: `/healthz` still answers (the platform
 * waits for it), `/readyz` and every trigger name the problem.
 */
export function misconfiguredBackend(problem: ConfigError): RunBackend {
  // not a ConfigError of the request (400): the server's own settings (503)
  const fail = () =>
    Promise.reject(
      new PipelineError("config", `The app's settings are invalid: ${problem.message}`, {
        hint: problem.hint,
      }),
    );
  return {
    fields: ["date"],
    start: fail,
    list: fail,
    get: fail,
    report: fail,
    readiness: () =>
      Promise.resolve({
        checks: { config: { ok: false, detail: problem.message } },
        running: null,
      }),
  };
}
