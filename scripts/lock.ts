/**
 * Compiles the Python locks (`dbt/requirements.lock`, `tests/requirements.lock`) from their
 * `requirements.txt` pins with the uv the current dbt lock pins (from the project's venv, made
 * first when missing). Existing pins are kept unless a pin above changed; extra arguments go to
 * `uv pip compile` (e.g. `--upgrade-package dbt-core`). Commit the locks with the pins.
 * @example deno task lock
 * @module
 */
import { join } from "node:path";
import { loadConfig, PROJECT_ROOT } from "../lib/config.ts";
import { compileArgs, ensureVenv, LOCKS, venvExecutable } from "../lib/dbt/venv.ts";
import { Logger } from "../lib/log.ts";

/** Entry point; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const log = new Logger({ format: "pretty" });
  const config = loadConfig({
    env: { DBT_PYTHON: Deno.env.get("DBT_PYTHON"), DBT_VENV_DIR: Deno.env.get("DBT_VENV_DIR") },
    envFile: false,
  });
  try {
    const venv = await ensureVenv(config.dbt, {
      log,
      locks: [join(PROJECT_ROOT, LOCKS.dbt.lock)],
    });
    // in order: the tests' lock is constrained by dbt's
    for (const spec of [LOCKS.dbt, LOCKS.tests]) {
      const out = await new Deno.Command(venvExecutable(venv, "uv"), {
        args: [...compileArgs(spec), "--quiet", ...args],
        cwd: PROJECT_ROOT,
        stdin: "null",
      }).output();
      if (!out.success) {
        log.error(`uv pip compile of ${spec.lock} failed (exit ${out.code})`);
        return 1;
      }
      log.info(`Wrote ${spec.lock}`);
    }
    return 0;
  } catch (error) {
    log.error((error as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
