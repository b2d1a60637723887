/**
 * Tools of the fault-injection suite (private to `tests/faults/`): child pipelines with a time
 * bound, an HTTP proxy that injects faults in front of a real server (moto, fakesnow), a TCP proxy
 * that resets connections, waiting for a step in a run's manifest, a process holding a DuckDB
 * file, and the warehouse's row counts.
 * @module
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Config } from "../../lib/config.ts";
import { listRunIds, type Manifest, type StepName } from "../../lib/run.ts";

/** Root of the project, with a trailing slash. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
/** The project's venv Python (duckdb, boto3, moto, fakesnow). */
export const VENV_PYTHON = `${ROOT}.venv/bin/python`;

/** Everything a child printed or a server answered, kept for the secrets scan. */
export interface Transcript {
  label: string;
  text: string;
}

/** What a child run gave. */
export interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Killed because it outlived its time bound. */
  timedOut: boolean;
  ms: number;
}

/** Options of {@link runScript} and {@link spawnScript}. */
export interface ScriptOptions {
  /** Working directory (a temp folder: nothing may depend on the current directory). */
  cwd: string;
  /** Killed (SIGKILL) after this long (default 90 s): no case may hang. */
  timeoutMs?: number;
  /** Receives the output for the secrets scan. */
  transcripts?: Transcript[];
  label?: string;
  /** Command prefix (e.g. `unshare -m ...` to run in a private mount namespace). */
  wrap?: string[];
}

/** A child `deno run -A scripts/<script>` in progress. */
export interface RunningScript {
  pid: number;
  /** Settles when it exits (or is killed). */
  result: Promise<ChildResult>;
  kill(signal?: Deno.Signal): void;
}

/** Environment every child gets besides the case's own (no inherited settings). */
export function baseEnv(): Record<string, string> {
  return {
    HOME: Deno.env.get("HOME") ?? "/tmp",
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    NO_COLOR: "1",
    PIPELINE_LOG_FORMAT: "json",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
  };
}

/** Starts `deno run -A scripts/<script> <args>` with only `env` (plus {@link baseEnv}). */
export function spawnScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  options: ScriptOptions,
): RunningScript {
  const { cwd, timeoutMs = 90_000, transcripts, label = `${script} ${args.join(" ")}` } = options;
  const deno = [
    Deno.execPath(),
    "run",
    "-A",
    "--unstable-cron",
    "--config",
    `${ROOT}deno.json`,
    `${ROOT}scripts/${script}`,
    ...args,
  ];
  const argv = [...(options.wrap ?? []), ...deno];
  const started = performance.now();
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd,
    clearEnv: true,
    env: { ...baseEnv(), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  const decode = async (stream: ReadableStream<Uint8Array>) => {
    let text = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
    return text;
  };
  const result = (async () => {
    const [stdout, stderr, status] = await Promise.all([
      decode(child.stdout),
      decode(child.stderr),
      child.status,
    ]);
    clearTimeout(timer);
    transcripts?.push({ label: `${label} (stdout)`, text: stdout });
    transcripts?.push({ label: `${label} (stderr)`, text: stderr });
    return {
      code: status.signal ? 128 + signalNumber(status.signal) : status.code,
      stdout,
      stderr,
      timedOut,
      ms: Math.round(performance.now() - started),
    };
  })();
  return {
    pid: child.pid,
    result,
    kill(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* gone */ }
    },
  };
}

/** Runs a task script to the end (see {@link spawnScript}). */
export function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  options: ScriptOptions,
): Promise<ChildResult> {
  return spawnScript(script, args, env, options).result;
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[signal] ?? 0;
}

/** A JSON log record of a child (`PIPELINE_LOG_FORMAT=json`). */
export interface LogLine {
  level: string;
  msg: string;
  exit_code?: number;
  hint?: string;
  step?: string;
  stack?: string;
  [field: string]: unknown;
}

/** The JSON log records in a child's stderr. */
export function logLines(stderr: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch { /* not a record */ }
  }
  return out;
}

/** The final error record (the one carrying the exit code), if any. */
export function finalError(stderr: string): LogLine | undefined {
  return logLines(stderr).findLast((r) => r.level === "error" && r.exit_code !== undefined);
}

/** Reads a run's manifest, or undefined while it does not exist (or is being replaced). */
export async function readManifest(runDir: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(join(runDir, "manifest.json"))) as Manifest;
  } catch {
    return undefined;
  }
}

/** Run ids in a data dir's runs folder, oldest first (the order `--resume` uses). */
export function runIds(dataDir: string): Promise<string[]> {
  return listRunIds({ runsDir: join(dataDir, "runs") } as Config);
}

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/** Polls `check` until it returns a value (not undefined); throws after the time bound. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  options: WaitForOptions = {},
): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = 5, what = "a condition" } = options;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until a run newer than `after` shows `step` as running in its manifest; returns the run
 * folder.
 */
export function waitForStepRunning(
  dataDir: string,
  step: StepName,
  options: { after: string[]; timeoutMs?: number },
): Promise<string> {
  return waitFor(async () => {
    for (const id of (await runIds(dataDir)).filter((i) => !options.after.includes(i))) {
      const dir = join(dataDir, "runs", id);
      const m = await readManifest(dir);
      if (m?.steps[step]?.status === "running") return dir;
    }
    return undefined;
  }, { timeoutMs: options.timeoutMs ?? 60_000, what: `${step} to run` });
}

/**
 * Waits for a file system event under `dir` matching `match` (e.g. a temp file created), then
 * returns; gives up (returns false) after `timeoutMs`.
 */
export async function waitForFsEvent(
  dir: string,
  match: (event: Deno.FsEvent) => boolean,
  options: { timeoutMs: number; ready?: () => void },
): Promise<boolean> {
  await Deno.mkdir(dir, { recursive: true });
  const watcher = Deno.watchFs(dir, { recursive: true });
  const timer = setTimeout(() => watcher.close(), options.timeoutMs);
  options.ready?.();
  try {
    for await (const event of watcher) {
      if (match(event)) return true;
    }
    return false;
  } finally {
    clearTimeout(timer);
    try {
      watcher.close();
    } catch { /* closed by the timer */ }
  }
}

/** What {@link HttpFaultProxy} hands to its rule. */
export interface ProxiedRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: Uint8Array;
  /** 1-based count of requests seen by the proxy. */
  n: number;
}

/** Answer this instead of forwarding, or `undefined` to forward (after any delay the rule took). */
export type ProxyRule = (request: ProxiedRequest) => Promise<Response | undefined>;

/**
 * An HTTP reverse proxy on 127.0.0.1 in front of a real server, so a fault happens at the real
 * boundary (the SDK's HTTP client talks to it as to the service): a rule may answer an error
 * instead of forwarding, or delay a request; `down()` closes the port (connection refused) and
 * `up()` opens it again on the same port.
 */
export class HttpFaultProxy {
  readonly upstream: string;
  port = 0;
  /** Requests seen (method and path). */
  readonly seen: { method: string; path: string; status: number }[] = [];
  rule?: ProxyRule;
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #abort = new AbortController();
  #count = 0;

  constructor(upstream: string) {
    this.upstream = upstream.replace(/\/+$/, "");
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get host(): string {
    return "127.0.0.1";
  }

  /** Starts listening (on a free port the first time, then on the same port). */
  up(): void {
    if (this.#server) return;
    this.#abort = new AbortController();
    this.#server = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: this.port,
        onListen: () => {},
        signal: this.#abort.signal,
      },
      (req) => this.#handle(req),
    );
    this.port = this.#server.addr.port;
  }

  /** Stops listening: the endpoint is unreachable (connection refused). */
  async down(): Promise<void> {
    if (!this.#server) return;
    this.#abort.abort();
    await this.#server.finished;
    this.#server = undefined;
  }

  close(): Promise<void> {
    return this.down();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const body = new Uint8Array(await req.arrayBuffer());
    const entry = { method: req.method, path: url.pathname + url.search, status: 0 };
    this.seen.push(entry);
    const n = ++this.#count;
    const answered = await this.rule?.({ method: req.method, url, headers: req.headers, body, n });
    if (answered) {
      entry.status = answered.status;
      return answered;
    }
    const headers = new Headers(req.headers);
    for (const h of ["host", "content-length", "connection", "transfer-encoding"]) {
      headers.delete(h);
    }
    let res: Response;
    try {
      res = await fetch(`${this.upstream}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
        redirect: "manual",
      });
    } catch (error) {
      entry.status = 502;
      return new Response(`proxy: ${(error as Error).message}`, { status: 502 });
    }
    entry.status = res.status;
    const out = new Headers(res.headers);
    // fetch decoded the body; the length and encoding no longer apply
    for (const h of ["content-encoding", "content-length", "transfer-encoding", "connection"]) {
      out.delete(h);
    }
    const empty = req.method === "HEAD" || [101, 204, 205, 304].includes(res.status);
    const data = empty ? null : new Uint8Array(await res.arrayBuffer());
    if (empty) await res.body?.cancel();
    return new Response(data, { status: res.status, statusText: res.statusText, headers: out });
  }
}

/**
 * A TCP proxy that resets connections: the next `resetNext` connections (or every one while
 * `resetAll`) are accepted and closed at once without an answer — what a client sees when a load
 * balancer or the server drops the connection — and the others are piped to the upstream port.
 */
export class TcpResetProxy {
  readonly port: number;
  resetNext = 0;
  resetAll = false;
  /** Connections reset so far. */
  resets = 0;
  #listener: Deno.TcpListener;
  #upstreamPort: number;
  #open = new Set<Deno.TcpConn>();
  #loop: Promise<void>;

  constructor(upstreamPort: number) {
    this.#upstreamPort = upstreamPort;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#loop = this.#accept();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async #accept(): Promise<void> {
    for await (const conn of this.#listener) {
      if (this.resetAll || this.resetNext > 0) {
        if (!this.resetAll) this.resetNext--;
        this.resets++;
        // read a little of the request first, so the client has sent it: then close
        const buf = new Uint8Array(64);
        await conn.read(buf).catch(() => null);
        try {
          conn.close();
        } catch { /* closed */ }
        continue;
      }
      this.#pipe(conn).catch(() => {});
    }
  }

  async #pipe(conn: Deno.TcpConn): Promise<void> {
    this.#open.add(conn);
    let upstream: Deno.TcpConn | undefined;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#upstreamPort });
      this.#open.add(upstream);
      await Promise.all([
        conn.readable.pipeTo(upstream.writable).catch(() => {}),
        upstream.readable.pipeTo(conn.writable).catch(() => {}),
      ]);
    } finally {
      for (const c of [conn, upstream]) {
        if (!c) continue;
        this.#open.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      }
    }
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const c of this.#open) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#loop.catch(() => {});
  }
}

/**
 * Another process (Python's duckdb) holding the DuckDB file open for writing, as a second
 * pipeline or an analyst's notebook would; `release()` ends it.
 */
export async function holdDuckDb(path: string): Promise<{ pid: number; release(): Promise<void> }> {
  const child = new Deno.Command(VENV_PYTHON, {
    args: [
      "-c",
      "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('holding', flush=True)\nsys.stdin.read()",
      path,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  if (!first.value?.includes("holding")) {
    const err = await new Response(child.stderr).text();
    throw new Error(`the DuckDB holder did not start: ${err}`);
  }
  return {
    pid: child.pid,
    async release() {
      await child.stdin.close().catch(() => {});
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await child.status;
    },
  };
}

/** Row counts of the warehouse (raw table and the three models). */
export interface WarehouseCounts {
  /** Rows of raw.top_tracks. */
  raw: number;
  /** Rows of the latest load of each snapshot date (what the models use), by date. */
  rawLatestByDay: Record<string, number>;
  /** raw rows that repeat (snapshot_date, time_range, rank) within one load. */
  rawDuplicates: number;
  /** raw rows minus the rows the load history says were loaded (0 when consistent). */
  rawUnaccounted: number;
  /** Files loaded twice with the same content (the history's key forbids it). */
  filesLoadedTwice: number;
  top_tracks: number;
  topTracksByDay: Record<string, number>;
  /** top_tracks rows that repeat (snapshot_date, time_range, rank). */
  topTracksDuplicates: number;
  audio_features: number;
  inter_top_weekly_audio_features: number;
}

/** Reads {@link WarehouseCounts} from a DuckDB warehouse file (opened read-only, then closed). */
export async function duckCounts(
  path: string,
  options: { models: boolean },
): Promise<WarehouseCounts> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  try {
    const con = await instance.connect();
    try {
      const one = async (sql: string) =>
        Number((await con.runAndReadAll(sql)).getRowsJS()[0]?.[0] ?? 0);
      const byDay = async (sql: string) =>
        Object.fromEntries(
          (await con.runAndReadAll(sql)).getRowsJS().map((r) => [String(r[0]), Number(r[1])]),
        );
      const latest = `(select *, dense_rank() over (partition by snapshot_date, time_range
                         order by loaded_at desc, run_id desc, source_file desc) as k
                       from raw.top_tracks)`;
      const counts: WarehouseCounts = {
        raw: await one("select count(*) from raw.top_tracks"),
        rawLatestByDay: await byDay(
          `select cast(snapshot_date as varchar), count(*) from ${latest} where k = 1 group by 1`,
        ),
        rawDuplicates: await one(
          `select coalesce(sum(n - 1), 0) from (select count(*) as n from raw.top_tracks
             group by snapshot_date, time_range, rank, loaded_at, run_id) where n > 1`,
        ),
        rawUnaccounted: await one(
          `select (select count(*) from raw.top_tracks) -
                  (select coalesce(sum(rows_loaded), 0) from raw._load_history)`,
        ),
        filesLoadedTwice: await one(
          `select count(*) from (select file_uri, sha256 from raw._load_history
             group by 1, 2 having count(*) > 1)`,
        ),
        top_tracks: 0,
        topTracksByDay: {},
        topTracksDuplicates: 0,
        audio_features: 0,
        inter_top_weekly_audio_features: 0,
      };
      if (options.models) {
        counts.top_tracks = await one("select count(*) from main.top_tracks");
        counts.topTracksByDay = await byDay(
          "select cast(snapshot_date as varchar), count(*) from main.top_tracks group by 1",
        );
        counts.topTracksDuplicates = await one(
          `select count(*) - count(distinct (snapshot_date, time_range, rank))
             from main.top_tracks`,
        );
        counts.audio_features = await one("select count(*) from main.audio_features");
        counts.inter_top_weekly_audio_features = await one(
          "select count(*) from main.inter_top_weekly_audio_features",
        );
      }
      return counts;
    } finally {
      con.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

/** Runs SQL on a DuckDB file from another process (Python's duckdb), e.g. to plant a bad row. */
export async function duckSql(path: string, sql: string): Promise<string> {
  const out = await new Deno.Command(VENV_PYTHON, {
    args: [
      "-c",
      "import duckdb, sys\ncon = duckdb.connect(sys.argv[1])\nr = con.execute(sys.argv[2]).fetchall()\nprint(r)",
      path,
      sql,
    ],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

/** Whether this process may create a private mount namespace (root with CAP_SYS_ADMIN). */
export async function canUnshareMounts(): Promise<boolean> {
  try {
    const out = await new Deno.Command("unshare", {
      args: ["-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp /tmp"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Command prefix running the child in a private mount namespace where `dir` is a read-only bind
 * mount of itself: the folder is read-only for that process only (even for root), and nothing
 * changes for anyone else or outlives the child.
 */
export function readOnlyMountWrap(dir: string): string[] {
  return [
    "unshare",
    "-m",
    "sh",
    "-c",
    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && shift && exec "$@"',
    dir,
    "--",
  ];
}

/**
 * A command prefix that runs the child with a full disk at `dir`: a 64 KiB tmpfs mounted over it
 * and filled, in the child's own mount namespace (root; see {@link canUnshareMounts}).
 */
export function fullDiskMountWrap(dir: string): string[] {
  return [
    "unshare",
    "-m",
    "sh",
    "-c",
    'mount -t tmpfs -o size=64k tmpfs "$0" && { head -c 1048576 /dev/zero > "$0/.filler" 2>/dev/null; true; } && shift && exec "$@"',
    dir,
    "--",
  ];
}

const KILL_SHIM_C = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int hit(const char *path) {
  const char *want = getenv("FAULT_KILL_ON_RENAME_TO");
  if (!want || !*want || !path) return 0;
  size_t n = strlen(path), m = strlen(want);
  return n >= m && strcmp(path + n - m, want) == 0;
}
int rename(const char *oldpath, const char *newpath) {
  static int (*real)(const char *, const char *);
  if (hit(newpath)) kill(getpid(), SIGKILL);
  if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
  return real(oldpath, newpath);
}
int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
  static int (*real)(int, const char *, int, const char *);
  if (hit(newpath)) kill(getpid(), SIGKILL);
  if (!real) real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
  return real(olddirfd, oldpath, newdirfd, newpath);
}
`;

/**
 * Compiles a tiny LD_PRELOAD library that SIGKILLs its own process when it is about to rename a
 * file into a path ending with `$FAULT_KILL_ON_RENAME_TO` — i.e. the moment an output (already
 * complete in its temp file) would be put in place. Returns its path, or undefined without a C
 * compiler (the suite then kills by polling the manifest).
 */
export async function compileKillShim(dir: string): Promise<string | undefined> {
  const src = join(dir, "kill_on_rename.c");
  const lib = join(dir, "kill_on_rename.so");
  await Deno.writeTextFile(src, KILL_SHIM_C);
  try {
    const out = await new Deno.Command("cc", {
      args: ["-shared", "-fPIC", "-O2", "-o", lib, src, "-ldl"],
      stdout: "null",
      stderr: "piped",
    }).output();
    return out.success ? lib : undefined;
  } catch {
    return undefined;
  }
}
