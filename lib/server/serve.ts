/**
 * `serve`: the HTTP trigger on `PIPELINE_HOST:PIPELINE_PORT` (default 127.0.0.1:8000) and, with
 * `cron`, the daily schedule — both starting runs through the same {@link PipelineApp}, so the run
 * lock and the runs they start are shared.
 * @module
 */

import type { Config, ServeConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { PipelineApp } from "./app.ts";
import { type CronFn, registerSchedule } from "./cron.ts";
import { type GuardedServer, type GuardOptions, serveGuarded } from "./guard.ts";
import type { PipelineFn } from "./trigger.ts";

/** Shortest trigger token accepted. */
export const MIN_TOKEN_LENGTH = 16;

/** Options of {@link serve}. */
export interface ServeOptions {
  log: Logger;
  /** Also register the daily schedule (`Deno.cron`). */
  cron?: boolean;
  /** Default `Deno.cron` (injectable for tests). */
  cronFn?: CronFn;
  /** Stops the server: no new requests, running runs aborted between steps and awaited. */
  signal?: AbortSignal;
  /** Called once listening, with the bound address (port 0 picks a free port). */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Default `runPipeline` (injectable for tests). */
  pipeline?: PipelineFn;
  /**
   * How long a stop waits for open connections (an idle keep-alive, a client that never finishes
   * its request) before it stops anyway; the running run is awaited regardless. Default 10 s.
   */
  shutdownGraceMs?: number;
  /** The connection guard's deadlines and cap (defaults in {@link GuardOptions}). */
  limits?: Pick<
    GuardOptions,
    "headerTimeoutMs" | "bodyTimeoutMs" | "writeTimeoutMs" | "maxHeaderBytes" | "maxConnections"
  >;
}

/** Whether a listen address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Throws a {@link ConfigError} unless the serve settings are safe: a non-loopback address needs a
 * trigger token, and a token must be at least {@link MIN_TOKEN_LENGTH} characters.
 */
export function checkServeConfig(serve: ServeConfig): void {
  const problems: string[] = [];
  if (!isLoopback(serve.host) && serve.triggerToken === undefined) {
    problems.push(
      `PIPELINE_HOST="${serve.host}" is not a loopback address: set PIPELINE_TRIGGER_TOKEN ` +
        "(e.g. `openssl rand -hex 32`) so that only callers with the token can start runs",
    );
  }
  if (serve.triggerToken !== undefined && serve.triggerToken.length < MIN_TOKEN_LENGTH) {
    problems.push(
      `PIPELINE_TRIGGER_TOKEN is too short (${serve.triggerToken.length} characters): ` +
        `use at least ${MIN_TOKEN_LENGTH} random characters (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  if (serve.triggerToken !== undefined && !/^[\x21-\x7e]+$/.test(serve.triggerToken)) {
    // A space or a non-ASCII character could never arrive in `Authorization: Bearer <token>`:
    // every request would get 401.
    problems.push(
      "PIPELINE_TRIGGER_TOKEN may hold only visible ASCII characters (no spaces): " +
        "use e.g. `openssl rand -hex 32`",
    );
  }
  if (problems.length) throw new ConfigError(problems);
}

/** Runs the HTTP trigger (and the schedule) until `signal` aborts. */
export async function serve(config: Config, options: ServeOptions): Promise<void> {
  const { log, signal } = options;
  checkServeConfig(config.serve);
  const app = new PipelineApp({ config, log, pipeline: options.pipeline });
  const { host, port } = config.serve;
  const stopped = new AbortController();
  let server: GuardedServer;
  try {
    // Deadlines, a connection cap and an accept loop that survives EMFILE in front of Deno.serve.
    server = await serveGuarded({
      ...options.limits,
      hostname: host,
      port,
      log,
      handler: app.handler,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ConfigError(`PIPELINE_PORT=${port}: ${host}:${port} is already in use`);
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new ConfigError(`PIPELINE_HOST="${host}" is not an address of this machine`);
    }
    // e.g. a host name that does not resolve, a port below 1024 without the right to bind it
    throw new ConfigError(
      `Cannot listen on ${host}:${port} (PIPELINE_HOST, PIPELINE_PORT): ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  const { addr } = server;
  const where = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  log.info(`Listening on http://${where}:${addr.port}`, {
    auth: config.serve.triggerToken ? "bearer token" : "none (loopback only)",
    max_connections: server.maxConnections,
  });
  options.onListen?.(addr);
  const schedules: Promise<void>[] = [];
  if (options.cron) {
    try {
      schedules.push(registerSchedule(config, {
        log,
        cron: options.cronFn,
        signal: stopped.signal,
        job: async () => {
          const { done } = await app.trigger();
          await done;
        },
      }));
      // The poll: recently played every 30 minutes; a tick that meets a running run (the daily
      // one or a slow poll) is skipped by the run lock and the next tick catches up.
      if (config.serve.pollSchedule !== "off") {
        schedules.push(registerSchedule(config, {
          log,
          kind: "poll",
          cron: options.cronFn,
          signal: stopped.signal,
          job: async () => {
            const { done } = await app.trigger({ schedule: "poll" });
            await done;
          },
        }));
      }
    } catch (error) {
      await server.shutdown(); // not left listening behind the error
      throw error;
    }
  }
  await new Promise<void>((resolve) => {
    if (!signal) return; // runs until the process ends
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  log.info("Stopping: no new requests; waiting for the running run to stop");
  stopped.abort();
  // Open connections get a bounded grace: an idle or half-sent request never holds the stop.
  const grace = options.shutdownGraceMs ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const closed = await Promise.race([
    server.shutdown().then(() => true),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), grace))),
  ]);
  clearTimeout(timer);
  if (!closed) {
    log.warn(`Stopping without waiting longer for open connections (grace ${grace} ms)`);
    server.abort();
  }
  await app.close();
  await Promise.all(schedules.map((s) => s.catch(() => {})));
  log.info("Stopped");
}
