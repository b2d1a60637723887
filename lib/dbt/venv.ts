/**
 * The project's Python virtualenv (default `.venv/`), created on first use with the machine's
 * python3 and synced with uv from compiled, hash-pinned locks (`dbt/requirements.lock`, every
 * transitive package with its hashes; `tests/requirements.lock` adds the test stand-ins at the
 * same versions). uv comes from the lock too: pip installs that one pinned entry with
 * `--require-hashes`, then `uv pip sync` makes the venv exactly the locks. The SHA-256 of every
 * lock synced is recorded in `<venv>/.requirements.sha256` (sha256sum format); a venv whose
 * record covers the locks asked for is used as it is, without a subprocess.
 * @module
 */

import { join, relative, resolve } from "node:path";
import type { DbtConfig } from "../config.ts";
import { ConfigError, DbtError } from "../errors.ts";
import { writeFileAtomic } from "../fs_atomic.ts";
import { sha256Hex } from "../sha256.ts";
import type { Logger } from "../log.ts";
import { runLines } from "./_process.ts";

/** Oldest Python the pinned dbt-core (1.11) supports. */
export const MIN_PYTHON: readonly [number, number] = [3, 10];

/** A committed lock and what `deno task lock` compiles it from (paths from the project root). */
export interface LockSpec {
  lock: string;
  /** Top-level pins (`requirements.txt` files). */
  inputs: readonly string[];
  /** Locks whose versions this one keeps (so a venv synced with both agrees with each). */
  constraints: readonly string[];
}

/** The transform step's lock, and the tests' (dbt's at the same versions, plus the stand-ins). */
export const LOCKS = {
  dbt: { lock: "dbt/requirements.lock", inputs: ["dbt/requirements.txt"], constraints: [] },
  tests: {
    lock: "tests/requirements.lock",
    inputs: ["dbt/requirements.txt", "tests/requirements.txt"],
    constraints: ["dbt/requirements.lock"],
  },
} as const satisfies Record<string, LockSpec>;

/**
 * The locks the tests' venv is synced with: both, so that the transform step (asking for dbt's)
 * finds its lock covered and leaves the stand-ins in place.
 */
export const TEST_VENV_LOCKS: readonly string[] = [LOCKS.dbt.lock, LOCKS.tests.lock];

/**
 * `uv` arguments that compile `spec` (run from the project root): every transitive package,
 * hash-pinned, for every platform and each Python from {@link MIN_PYTHON} on.
 */
export function compileArgs(spec: LockSpec): string[] {
  return [
    "pip",
    "compile",
    ...spec.inputs,
    ...spec.constraints.flatMap((c) => ["-c", c]),
    "--universal",
    "--python-version",
    MIN_PYTHON.join("."),
    "--generate-hashes",
    "-o",
    spec.lock,
  ];
}

/**
 * The file (inside the venv) that callers of {@link ensureVenv} lock while they sync it; not
 * `.lock`, which uv locks itself while it syncs.
 */
const VENV_LOCK = ".pipeline-sync.lock";

/** Name of the file (inside the venv) recording the synced locks' hashes. */
export const REQUIREMENTS_MARKER = ".requirements.sha256";

/** Options of {@link ensureVenv}. */
export interface EnsureVenvOptions {
  log: Logger;
  /** Locks to sync the venv with (`uv pip compile --generate-hashes` output), e.g. `dbt/requirements.lock`. */
  locks: string[];
  signal?: AbortSignal;
}

/** A ready virtualenv. */
export interface Venv {
  dir: string;
  /** Folder of its executables (`bin/`, `Scripts/` on Windows). */
  bin: string;
  python: string;
  /** Whether this call created the venv. */
  created: boolean;
  /** Whether this call synced the venv. */
  installed: boolean;
}

/** Path of an executable inside the venv (`dbt`, `fakesnow`, `moto_server`...). */
export function venvExecutable(venv: Pick<Venv, "bin">, name: string): string {
  return join(venv.bin, Deno.build.os === "windows" ? `${name}.exe` : name);
}

/**
 * Makes sure the virtualenv exists and holds exactly the locks' packages; fast (no subprocess)
 * when the recorded hashes cover them. Concurrent callers wait for each other (file lock).
 * @throws ConfigError when python3 is missing, too old or cannot create a venv, or no lock pins
 *   uv; DbtError when pip or uv fails.
 * @example
 * const venv = await ensureVenv(config.dbt, { log, locks: ["dbt/requirements.lock"] });
 */
export async function ensureVenv(
  dbt: Pick<DbtConfig, "venvDir" | "python">,
  options: EnsureVenvOptions,
): Promise<Venv> {
  const { log, signal } = options;
  const dir = resolve(dbt.venvDir);
  const bin = join(dir, Deno.build.os === "windows" ? "Scripts" : "bin");
  const python = join(bin, Deno.build.os === "windows" ? "python.exe" : "python");
  const files = options.locks.map((f) => resolve(f));
  const wanted = await hashFiles(files);

  const upToDate = async () =>
    (await exists(python)) && missing(wanted, await readMarker(dir)).length === 0;
  if (await upToDate()) {
    log.debug(`venv: ${dir} is up to date`);
    return { dir, bin, python, created: false, installed: false };
  }

  await Deno.mkdir(dir, { recursive: true });
  const lock = await Deno.open(join(dir, VENV_LOCK), { create: true, write: true });
  try {
    await lock.lock(true);
    // another process may have done the work while we waited
    if (await upToDate()) return { dir, bin, python, created: false, installed: false };

    let created = false;
    if (!(await exists(python))) {
      await checkPython(dbt.python, log);
      log.info(`venv: creating ${dir} with ${dbt.python}`);
      const result = await runLines(dbt.python, {
        args: ["-m", "venv", dir],
        onLine: (line) => log.debug(line),
        signal,
      });
      if (result.code !== 0) {
        const output = result.tail.join("\n");
        throw new ConfigError(
          `Cannot create the dbt virtualenv at "${dir}" with DBT_PYTHON="${dbt.python}" (exit ${result.code}): ${
            lastMeaningful(result.tail)
          }`,
          {
            hint: /ensurepip|venv/i.test(output)
              ? "Install the venv module (Debian/Ubuntu: apt-get install python3-venv), then retry."
              : "Check that DBT_PYTHON runs Python 3.10+ with the venv module.",
          },
        );
      }
      created = true;
    }

    const changed = missing(wanted, await readMarker(dir));
    log.info(
      `venv: syncing ${dir} with ${
        changed.map(([f]) => relative(Deno.cwd(), f) || f).join(", ")
      } (first use or the lock changed; a few minutes on a fresh machine)`,
    );
    const uv = venvExecutable({ bin }, "uv");
    if (!(await exists(uv))) await installUv(python, { dir, files, log, signal });
    const result = await runLines(uv, {
      args: ["pip", "sync", "--python", python, "--require-hashes", ...files],
      env: { NO_COLOR: "1" },
      onLine: (line) => {
        if (/^(error|warning):/i.test(line)) log.warn(`uv: ${line}`);
        else if (/^(Resolved|Prepared|Installed|Uninstalled|Audited|Checked) /.test(line)) {
          log.info(`uv: ${line}`);
        } else log.debug(`uv: ${line}`);
      },
      signal,
    });
    if (result.code !== 0) {
      throw new DbtError(
        `uv could not sync "${dir}" with ${files.join(", ")} (exit ${result.code}): ${
          lastMeaningful(result.tail)
        }`,
        {
          hint:
            "PyPI must be reachable (or a UV_INDEX_URL mirror set); rerun with PIPELINE_LOG_LEVEL=debug for uv's output.",
        },
      );
    }
    // sync removed whatever another lock had added: the record is these locks only
    await writeMarker(dir, wanted);
    return { dir, bin, python, created, installed: true };
  } finally {
    lock.close();
  }
}

/** The lock entry pinning uv (its `uv==X \\` line and hash lines), from the first lock with one. */
export function uvEntry(lockText: string): string | undefined {
  const m = /^uv==[^\s\\]+(?:[ \t]*\\\r?\n[ \t]+--hash=\S+)+/m.exec(lockText);
  return m ? m[0] + "\n" : undefined;
}

/** Installs the uv that the locks pin, with pip and its hashes required. */
async function installUv(
  python: string,
  options: { dir: string; files: string[]; log: Logger; signal?: AbortSignal },
): Promise<void> {
  const { dir, files, log, signal } = options;
  let entry: string | undefined;
  for (const file of files) {
    entry = uvEntry(await Deno.readTextFile(file));
    if (entry) break;
  }
  if (!entry) {
    throw new ConfigError(
      `No lock pins uv (expected a "uv==<version>" entry with its hashes in ${files.join(", ")})`,
      { hint: "Regenerate the locks with `deno task lock`." },
    );
  }
  const pinned = join(dir, ".uv-requirement.txt");
  await writeFileAtomic(pinned, entry);
  const result = await runLines(python, {
    args: [
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--no-input",
      "--no-deps",
      "--require-hashes",
      "-r",
      pinned,
    ],
    env: { PIP_DISABLE_PIP_VERSION_CHECK: "1", PYTHONUNBUFFERED: "1" },
    onLine: (line) => log.debug(`pip: ${line}`),
    signal,
  });
  if (result.code !== 0) {
    throw new DbtError(
      `pip could not install uv (${entry.split(" ")[0]}) into "${dir}" (exit ${result.code}): ${
        lastMeaningful(result.tail)
      }`,
      {
        hint:
          "PyPI must be reachable (or a PIP_INDEX_URL mirror set); rerun with PIPELINE_LOG_LEVEL=debug for pip's output.",
      },
    );
  }
  log.info(`venv: installed ${entry.split(" ")[0]} (from the lock, hashes checked)`);
}

async function checkPython(python: string, log: Logger): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, {
      args: ["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      throw new ConfigError(
        `Python not found: DBT_PYTHON="${python}" is not an executable on PATH (dbt needs Python ${
          MIN_PYTHON.join(".")
        } or newer)`,
        { hint: "Install Python 3 (e.g. apt-get install python3 python3-venv) or set DBT_PYTHON." },
      );
    }
    throw error;
  }
  const version = new TextDecoder().decode(out.stdout).trim();
  const m = /^(\d+)\.(\d+)\.\d+$/.exec(version);
  if (!out.success || !m) {
    throw new ConfigError(
      `DBT_PYTHON="${python}" did not report a Python version (exit ${out.code}): ${
        new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? ""
      }`,
    );
  }
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    throw new ConfigError(
      `DBT_PYTHON="${python}" is Python ${version}; dbt-core 1.11 needs Python ${
        MIN_PYTHON.join(".")
      } or newer`,
      { hint: "Install a newer Python and point DBT_PYTHON at it (e.g. DBT_PYTHON=python3.12)." },
    );
  }
  log.debug(`venv: ${python} is Python ${version}`);
}

async function hashFiles(files: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const file of files) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ConfigError(`Lock file not found: "${file}"`, {
          hint: "Locks are committed beside their requirements.txt; `deno task lock` writes them.",
        });
      }
      throw error;
    }
    out.set(file, await sha256Hex(bytes));
  }
  return out;
}

/** Entries of `wanted` whose hash is not recorded. */
function missing(wanted: Map<string, string>, recorded: Map<string, string>): [string, string][] {
  return [...wanted].filter(([file, hash]) => recorded.get(file) !== hash);
}

async function readMarker(dir: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, REQUIREMENTS_MARKER));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return new Map();
    throw error;
  }
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

async function writeMarker(dir: string, hashes: Map<string, string>): Promise<void> {
  const lines = [...hashes].map(([file, hash]) => `${hash}  ${file}`);
  await writeFileAtomic(join(dir, REQUIREMENTS_MARKER), lines.join("\n") + "\n");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function lastMeaningful(lines: string[]): string {
  const useful = lines.filter((l) => l.trim());
  return useful.findLast((l) => /error/i.test(l)) ?? useful.at(-1) ?? "(no output)";
}
