/**
 * The connection guard in front of `serve`'s HTTP server. `Deno.serve` has no header or body read
 * deadline and no connection cap (denoland/deno#3515), and its listener ends for good when an
 * accept fails with "Too many open files". So `serve` listens on TCP itself and hands each request
 * to `Deno.serve` on a private Unix socket (in a 0700 temp folder), with:
 *
 * - a deadline for the request head ({@link GuardOptions.headerTimeoutMs}, 408) and one for the
 *   body ({@link GuardOptions.bodyTimeoutMs}); a per-write deadline for the response, so a client
 *   that never reads cannot hold its connection;
 * - a cap on concurrent connections derived from the process's file limit (three descriptors per
 *   connection, a reserve kept for the run itself), so the process never reaches the limit: at the
 *   cap the oldest connection still sending its head is dropped for the newcomer, or the newcomer
 *   gets 503 when every slot carries a real request;
 * - one request per connection (`connection: close`), so an idle keep-alive holds nothing;
 * - an accept loop that outlives accept errors (EMFILE, ENFILE): it backs off, frees the oldest
 *   unfinished head, and goes on; and a backend server that is restarted if it ever ends.
 *
 * Bodies must come with `Content-Length` (411 otherwise): the API's bodies are small JSON.
 * @module
 */

import type { Logger } from "../log.ts";

/** Limits of {@link serveGuarded} (defaults in parentheses). */
export interface GuardOptions {
  hostname: string;
  port: number;
  handler: (request: Request) => Response | Promise<Response>;
  log: Logger;
  /** Time for a client to send the whole request head (10 s). */
  headerTimeoutMs?: number;
  /** Time for a client to send the body after its head (30 s). */
  bodyTimeoutMs?: number;
  /** Time one write of the response may take before the client counts as gone (30 s). */
  writeTimeoutMs?: number;
  /** Largest request head (32 KiB; 431 beyond). */
  maxHeaderBytes?: number;
  /** Concurrent connections (default: from the file limit, see {@link connectionCap}). */
  maxConnections?: number;
}

/** A running guarded server. */
export interface GuardedServer {
  /** The bound TCP address. */
  readonly addr: Deno.NetAddr;
  /** The connection cap in force. */
  readonly maxConnections: number;
  /** Connections open right now. */
  active(): number;
  /**
   * Stops accepting, drops connections still sending their head, and resolves once every request
   * in progress has been answered.
   */
  shutdown(): Promise<void>;
  /** Closes every connection at once (after a shutdown's grace ran out). */
  abort(): void;
}

/** Descriptors kept free for the run (files, DuckDB, outgoing requests) at any connection count. */
export const FD_RESERVE = 128;
const FDS_PER_CONNECTION = 3; // client socket, our end of the Unix socket, Deno.serve's end
const MAX_CAP = 512;
const MIN_CAP = 8;

/**
 * The connection cap for a soft file limit: what fits in `(limit - FD_RESERVE) / 3`, between 8 and
 * 512 (the limit is read from `/proc/self/limits`; 128 where it cannot be read).
 */
export function connectionCap(fileLimit: number | undefined = readFileLimit()): number {
  if (fileLimit === undefined) return 128;
  const fit = Math.floor((fileLimit - FD_RESERVE) / FDS_PER_CONNECTION);
  return Math.max(MIN_CAP, Math.min(MAX_CAP, fit));
}

/** The soft "Max open files" of this process (Linux), or `undefined`. */
export function readFileLimit(): number | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (!m) return undefined;
    return m[1] === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return undefined;
  }
}

interface Connection {
  conn: Deno.Conn;
  /** "head" until the request head has arrived; such connections are the first to be dropped. */
  phase: "head" | "busy";
  since: number;
  backend?: Deno.Conn;
}

/**
 * Serves `handler` on `hostname:port` behind the guard. Throws what `Deno.listen` throws
 * (`AddrInUse`, `AddrNotAvailable`, ...) when the address cannot be bound.
 */
export async function serveGuarded(options: GuardOptions): Promise<GuardedServer> {
  const {
    log,
    headerTimeoutMs = 10_000,
    bodyTimeoutMs = 30_000,
    writeTimeoutMs = 30_000,
    maxHeaderBytes = 32 * 1024,
  } = options;
  const cap = options.maxConnections ?? connectionCap();
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const dir = await Deno.makeTempDir({ prefix: "spotify-pipeline-serve-" });
  await Deno.chmod(dir, 0o700);

  let closing = false;
  const conns = new Set<Connection>();
  let generation = 0;
  let backend = startBackend();

  function startBackend(): { path: string; server: Deno.HttpServer<Deno.UnixAddr> } {
    const path = `${dir}/http-${generation++}.sock`;
    const server = Deno.serve({ path, onListen: () => {} }, options.handler);
    server.finished.catch((error) => {
      if (closing) return;
      // Should not happen below the cap, but if the backend's listener ends, serve on a new one.
      log.warn(`HTTP server ended (${error?.message ?? error}); starting a new one`);
      if (backend.server === server) backend = startBackend();
    });
    return { path, server };
  }

  /** Drops the connection longest in "head" (at least `minAgeMs` there); false if none. */
  function dropOldestHead(minAgeMs = 0): boolean {
    let oldest: Connection | undefined;
    const before = performance.now() - minAgeMs;
    for (const c of conns) {
      if (c.phase === "head" && c.since <= before && (!oldest || c.since < oldest.since)) {
        oldest = c;
      }
    }
    if (!oldest) return false;
    conns.delete(oldest); // its descriptor is free now, not when its handler notices
    closeQuietly(oldest.conn);
    return true;
  }

  async function handle(c: Connection): Promise<void> {
    const { conn } = c;
    try {
      const head = await readHead(conn, { timeoutMs: headerTimeoutMs, maxBytes: maxHeaderBytes });
      if ("status" in head) {
        await reply(conn, head.status, head.code, head.message, writeTimeoutMs);
        return;
      }
      c.phase = "busy";
      let up: Deno.Conn;
      try {
        up = await Deno.connect({ transport: "unix", path: backend.path });
      } catch {
        await reply(conn, 503, "unavailable", "The server is busy; try again", writeTimeoutMs);
        return;
      }
      c.backend = up;
      await writeAll(up, head.head, writeTimeoutMs);
      const firstBody = head.rest.subarray(0, head.contentLength);
      if (firstBody.length) await writeAll(up, firstBody, writeTimeoutMs);
      const body = pumpBody(conn, up, head.contentLength - firstBody.length, bodyTimeoutMs);
      await Promise.all([
        body.catch(() => closeQuietly(up)),
        pump(up, conn, writeTimeoutMs).catch(() => {}),
      ]);
    } catch {
      // A client that went away or missed a deadline: nothing to answer.
    } finally {
      if (c.backend) closeQuietly(c.backend);
      closeQuietly(conn);
      conns.delete(c);
    }
  }

  const accepting = (async () => {
    let backoff = 0;
    let lastWarn = 0;
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoff = 0;
      } catch (error) {
        if (closing || error instanceof Deno.errors.BadResource) break;
        // EMFILE/ENFILE and friends: free what can be freed, wait, accept again.
        if (Date.now() - lastWarn > 10_000) {
          lastWarn = Date.now();
          log.warn(`Cannot accept connections (${(error as Error).message}); retrying`, {
            open_connections: conns.size,
          });
        }
        dropOldestHead();
        backoff = Math.min(1_000, backoff ? backoff * 2 : 10);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      // A head gets a moment before a newcomer may push it out (a client's head is usually in
      // its first packet).
      if (conns.size >= cap && !dropOldestHead(Math.min(250, headerTimeoutMs / 4))) {
        // Every slot carries a request: tell the newcomer, without waiting for it.
        reply(conn, 503, "unavailable", "Too many connections; try again", 1_000)
          .catch(() => {})
          .finally(() => closeQuietly(conn));
        continue;
      }
      const c: Connection = { conn, phase: "head", since: performance.now() };
      conns.add(c);
      handle(c);
    }
  })();

  const addr = listener.addr as Deno.NetAddr;
  return {
    addr,
    maxConnections: cap,
    active: () => conns.size,
    async shutdown() {
      closing = true;
      closeQuietly(listener);
      await accepting;
      for (const c of conns) if (c.phase === "head") closeQuietly(c.conn);
      await backend.server.shutdown();
      while (conns.size) await new Promise((resolve) => setTimeout(resolve, 10));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    abort() {
      closing = true;
      closeQuietly(listener);
      for (const c of conns) {
        closeQuietly(c.conn);
        if (c.backend) closeQuietly(c.backend);
      }
    },
  };
}

type Head =
  | { head: Uint8Array; rest: Uint8Array; contentLength: number }
  | { status: number; code: string; message: string };

const HOP_HEADERS = new Set(["connection", "keep-alive", "upgrade", "http2-settings"]);
const latin1 = new TextDecoder("latin1");

/** Reads the request head within the deadline, and rewrites it for one request per connection. */
async function readHead(
  conn: Deno.Conn,
  { timeoutMs, maxBytes }: { timeoutMs: number; maxBytes: number },
): Promise<Head> {
  const deadline = new Deadline(timeoutMs);
  try {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(8192);
    while (true) {
      const n = await deadline.race(conn.read(chunk));
      if (n === TIMED_OUT) {
        return {
          status: 408,
          code: "request_timeout",
          message: `The request head did not arrive within ${timeoutMs} ms`,
        };
      }
      if (n === null) throw new Deno.errors.UnexpectedEof("request head");
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
      const end = headEnd(buf);
      if (end >= 0 && end <= maxBytes) {
        return parseHead(buf.subarray(0, end), buf.subarray(end + 4));
      }
      if (end > maxBytes || buf.length > maxBytes) {
        return {
          status: 431,
          code: "headers_too_large",
          message: `Request head over ${maxBytes} bytes`,
        };
      }
    }
  } finally {
    deadline.clear();
  }
}

const TIMED_OUT = Symbol("timed out");

/** One deadline that several awaits race against. */
class Deadline {
  #timer: ReturnType<typeof setTimeout>;
  #expired: Promise<typeof TIMED_OUT>;

  constructor(ms: number) {
    let fire!: () => void;
    this.#expired = new Promise((resolve) => (fire = () => resolve(TIMED_OUT)));
    this.#timer = setTimeout(fire, ms);
  }

  race<T>(work: Promise<T>): Promise<T | typeof TIMED_OUT> {
    return Promise.race([work, this.#expired]);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

function headEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

function parseHead(raw: Uint8Array, rest: Uint8Array): Head {
  const lines = latin1.decode(raw).split("\r\n");
  const requestLine = lines[0] ?? "";
  const m = /^[A-Za-z]+ \S+ HTTP\/(\d\.\d)$/.exec(requestLine);
  if (!m) {
    return { status: 400, code: "bad_request", message: "Malformed request line" };
  }
  if (m[1] !== "1.1" && m[1] !== "1.0") {
    return { status: 505, code: "http_version", message: "Only HTTP/1.0 and HTTP/1.1 are served" };
  }
  const kept = [requestLine];
  const lengths = new Set<string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return { status: 400, code: "bad_request", message: "Malformed header line" };
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "transfer-encoding") {
      return {
        status: 411,
        code: "length_required",
        message: "Send the request body with Content-Length (chunked bodies are not accepted)",
      };
    }
    if (name === "content-length") {
      for (const v of value.split(",")) lengths.add(v.trim());
    }
    if (HOP_HEADERS.has(name)) continue;
    kept.push(line);
  }
  const [length = "0", ...more] = lengths;
  if (more.length || !/^\d{1,15}$/.test(length)) {
    return { status: 400, code: "bad_request", message: "Invalid Content-Length" };
  }
  kept.push("connection: close", "", "");
  const head = new Uint8Array(kept.join("\r\n").length);
  const text = kept.join("\r\n");
  for (let i = 0; i < text.length; i++) head[i] = text.charCodeAt(i) & 0xff;
  return { head, rest, contentLength: Number(length) };
}

/** Copies `length` body bytes from the client within the deadline; then stops reading it. */
async function pumpBody(
  from: Deno.Conn,
  to: Deno.Conn,
  length: number,
  timeoutMs: number,
): Promise<void> {
  if (length <= 0) return;
  const deadline = new Deadline(timeoutMs);
  try {
    const chunk = new Uint8Array(Math.min(65536, length));
    let left = length;
    while (left > 0) {
      const n = await deadline.race(from.read(chunk.subarray(0, Math.min(chunk.length, left))));
      if (n === TIMED_OUT) throw new Deno.errors.TimedOut("request body");
      if (n === null) throw new Deno.errors.UnexpectedEof("request body");
      left -= n;
      await writeAll(to, chunk.subarray(0, n), timeoutMs);
    }
  } finally {
    deadline.clear();
  }
}

/** Copies the response to the client until the server closes it. */
async function pump(from: Deno.Conn, to: Deno.Conn, writeTimeoutMs: number): Promise<void> {
  const chunk = new Uint8Array(65536);
  while (true) {
    const n = await from.read(chunk);
    if (n === null) return;
    await writeAll(to, chunk.subarray(0, n), writeTimeoutMs);
  }
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array, timeoutMs: number): Promise<void> {
  const deadline = new Deadline(timeoutMs);
  try {
    let at = 0;
    while (at < bytes.length) {
      const n = await deadline.race(to.write(bytes.subarray(at)));
      if (n === TIMED_OUT) throw new Deno.errors.TimedOut("response write");
      at += n;
    }
  } finally {
    deadline.clear();
  }
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  411: "Length Required",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** Answers with the API's JSON error shape and closes (best effort). */
async function reply(
  conn: Deno.Conn,
  status: number,
  code: string,
  message: string,
  timeoutMs: number,
): Promise<void> {
  const body = JSON.stringify({ error: code, message }, null, 2) + "\n";
  const text = `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\n` +
    "content-type: application/json; charset=utf-8\r\ncache-control: no-store\r\n" +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
  await writeAll(conn, new TextEncoder().encode(text), timeoutMs).catch(() => {});
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}
