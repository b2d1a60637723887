/** Run the test suite: make sure the project's venv has dbt and the test stand-ins (moto,
 * fakesnow) from `dbt/requirements.lock` + `tests/requirements.lock`, and that headless Chromium
 * is there for the browser test (Debian's package, installed when missing), then
 * `deno test -A tests/`.
 * Extra arguments go to `deno test` (a filter, or test files instead of `tests/`). Ends with one
 * line `N passed, N failed`; the exit code is non-zero when anything failed.
 * @example deno task test
 * @example deno task test --filter "dbt build"
 * @example deno task test tests/dbt_test.ts
 */
import { join } from "node:path";
import { loadConfig, PROJECT_ROOT } from "../lib/config.ts";
import { ensureVenv, TEST_VENV_LOCKS } from "../lib/dbt/venv.ts";
import { Logger } from "../lib/log.ts";
import { chromiumBinary } from "../tests/_chromium.ts";

/** `deno test` flags that take a separate value (so that value is not a test path). */
const VALUE_FLAGS = new Set([
  "--filter",
  "--reporter",
  "--junit-path",
  "--coverage",
  "--shuffle",
  "--seed",
  "--config",
  "-c",
  "--import-map",
  "--lock",
  "--env-file",
  "--location",
  "--v8-flags",
  "--ignore",
  "--trace-leaks",
]);

/** The counts in `deno test`'s final line (`ok | 12 passed (3 steps) | 0 failed ...`). */
export function parseTestSummary(
  output: string,
): { passed: number; failed: number } | undefined {
  // deno colours the line on a terminal
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const matches = [
    ...plain.matchAll(/^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/gm),
  ];
  const last = matches.at(-1);
  return last ? { passed: Number(last[1]), failed: Number(last[2]) } : undefined;
}

/** Arguments for `deno test`: the extra ones, plus `tests/` unless they name test paths. */
export function testArgs(extra: string[]): string[] {
  let namesPaths = false;
  for (let i = 0; i < extra.length; i++) {
    const arg = extra[i]!;
    if (arg.startsWith("-")) {
      if (VALUE_FLAGS.has(arg)) i++;
      continue;
    }
    namesPaths = true;
  }
  return ["test", "-A", ...extra, ...(namesPaths ? [] : [join(PROJECT_ROOT, "tests")])];
}

/** Entry point; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const log = new Logger({ format: "pretty" });
  const finish = (passed: number, failed: number, code: number) => {
    console.log(`${passed} passed, ${failed} failed`);
    return code;
  };
  try {
    const config = loadConfig({
      env: { DBT_PYTHON: Deno.env.get("DBT_PYTHON"), DBT_VENV_DIR: Deno.env.get("DBT_VENV_DIR") },
      envFile: false,
    });
    await ensureVenv(config.dbt, {
      log,
      locks: TEST_VENV_LOCKS.map((lock) => join(PROJECT_ROOT, lock)),
    });
  } catch (error) {
    log.error(`Cannot prepare the Python venv for the tests: ${(error as Error).message}`);
    return finish(0, 1, 1);
  }
  try {
    await ensureChromium(log);
  } catch (error) {
    log.error(`Cannot prepare Chromium for the browser tests: ${(error as Error).message}`);
    return finish(0, 1, 1);
  }

  const child = new Deno.Command(Deno.execPath(), {
    args: testArgs(args),
    cwd: PROJECT_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // pass the output through as it comes, keeping only its end for the summary line
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await writeAll(Deno.stdout, chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-64 * 1024);
  }
  const status = await child.status;
  const counts = parseTestSummary(tail);
  if (!counts) {
    // e.g. a type error: nothing ran
    log.error(`deno test ended (exit ${status.code}) without a summary line`);
    return finish(0, 1, status.code || 1);
  }
  const failed = status.code !== 0 && counts.failed === 0 ? 1 : counts.failed;
  return finish(counts.passed, failed, failed > 0 ? (status.code || 1) : 0);
}

async function runs(command: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Makes sure headless Chromium is there for the browser tests (like the venv for dbt): when it
 * is not, installs Debian's `chromium` package with apt-get (as root), else says how to get it.
 */
export async function ensureChromium(log: Logger): Promise<void> {
  const bin = chromiumBinary();
  if (await runs(bin, ["--version"])) return;
  const root = Deno.uid?.() === 0;
  if (!root || !(await runs("apt-get", ["--version"]))) {
    throw new Error(
      `"${bin}" is not on PATH: install Debian's chromium package (sudo apt-get install chromium) or set CHROMIUM_BIN to a Chromium or Chrome binary`,
    );
  }
  log.info("Installing Chromium (Debian's chromium package) for the browser tests");
  for (
    const args of [["update", "-qq"], [
      "install",
      "-y",
      "-qq",
      "--no-install-recommends",
      "chromium",
    ]]
  ) {
    const { success, stderr } = await new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) {
      throw new Error(
        `apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(stderr).trim().slice(-500)}`,
      );
    }
  }
  if (!(await runs(bin, ["--version"]))) {
    throw new Error(`"${bin}" still does not run after apt-get install chromium`);
  }
}

async function writeAll(out: typeof Deno.stdout, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await out.write(bytes.subarray(written));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
