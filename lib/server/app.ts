/**
 * The HTTP trigger's handler, a plain `(Request) => Promise<Response>` (tests call it directly):
 *
 * - `POST /run-top-tracks` starts a run: 202 with its id (`?wait=true`: waits, answers the run);
 *   409 with the running id when a run is in progress. Optional JSON body
 *   `{"date": "YYYY-MM-DD", "to": "<step>", "full_refresh": true, "user": "alice,bob"}`.
 * - `GET /runs` (recent runs), `GET /runs/:id`, `GET /healthz` (no auth), `GET /readyz`.
 * - `GET /report`: the report page (`deno task report`), with the same auth as `/runs`.
 *
 * With a trigger token configured, every endpoint but `/healthz` needs `Authorization: Bearer
 * <token>` (compared in constant time), else 401. Bodies are bounded (413), JSON only (415),
 * errors are JSON `{"error": "<code>", "message": "..."}`, unknown routes 404, wrong methods 405.
 *
 * Not on Hono, measured: the same handlers on `hono/tiny` + `hono/body-limit` passed every serve
 * test unchanged but made `serve`'s start-up to its first `/healthz` answer 13 ms slower (78 → 91
 * ms median of 30 alternating cold starts, 2026-12-02): ~20 modules and the npm resolver that
 * serve does not otherwise load before its first run. `hono/bearer-auth` would also answer 400 to
 * another scheme (a Basic client should be challenged, 401) and refuse tokens outside RFC 6750's
 * characters, which PIPELINE_TRIGGER_TOKEN does not restrict. The router here is the 30 lines of
 * `#route`.
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError, exitCodeOf, LockedError, PipelineError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { STEP_NAMES, type StepName, validateDate, validateRunId } from "../run.ts";
import { readAtMost } from "../http.ts";
import { sha256Bytes } from "../sha256.ts";
import { parseUserFlag } from "../spotify/accounts.ts";
import { type BackendRun, fileBackend, type RunBackend, type TriggerField } from "./backend.ts";
import type { PipelineFn, TriggerParams } from "./trigger.ts";

/** Largest request body accepted by default (bytes). */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024;

/** Options of {@link PipelineApp}. */
export interface PipelineAppOptions {
  config: Config;
  log: Logger;
  /** Largest request body accepted (default {@link DEFAULT_MAX_BODY_BYTES}). */
  maxBodyBytes?: number;
  /** Runs the pipeline (default `runPipeline`; injectable for tests). */
  pipeline?: PipelineFn;
  /** Clock for the readiness check (default: now). */
  now?: () => Date;
  /**
   * Where runs start and are read back (default: the run folders, {@link fileBackend}; the Deno
   * Deploy entry passes one on Deno KV).
   */
  backend?: RunBackend;
  /**
   * Without a trigger token, refuse every endpoint but `/healthz` (503 `not_configured`) instead
   * of serving loopback requests: for a public app (Deno Deploy), where no request is local.
   */
  requireToken?: boolean;
}

/** A JSON error answer. */
class HttpProblem extends Error {
  override name = "HttpProblem";
  readonly status: number;
  readonly code: string;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    more: { extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = more.extra ?? {};
    this.headers = more.headers ?? {};
  }
}

type Handler = (request: Request, url: URL, param?: string) => Promise<Response>;
interface Route {
  methods: Record<string, Handler>;
  public?: boolean;
}

/**
 * The HTTP trigger: routes, auth, bounded bodies, and the runs it started (so `close()` can stop
 * them and `?wait=true` can wait for one).
 */
export class PipelineApp {
  #log: Logger;
  #maxBodyBytes: number;
  #backend: RunBackend;
  #expectedDigest?: Promise<Uint8Array>;
  #requireToken: boolean;
  #inflight = new Map<string, Promise<unknown>>();
  #stop = new AbortController();
  #closing = false;
  #routes: Record<string, Route>;

  constructor(options: PipelineAppOptions) {
    this.#log = options.log;
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#requireToken = options.requireToken ?? false;
    this.#backend = options.backend ?? fileBackend(options.config, {
      log: options.log,
      pipeline: options.pipeline,
      now: options.now,
    });
    const token = options.config.serve.triggerToken;
    if (token !== undefined) {
      this.#log.addSecret(token);
      this.#expectedDigest = sha256Bytes(token);
    }
    this.#routes = {
      "/healthz": {
        public: true,
        methods: { GET: () => Promise.resolve(this.#json(200, { ok: true })) },
      },
      "/readyz": { methods: { GET: () => this.#readyz() } },
      "/run-top-tracks": { methods: { POST: (req, url) => this.#trigger(req, url) } },
      "/runs": { methods: { GET: (_req, url) => this.#listRuns(url) } },
      "/runs/:id": { methods: { GET: (_req, _url, id) => this.#getRun(id!) } },
      "/report": { methods: { GET: () => this.#report() } },
    };
  }

  /** The request handler (for `Deno.serve`). */
  readonly handler = (request: Request): Promise<Response> => this.handle(request);

  /** Ids of the runs this app started that are still going. */
  get running(): string[] {
    return [...this.#inflight.keys()];
  }

  /** Answers one request; never throws. */
  async handle(request: Request): Promise<Response> {
    const started = performance.now();
    const url = new URL(request.url);
    let response: Response;
    try {
      response = await this.#route(request, url);
    } catch (error) {
      response = this.#errorResponse(error);
    }
    if (request.method === "HEAD") {
      // the headers GET would send, content-length included (RFC 9110 §9.3.2), without the body
      const length = (await response.arrayBuffer()).byteLength;
      const headers = new Headers(response.headers);
      headers.set("content-length", String(length));
      response = new Response(null, { status: response.status, headers });
    }
    const fields = {
      method: request.method,
      path: url.pathname,
      status: response.status,
      ms: Math.round(performance.now() - started),
    };
    if (url.pathname === "/healthz") this.#log.debug("http", fields);
    else this.#log.info("http", fields);
    return response;
  }

  /**
   * Starts a run in the background (what `POST /run-top-tracks` and the cron job call).
   * Rejects with `LockedError` when a run is in progress.
   */
  async trigger(params: TriggerParams = {}): Promise<BackendRun> {
    if (this.#closing) {
      throw new HttpProblem(503, "shutting_down", "The server is stopping: no new runs");
    }
    const started = await this.#backend.start(params, this.#stop.signal);
    const id = started.id;
    this.#inflight.set(id, started.done);
    started.done.finally(() => this.#inflight.delete(id));
    return started;
  }

  /** Refuses new runs, aborts the running ones between steps, and waits for them to end. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#stop.abort();
    await Promise.all(this.#inflight.values());
  }

  async #route(request: Request, url: URL): Promise<Response> {
    let path = url.pathname;
    if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
    let key = path;
    let param: string | undefined;
    const m = /^\/runs\/([^/]+)$/.exec(path);
    if (m) {
      key = "/runs/:id";
      param = m[1];
    }
    const route = this.#routes[key];
    if (!route?.public) await this.#authorize(request);
    if (!route) throw new HttpProblem(404, "not_found", `No route ${path}`);
    const method = request.method === "HEAD" ? "GET" : request.method;
    const handler = route.methods[method];
    if (!handler) {
      const allow = Object.keys(route.methods);
      if (allow.includes("GET")) allow.push("HEAD");
      throw new HttpProblem(
        405,
        "method_not_allowed",
        `${request.method} is not allowed on ${path} (allowed: ${allow.join(", ")})`,
        { headers: { allow: allow.join(", ") } },
      );
    }
    return await handler(request, url, param);
  }

  async #authorize(request: Request): Promise<void> {
    if (this.#expectedDigest === undefined) {
      if (this.#requireToken) {
        throw new HttpProblem(
          503,
          "not_configured",
          "Set PIPELINE_TRIGGER_TOKEN (a secret of the app) to use this endpoint",
        );
      }
      return checkLoopbackRequest(request);
    }
    const header = request.headers.get("authorization");
    const challenge = { "www-authenticate": 'Bearer realm="spotify-pipeline"' };
    if (!header) {
      throw new HttpProblem(401, "unauthorized", "Missing Authorization: Bearer <token>", {
        headers: challenge,
      });
    }
    const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    const given = await sha256Bytes(m?.[1] ?? "");
    const expected = await this.#expectedDigest;
    if (!m || !constantTimeEqual(given, expected)) {
      throw new HttpProblem(401, "unauthorized", "Invalid bearer token", {
        headers: { "www-authenticate": 'Bearer realm="spotify-pipeline", error="invalid_token"' },
      });
    }
  }

  async #trigger(request: Request, url: URL): Promise<Response> {
    const wait = parseWait(url.searchParams.get("wait"));
    const params = parseTriggerBody(await this.#readBody(request), request, this.#backend.fields);
    let started: BackendRun;
    try {
      started = await this.trigger(params);
    } catch (error) {
      if (error instanceof LockedError) {
        throw new HttpProblem(409, "already_running", error.message, {
          extra: { run_id: error.runId },
        });
      }
      // The request was fine; the server cannot start a run (e.g. its data folder is unusable).
      if (error instanceof PipelineError) {
        this.#log.error(`Cannot start a run: ${error.message}`, { exit_code: exitCodeOf(error) });
        throw new HttpProblem(500, "cannot_start", error.message, {
          extra: { exit_code: exitCodeOf(error) },
        });
      }
      throw error;
    }
    const id = started.id;
    if (!wait) {
      return this.#json(202, { run_id: id, status: "running", links: { run: `/runs/${id}` } }, {
        location: `/runs/${id}`,
      });
    }
    const outcome = await started.done;
    const run = await this.#backend.get(id);
    if (outcome.exitCode === 0) return this.#json(200, { run_id: id, run });
    return this.#json(500, {
      error: "run_failed",
      message: outcome.error,
      exit_code: outcome.exitCode,
      run_id: id,
      run,
    });
  }

  async #listRuns(url: URL): Promise<Response> {
    const raw = url.searchParams.get("limit");
    let limit = 20;
    if (raw !== null) {
      if (!/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > 100) {
        throw new HttpProblem(400, "bad_request", `limit="${raw}": expected 1 to 100`);
      }
      limit = Number(raw);
    }
    return this.#json(200, { runs: await this.#backend.list(limit) });
  }

  async #getRun(rawId: string): Promise<Response> {
    let id: string;
    try {
      id = validateRunId(decodeURIComponent(rawId));
    } catch {
      throw new HttpProblem(
        400,
        "bad_run_id",
        "Not a run id: expected the form 20261126T120000Z-ab12",
      );
    }
    let run;
    try {
      run = await this.#backend.get(id);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new HttpProblem(500, "run_unreadable", error.message);
    }
    if (!run) throw new HttpProblem(404, "not_found", `No run ${id}`);
    return this.#json(200, { run });
  }

  async #report(): Promise<Response> {
    const report = await this.#backend.report();
    if ("missing" in report) throw new HttpProblem(404, "no_report", report.missing);
    return new Response(report.html, {
      status: 200,
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        // the page needs nothing from anywhere: its own CSS and SVG only
        "content-security-policy":
          "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      },
    });
  }

  async #readyz(): Promise<Response> {
    const { checks, running } = await this.#backend.readiness();
    const ready = Object.values(checks).every((c) => c.ok);
    return this.#json(ready ? 200 : 503, { ready, checks, running });
  }

  async #readBody(request: Request): Promise<Uint8Array> {
    const max = this.#maxBodyBytes;
    const tooLarge = () =>
      new HttpProblem(413, "payload_too_large", `Request body over ${max} bytes`);
    const declared = request.headers.get("content-length");
    if (declared !== null && Number(declared) > max) throw tooLarge();
    const body = await readAtMost(request.body, max);
    if (body === undefined) throw tooLarge();
    return body;
  }

  /** A JSON response, with every registered secret redacted. */
  #json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
    return json(status, body, headers, this.#log);
  }

  #errorResponse(error: unknown): Response {
    if (error instanceof HttpProblem) {
      return this.#json(
        error.status,
        { error: error.code, message: error.message, ...error.extra },
        error.headers,
      );
    }
    if (error instanceof ConfigError) {
      return this.#json(400, { error: "bad_request", message: error.message });
    }
    if (error instanceof PipelineError) {
      // the server cannot answer this now (e.g. its own settings are invalid)
      return this.#json(503, { error: "unavailable", message: error.message });
    }
    const message = error instanceof Error ? error.message : String(error);
    this.#log.error(`HTTP handler failed: ${this.#log.redact(message)}`, {
      stack: error instanceof Error ? this.#log.redact(error.stack ?? "") : undefined,
    });
    return this.#json(500, { error: "internal", message: "Internal error (see the server log)" });
  }
}

/** Parses `?wait=`: absent/false/0 → false, ""/true/1 → true, else 400. */
function parseWait(value: string | null): boolean {
  if (value === null || value === "false" || value === "0") return false;
  if (value === "" || value === "true" || value === "1") return true;
  throw new HttpProblem(400, "bad_request", `wait="${value}": expected true or false`);
}

/** Validates the optional JSON body of `POST /run-top-tracks`. */
function parseTriggerBody(
  bytes: Uint8Array,
  request: Request,
  fields: readonly TriggerField[],
): TriggerParams {
  if (bytes.byteLength === 0) return {};
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpProblem(
      415,
      "unsupported_media_type",
      `Content-Type "${type || "(none)"}" is not supported: send application/json or no body`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new HttpProblem(400, "bad_json", `Body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpProblem(400, "bad_request", "Body must be a JSON object");
  }
  const body = value as Record<string, unknown>;
  const unknown = Object.keys(body).filter((k) => !(fields as readonly string[]).includes(k));
  if (unknown.length) {
    throw new HttpProblem(
      400,
      "bad_request",
      `Unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")}: expected ${
        fields.join(", ")
      }`,
    );
  }
  const params: TriggerParams = {};
  if (body.date !== undefined) {
    if (typeof body.date !== "string") {
      throw new HttpProblem(400, "bad_request", "date: expected a string YYYY-MM-DD");
    }
    params.date = validateDate(body.date, "date");
  }
  if (body.to !== undefined) {
    if (typeof body.to !== "string" || !(STEP_NAMES as readonly string[]).includes(body.to)) {
      throw new HttpProblem(400, "bad_request", `to: expected one of ${STEP_NAMES.join(", ")}`);
    }
    params.to = body.to as StepName;
  }
  if (body.full_refresh !== undefined) {
    if (typeof body.full_refresh !== "boolean") {
      throw new HttpProblem(400, "bad_request", "full_refresh: expected true or false");
    }
    params.fullRefresh = body.full_refresh;
  }
  if (body.user !== undefined) {
    if (typeof body.user !== "string") {
      throw new HttpProblem(400, "bad_request", "user: expected account names, comma-separated");
    }
    params.accounts = parseUserFlag(body.user);
  }
  return params;
}

function json(
  status: number,
  body: unknown,
  headers: Record<string, string>,
  log: Logger,
): Response {
  const text = log.redact(JSON.stringify(body, null, 2) + "\n");
  return new Response(text, {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/** Compares two digests of equal length without an early exit. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

/**
 * Without a token the server binds loopback only, but a web page the user opens could still
 * reach it: a cross-site form POST needs no preflight, and a DNS-rebinding page reads answers
 * through its own host name. So, token-less, only requests addressed to a loopback host (`Host`)
 * and coming from no foreign page (`Origin` absent or loopback) are served.
 * @throws HttpProblem 403 otherwise.
 */
export function checkLoopbackRequest(request: Request): void {
  const host = request.headers.get("host") ?? new URL(request.url).host;
  if (!LOOPBACK_HOST.test(host)) {
    throw new HttpProblem(
      403,
      "forbidden",
      `Host "${
        host.slice(0, 80)
      }" is not a loopback address: without PIPELINE_TRIGGER_TOKEN only local requests are served`,
    );
  }
  const origin = request.headers.get("origin");
  if (origin !== null) {
    let ok = false;
    try {
      const u = new URL(origin);
      ok = (u.protocol === "http:" || u.protocol === "https:") && LOOPBACK_HOST.test(u.host);
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new HttpProblem(
        403,
        "forbidden",
        "A request from a web page of another origin: without PIPELINE_TRIGGER_TOKEN only local requests are served",
      );
    }
  }
}
