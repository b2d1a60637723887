/**
 * One run at a time: a cross-process lock file `<data dir>/pipeline.lock` holding the owner's pid,
 * its start time and the run id. Every way of starting a run (the pipeline task, the CLI, the HTTP
 * trigger, cron) takes it; a second run gets a {@link LockedError} naming the running id.
 *
 * The file is written under a private name and hard-linked into place (atomic: exactly one
 * process wins, and the lock is never seen half-written). A lock left by a process
 * that is gone (killed, crashed, machine rebooted) is detected — the pid no longer exists, is a
 * zombie, or now belongs to another process (Linux: the process start time differs) — and taken
 * over under a short-lived takeover guard, so two processes never both take over.
 *
 * A pid means nothing on another machine or in another container (its own pid namespace), so the
 * lock is also a lease: it records its holder's host (host name and pid namespace) and a lease
 * length, and the holder renews it (the file's modification time) every quarter of the lease while
 * the run lives. A process on the same host judges the holder by its pid (a crash is seen at once);
 * a process anywhere else sharing the folder sees the lock as live until the lease runs out
 * unrenewed (default {@link LEASE_MS}; the hosts' clocks must agree to within the lease).
 * @module
 */

import { join } from "node:path";
import { isRecord } from "./json.ts";
import type { Config } from "./config.ts";
import { ConfigError, LockedError } from "./errors.ts";
import { writeJsonAtomic } from "./fs_atomic.ts";
import { sleep } from "./http.ts";

/** File name of the lock inside the data folder. */
export const LOCK_FILE = "pipeline.lock";

/** How long a lock stays live on other hosts without a renewal. */
export const LEASE_MS = 60_000;

/** What the lock file holds. */
export interface LockInfo {
  /** Process id of the holder. */
  pid: number;
  /** When the lock was taken (ISO 8601). */
  started_at: string;
  /** The run the holder is working on (absent for the moment between lock and run creation). */
  run_id?: string;
  /** Linux: the holder's start time in clock ticks since boot (`/proc/<pid>/stat` field 22). */
  proc_start?: string;
  /** Random id of this acquisition (tells two holders with the same pid apart). */
  token: string;
  /** The holder's host: host name and pid namespace (see {@link hostIdentity}). */
  host?: string;
  /** The lease: the lock is live this long after its last renewal (the file's mtime). */
  lease_ms?: number;
}

/** What {@link isLockHolderAlive} judges by besides the file's content. */
export interface LivenessOptions {
  /** When the lock was last renewed (the file's mtime, ms since the epoch). */
  renewedAt?: number;
  /** This process's host identity (default {@link hostIdentity}). */
  host?: string;
}

/** Options of {@link acquireRunLock}. */
export interface AcquireRunLockOptions {
  /** The run id, when known before the lock is taken (otherwise set it with `setRunId`). */
  runId?: string;
  /** Whether the process that wrote `info` is still running (default: {@link isLockHolderAlive}). */
  isAlive?: (info: LockInfo, options: LivenessOptions) => boolean;
  /** Called when a stale lock is taken over (e.g. to log it). */
  onStale?: (info: LockInfo) => void;
  /** The lease length (default {@link LEASE_MS}); renewed every quarter of it. */
  leaseMs?: number;
  /** This process's host identity (default {@link hostIdentity}; tests simulate other hosts). */
  host?: string;
}

/** Tokens of the locks this process holds (a lock with our pid but another token is stale). */
const held = new Set<string>();

/** A lock taken by this process; release it in a `finally`. */
export class RunLock {
  readonly path: string;
  #info: LockInfo;
  #released = false;
  #heartbeat?: ReturnType<typeof setInterval>;

  constructor(path: string, info: LockInfo) {
    this.path = path;
    this.#info = info;
    const every = Math.max(10, Math.floor((info.lease_ms ?? LEASE_MS) / 4));
    const beat = setInterval(() => this.#renew(), every);
    Deno.unrefTimer(beat); // never keeps the process alive
    this.#heartbeat = beat;
  }

  /** Renews the lease while the lock is ours (a missed beat is retried by the next). */
  async #renew(): Promise<void> {
    try {
      const current = await readLockFile(this.path);
      if (current.kind !== "ok" || current.info.token !== this.#info.token) return this.#stop();
      const now = new Date();
      await Deno.utime(this.path, now, now);
    } catch {
      // the next beat tries again
    }
  }

  #stop(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /** What the lock file says. */
  get info(): Readonly<LockInfo> {
    return this.#info;
  }

  /** Records the run id once the run exists. */
  async setRunId(runId: string): Promise<void> {
    this.#info = { ...this.#info, run_id: runId };
    await writeJsonAtomic(this.path, this.#info);
  }

  /** Removes the lock file if it is still ours. Safe to call twice. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
    held.delete(this.#info.token);
    const current = await readLockFile(this.path);
    if (current.kind === "ok" && current.info.token === this.#info.token) {
      await Deno.remove(this.path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }
}

/** Path of the lock file for a config. */
export function lockPath(config: Pick<Config, "dataDir">): string {
  return join(config.dataDir, LOCK_FILE);
}

/**
 * Takes the run lock, or throws a {@link LockedError} with the running id when a live process
 * holds it. A stale lock (its process is gone) is taken over.
 * @example
 * const lock = await acquireRunLock(config);
 * try { ... await lock.setRunId(run.id); ... } finally { await lock.release(); }
 */
export async function acquireRunLock(
  config: Pick<Config, "dataDir">,
  options: AcquireRunLockOptions = {},
): Promise<RunLock> {
  const {
    runId,
    isAlive = isLockHolderAlive,
    onStale,
    leaseMs = LEASE_MS,
    host = hostIdentity(),
  } = options;
  const path = lockPath(config);
  try {
    return await acquire(config, path, { runId, isAlive, onStale, leaseMs, host });
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    // Not a bug: the data folder cannot be used (a file, not writable, a full disk...).
    throw new ConfigError(
      `PIPELINE_DATA_DIR="${config.dataDir}" cannot hold the run lock ${path}: ${error.message}`,
      { hint: "Set PIPELINE_DATA_DIR to a folder this user can write." },
    );
  }
}

async function acquire(
  config: Pick<Config, "dataDir">,
  path: string,
  { runId, isAlive, onStale, leaseMs, host }:
    & AcquireRunLockOptions
    & Required<Pick<AcquireRunLockOptions, "isAlive" | "leaseMs" | "host">>,
): Promise<RunLock> {
  await Deno.mkdir(config.dataDir, { recursive: true });
  let waitedForId = 0;
  // A few rounds cover the races: the file vanishing between attempts, another process taking
  // over a stale lock at the same moment.
  for (let attempt = 0; attempt < 50; attempt++) {
    const info: LockInfo = {
      pid: Deno.pid,
      started_at: new Date().toISOString(),
      ...(runId === undefined ? {} : { run_id: runId }),
      ...procStartOf(Deno.pid),
      token: crypto.randomUUID(),
      host,
      lease_ms: leaseMs,
    };
    // Marked held before the file exists: a concurrent acquire in this process that reads the
    // new file must see it as alive, not as a stale lock with our pid.
    held.add(info.token);
    let created = false;
    try {
      created = await createLockFile(path, info);
    } finally {
      if (!created) held.delete(info.token);
    }
    if (created) return new RunLock(path, info);
    const current = await readLockFile(path);
    if (current.kind === "missing") continue;
    if (current.kind === "unreadable") {
      // Being written right now (alive), or left half-written by a crash long ago (stale).
      if (Date.now() - current.mtime < UNREADABLE_GRACE_MS) {
        throw lockedError(path, undefined);
      }
    } else if (isAlive(current.info, { renewedAt: current.mtime, host })) {
      // Between taking the lock and creating its run, a holder may not have written the run id
      // yet (resume of the latest run): wait a moment so the error can name it.
      if (current.info.run_id === undefined && waitedForId++ < 25) {
        await sleep(20);
        continue;
      }
      throw lockedError(path, current.info);
    }
    if (await takeOver(path, current)) {
      if (current.kind === "ok") onStale?.(current.info);
    } else {
      await sleep(20);
    }
  }
  throw lockedError(path, undefined);
}

/** The lock's current content, or `undefined` when no run holds it (missing, or stale). */
export async function readRunLock(
  config: Pick<Config, "dataDir">,
  options: Pick<AcquireRunLockOptions, "isAlive" | "host"> = {},
): Promise<LockInfo | undefined> {
  const { isAlive = isLockHolderAlive, host = hostIdentity() } = options;
  const current = await readLockFile(lockPath(config));
  return current.kind === "ok" && isAlive(current.info, { renewedAt: current.mtime, host })
    ? current.info
    : undefined;
}

/**
 * Whether the process that wrote a lock is still running. A lock from another host (or container)
 * is live while its lease is: renewed less than `lease_ms` ago. On this host the pid decides: our
 * own pid counts only for the locks this process holds; on Linux `/proc/<pid>/stat` must exist, not
 * be a zombie and (when recorded) have the same start time; elsewhere `kill(pid, SIGCONT)` must not
 * answer "no such process".
 */
export function isLockHolderAlive(info: LockInfo, options: LivenessOptions = {}): boolean {
  const { renewedAt, host = hostIdentity() } = options;
  if (info.host !== undefined && info.host !== host) {
    if (renewedAt === undefined || typeof info.lease_ms !== "number") return true;
    return Date.now() - renewedAt < info.lease_ms;
  }
  if (!Number.isSafeInteger(info.pid) || info.pid <= 0) return false;
  if (info.pid === Deno.pid) return held.has(info.token);
  const stat = readProcStat(info.pid);
  if (stat === "no-proc") {
    try {
      Deno.kill(info.pid, "SIGCONT");
      return true;
    } catch (error) {
      // Not allowed to signal (another user's process, or no --allow-run): assume it runs.
      return !(error instanceof Deno.errors.NotFound);
    }
  }
  if (stat === undefined) return false;
  if (stat.state === "Z" || stat.state === "X") return false;
  return info.proc_start === undefined || info.proc_start === stat.start;
}

const UNREADABLE_GRACE_MS = 5_000;
const TAKEOVER_STALE_MS = 30_000;

type LockRead =
  | { kind: "ok"; info: LockInfo; mtime: number }
  | { kind: "missing" }
  | { kind: "unreadable"; mtime: number };

/**
 * Creates the lock file if none exists; false when one does. The content is written in full under
 * a private name first and hard-linked into place: link(2) fails when the lock exists (exactly
 * one process wins) and the lock never appears half-written, so a second run always reads the
 * holder's pid and run id. File systems without hard links fall back to `createNew` + write.
 */
async function createLockFile(path: string, info: LockInfo): Promise<boolean> {
  const bytes = new TextEncoder().encode(JSON.stringify(info, null, 2) + "\n");
  const tmp = `${path}.${info.token}.tmp`;
  try {
    await writeSynced(tmp, bytes, { createNew: true });
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  try {
    await Deno.link(tmp, path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    // No hard links here (some network or FUSE file systems): create the lock in place.
    try {
      await writeSynced(path, bytes, { createNew: true });
    } catch (inPlace) {
      if (inPlace instanceof Deno.errors.AlreadyExists) return false;
      throw inPlace;
    }
    return true;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

async function writeSynced(
  path: string,
  bytes: Uint8Array,
  options: { createNew: boolean },
): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: options.createNew, mode: 0o644 });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
}

async function readLockFile(path: string): Promise<LockRead> {
  let text: string;
  let mtime: number;
  try {
    text = await Deno.readTextFile(path);
    mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { kind: "missing" };
    throw error;
  }
  try {
    const info: unknown = JSON.parse(text);
    if (!isRecord(info) || typeof info.pid !== "number" || typeof info.token !== "string") {
      throw new TypeError("missing pid or token");
    }
    return { kind: "ok", info: info as unknown as LockInfo, mtime }; // pid and token checked
  } catch {
    return { kind: "unreadable", mtime };
  }
}

/**
 * Removes a stale lock, guarded by `<lock>.takeover` (created with `createNew`) so that two
 * processes that both saw the same stale lock cannot both remove it — the second one would delete
 * the lock the first one just took. Returns false when another process is taking over.
 */
async function takeOver(path: string, seen: LockRead): Promise<boolean> {
  const guard = `${path}.takeover`;
  try {
    (await Deno.open(guard, { write: true, createNew: true })).close();
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    // A guard left by a process that died during a takeover (a window of microseconds).
    const age = await Deno.stat(guard).then((s) => Date.now() - (s.mtime?.getTime() ?? 0))
      .catch(() => 0);
    if (age > TAKEOVER_STALE_MS) await Deno.remove(guard).catch(() => {});
    return false;
  }
  try {
    const now = await readLockFile(path);
    const same = (now.kind === "ok" && seen.kind === "ok" && now.info.token === seen.info.token) ||
      // An unreadable file is the same one only with the same modification time (not a lock
      // another process has created since, in the fallback's moment between create and write).
      (now.kind === "unreadable" && seen.kind === "unreadable" && now.mtime === seen.mtime);
    if (same) {
      await Deno.remove(path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
    return true;
  } finally {
    await Deno.remove(guard).catch(() => {});
  }
}

function lockedError(path: string, info: LockInfo | undefined): LockedError {
  const id = info?.run_id ?? "unknown";
  const who = info
    ? `run ${info.run_id ?? "(starting)"} (pid ${info.pid}, started ${info.started_at})`
    : "another process (lock being written)";
  return new LockedError(
    id,
    `Another run is in progress: ${who} holds ${path}; wait for it to finish`,
  );
}

function readProcStat(pid: number): { state: string; start: string } | undefined | "no-proc" {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return procAvailable() ? undefined : "no-proc";
    }
    return "no-proc";
  }
  // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); the start time is field 22.
  return { state: fields[0] ?? "", start: fields[19] ?? "" };
}

let procChecked: boolean | undefined;
function procAvailable(): boolean {
  if (procChecked === undefined) {
    try {
      procChecked = Deno.statSync(`/proc/${Deno.pid}`).isDirectory;
    } catch {
      procChecked = false;
    }
  }
  return procChecked;
}

function procStartOf(pid: number): { proc_start?: string } {
  const stat = readProcStat(pid);
  return typeof stat === "object" && stat.start ? { proc_start: stat.start } : {};
}

let identity: string | undefined;

/**
 * This process's host as a lock sees it: the host name (the UTS namespace's, so each container has
 * its own) and the pid namespace (`/proc/self/ns/pid`), e.g. `"web-1/pid:[4026531836]"`.
 */
export function hostIdentity(): string {
  if (identity !== undefined) return identity;
  let name = "";
  try {
    name = Deno.readTextFileSync("/proc/sys/kernel/hostname").trim();
  } catch {
    try {
      name = Deno.hostname();
    } catch {
      name = "unknown-host";
    }
  }
  let ns = "";
  try {
    ns = Deno.readLinkSync("/proc/self/ns/pid");
  } catch {
    // not Linux: the host name alone
  }
  identity = ns ? `${name}/${ns}` : name;
  return identity;
}

/** An error of the file system (a `Deno.errors` class, or an OS error with its code). */
function isFileSystemError(error: unknown): error is Error {
  if (!(error instanceof Error)) return false;
  if (Object.values(Deno.errors).some((type) => error instanceof type)) return true;
  return typeof (error as { code?: unknown }).code === "string";
}
