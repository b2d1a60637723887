/**
 * The project's Python virtualenv (default `.venv/`), created on first use from pinned
 * requirements files with the machine's python3, and reused afterwards: the SHA-256 of every
 * requirements file installed is recorded in `<venv>/.requirements.sha256` (sha256sum format),
 * and pip runs again only when a requested file is new or changed.
 * @module
 */

import { join, resolve } from "node:path";
import type { DbtConfig } from "../config.ts";
import { ConfigError, DbtError } from "../errors.ts";
import { writeFileAtomic } from "../fs_atomic.ts";
import { sha256Hex } from "../sha256.ts";
import type { Logger } from "../log.ts";
import { runLines } from "./_process.ts";

/** Oldest Python the pinned dbt-core (1.11) supports. */
export const MIN_PYTHON: readonly [number, number] = [3, 10];

/** Name of the file (inside the venv) recording the installed requirements' hashes. */
export const REQUIREMENTS_MARKER = ".requirements.sha256";

/** Options of {@link ensureVenv}. */
export interface EnsureVenvOptions {
  log: Logger;
  /** Requirements files to install (pinned), e.g. `dbt/requirements.txt`. */
  requirements: string[];
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
  /** Whether this call ran pip. */
  installed: boolean;
}

/** Path of an executable inside the venv (`dbt`, `fakesnow`, `moto_server`...). */
export function venvExecutable(venv: Pick<Venv, "bin">, name: string): string {
  return join(venv.bin, Deno.build.os === "windows" ? `${name}.exe` : name);
}

/**
 * Makes sure the virtualenv exists and has the requirements installed; fast (no subprocess)
 * when the recorded hashes match. Concurrent callers wait for each other (file lock).
 * @throws ConfigError when python3 is missing, too old or cannot create a venv;
 *   DbtError when pip fails.
 * @example
 * const venv = await ensureVenv(config.dbt, { log, requirements: ["dbt/requirements.txt"] });
 */
export async function ensureVenv(
  dbt: Pick<DbtConfig, "venvDir" | "python">,
  options: EnsureVenvOptions,
): Promise<Venv> {
  const { log, signal } = options;
  const dir = resolve(dbt.venvDir);
  const bin = join(dir, Deno.build.os === "windows" ? "Scripts" : "bin");
  const python = join(bin, Deno.build.os === "windows" ? "python.exe" : "python");
  const files = options.requirements.map((f) => resolve(f));
  const wanted = await hashFiles(files);

  const upToDate = async () =>
    (await exists(python)) && missing(wanted, await readMarker(dir)).length === 0;
  if (await upToDate()) {
    log.debug(`venv: ${dir} is up to date`);
    return { dir, bin, python, created: false, installed: false };
  }

  await Deno.mkdir(dir, { recursive: true });
  const lock = await Deno.open(join(dir, ".lock"), { create: true, write: true });
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

    const recorded = await readMarker(dir);
    const changed = missing(wanted, recorded);
    log.info(
      `venv: installing ${
        changed.map(([f]) => f).join(", ")
      } into ${dir} (first use or requirements changed; a few minutes on a fresh machine)`,
    );
    const args = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input"];
    for (const f of files) args.push("-r", f);
    const result = await runLines(python, {
      args,
      env: { PIP_DISABLE_PIP_VERSION_CHECK: "1", PYTHONUNBUFFERED: "1" },
      onLine: (line) => {
        if (/^(ERROR|error:)/.test(line)) log.error(`pip: ${line}`);
        else if (/^WARNING/.test(line)) log.warn(`pip: ${line}`);
        else if (/^(Successfully installed|Collecting|Installing collected)/.test(line)) {
          log.info(`pip: ${line}`);
        } else log.debug(`pip: ${line}`);
      },
      signal,
    });
    if (result.code !== 0) {
      throw new DbtError(
        `pip could not install ${files.join(", ")} into "${dir}" (exit ${result.code}): ${
          lastMeaningful(result.tail)
        }`,
        {
          hint:
            "PyPI must be reachable (or a PIP_INDEX_URL mirror set); rerun with PIPELINE_LOG_LEVEL=debug for pip's output.",
        },
      );
    }
    await writeMarker(dir, new Map([...recorded, ...wanted]));
    return { dir, bin, python, created, installed: true };
  } finally {
    lock.close();
  }
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
        throw new ConfigError(`Requirements file not found: "${file}"`);
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
