/**
 * Where the HTTP trigger's runs start and are read back. `serve` uses the run folders of the data
 * folder ({@link fileBackend}); the Deno Deploy entry uses Deno KV (`lib/deploy/backend.ts`). The
 * routes, auth, body limits and error answers of `PipelineApp` are the same over both.
 * @module
 */

import { dirname } from "node:path";
import type { Config } from "../config.ts";
import { PipelineError } from "../errors.ts";
import { readRunLock } from "../lock.ts";
import type { Logger } from "../log.ts";
import { DEFAULT_ACCOUNT, inAccountWords, listAccounts } from "../spotify/accounts.ts";
import { readTokenStore, refreshTokenAge } from "../spotify/token_store.ts";
import { getRun, listRuns } from "./runs.ts";
import { type PipelineFn, startRun, type TriggerParams } from "./trigger.ts";

/** A field of the trigger's JSON body. */
export type TriggerField = "date" | "to" | "full_refresh" | "user";

/** One readiness check's result. */
export interface ReadyCheck {
  ok: boolean;
  detail: string;
}

/** A run a backend started. */
export interface BackendRun {
  id: string;
  /** Settles when the run ends; never rejects. */
  done: Promise<{ exitCode: number; error?: string }>;
}

/** Where runs start and are read back. */
export interface RunBackend {
  /** The body fields `POST /run-top-tracks` accepts here. */
  readonly fields: readonly TriggerField[];
  /** Starts a run in the background; rejects with `LockedError` while one runs. */
  start(params: TriggerParams, signal: AbortSignal): Promise<BackendRun>;
  /** Recent runs, newest first. */
  list(limit: number): Promise<unknown[]>;
  /** One run, or `undefined`; a `ConfigError` when its record cannot be read. */
  get(id: string): Promise<unknown | undefined>;
  /** What `/readyz` reports, and the running run's id. */
  readiness(): Promise<{ checks: Record<string, ReadyCheck>; running: string | null }>;
  /** The report page (`GET /report`), or why there is none. */
  report(): Promise<{ html: string } | { missing: string }>;
}

/** Options of {@link fileBackend}. */
export interface FileBackendOptions {
  log: Logger;
  /** Default `runPipeline`. */
  pipeline?: PipelineFn;
  /** Clock for the readiness check (default: now). */
  now?: () => Date;
}

/** Runs in the data folder's run folders, one at a time under the file lock (`serve`). */
export function fileBackend(config: Config, options: FileBackendOptions): RunBackend {
  const { log, pipeline, now = () => new Date() } = options;
  return {
    fields: ["date", "to", "full_refresh", "user"],
    async start(params, signal) {
      const started = await startRun(config, { log, params, signal, pipeline });
      return { id: started.run.id, done: started.done };
    },
    list: (limit) => listRuns(config, { limit }),
    get: (id) => getRun(config, id),
    async report() {
      // the report's modules only when the page is asked for, not at every start-up
      const { reportPath } = await import("../report/build.ts");
      const path = reportPath(config);
      try {
        return { html: await Deno.readTextFile(path) };
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        return {
          missing:
            `No report yet at ${path}: it is built by the daily run's last step, or \`deno task report\``,
        };
      }
    },
    async readiness() {
      const checks: Record<string, ReadyCheck> = {
        config: { ok: true, detail: `profile ${config.profile}, valid at start-up` },
      };
      if (config.spotify.source === "sample") {
        checks.spotify_tokens = { ok: true, detail: "not needed: bundled sample data (local)" };
      } else {
        // every account: `spotify_tokens` (the default one's, or none), `spotify_tokens:<name>`
        const accounts = await listAccounts(config).catch(() => []);
        const files = accounts.length
          ? accounts.map((a) => [a.name, a.tokensFile!] as const)
          : [[DEFAULT_ACCOUNT, config.spotify.tokensFile] as const];
        for (const [name, file] of files) {
          const key = name === DEFAULT_ACCOUNT ? "spotify_tokens" : `spotify_tokens:${name}`;
          try {
            const age = refreshTokenAge(await readTokenStore(file), now());
            checks[key] = age.warning
              ? {
                ok: false,
                detail: inAccountWords(name, age.warning),
              }
              : { ok: true, detail: `refresh token valid for ${age.daysLeft} more days` };
          } catch (error) {
            if (!(error instanceof PipelineError)) throw error;
            checks[key] = { ok: false, detail: error.message };
          }
        }
      }
      checks.data_dir = await dataDirCheck(config.dataDir);
      const running = (await readRunLock(config))?.run_id ?? null;
      return { checks, running };
    },
  };
}

/**
 * Whether runs can write the data folder: it (or, before the first run creates it, its nearest
 * existing parent) must be a folder where a file can be created — probed with a temp file.
 */
async function dataDirCheck(dir: string): Promise<{ ok: boolean; detail: string }> {
  let probe = dir;
  for (;;) {
    try {
      const info = await Deno.stat(probe);
      if (!info.isDirectory) {
        return { ok: false, detail: `${probe} is not a directory (PIPELINE_DATA_DIR=${dir})` };
      }
      break;
    } catch (error) {
      const parent = dirname(probe);
      if (!(error instanceof Deno.errors.NotFound) || parent === probe) {
        return { ok: false, detail: `${probe}: ${(error as Error).message} (PIPELINE_DATA_DIR)` };
      }
      probe = parent;
    }
  }
  try {
    await Deno.remove(await Deno.makeTempFile({ dir: probe, prefix: ".readyz-" }));
  } catch (error) {
    return {
      ok: false,
      detail: `${probe} is not writable (PIPELINE_DATA_DIR=${dir}): ${(error as Error).message}`,
    };
  }
  return { ok: true, detail: probe === dir ? dir : `${dir} (created on the first run)` };
}
