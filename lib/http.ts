/**
 * HTTP with a per-request timeout and bounded retries: exponential backoff with full jitter on
 * 429 (honouring `Retry-After`), 5xx and network errors; no retry on other 4xx.
 * @module
 */

import { SourceError } from "./errors.ts";
import type { HttpConfig } from "./config.ts";
import type { Logger } from "./log.ts";

/** A non-OK HTTP answer (after retries). */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;
  readonly url: string;
  /** The response body (truncated to 500 characters). */
  readonly body: string;
  readonly headers: Headers;

  constructor(status: number, url: string, body: string, headers: Headers) {
    super(`HTTP ${status} from ${url}${body ? `: ${body.slice(0, 200)}` : ""}`);
    this.status = status;
    this.url = url;
    this.body = body.slice(0, 500);
    this.headers = headers;
  }
}

/** A request that never got an HTTP answer (timeout, connection refused or reset), after retries. */
export class NetworkError extends Error {
  override name = "NetworkError";
  readonly url: string;
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(`${message} (${url})`, options);
    this.url = url;
  }
}

/** Options of {@link fetchWithRetry}. */
export interface FetchRetryOptions extends Partial<HttpConfig> {
  log?: Logger;
  /** Base of the exponential backoff (default 500 ms). */
  baseDelayMs?: number;
  /** Cap on one backoff wait (default 30 s). */
  maxDelayMs?: number;
  signal?: AbortSignal;
  /** Sleep function (tests may replace it). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Random source in [0,1) for jitter. */
  random?: () => number;
  /** Largest answer accepted (default {@link MAX_BODY_BYTES}). */
  maxBodyBytes?: number;
  /**
   * A budget shared with other requests (e.g. every account's, against one Spotify app): each
   * attempt holds one of its slots, and a `Retry-After` pauses all of them.
   */
  gate?: RequestGate;
}

/** What {@link fetchWithRetry} needs of a shared request budget (see `lib/spotify/budget.ts`). */
export interface RequestGate {
  /** Waits for a free slot (and the end of any pause); returns its release. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  /** Pauses every request of the budget for `ms` (a `Retry-After`). */
  pauseFor(ms: number): void;
  /** Refuses every later request of the budget with `error` (Spotify's daily quota). */
  stopAll?(error: Error): void;
}

/** Statistics of one call, for logs and tests. */
export interface FetchStats {
  attempts: number;
  waitedMs: number;
}

/** Sleeps `ms`, rejecting early if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Parses a `Retry-After` header (seconds or HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function shouldRetry(status: number): boolean {
  return status === 429 || status >= 500;
}

/** URL without its query string, for messages (queries may carry ids, never secrets, but are long). */
function shortUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/** The most bytes an answer may have (Spotify's pages are ~100 kB; ReccoBeats' a few kB). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** An answer larger than {@link MAX_BODY_BYTES}: not data this toolkit expects, never retried. */
export class BodyTooLargeError extends SourceError {
  override name = "BodyTooLargeError";
}

/**
 * The bytes of `body` (empty for none), or `undefined` as soon as they pass `maxBytes` (the rest
 * is not read: the stream is cancelled).
 */
export async function readAtMost(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (body) {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** The response with its body read into memory (at most `maxBytes`), or the error reading it. */
async function readBody(
  response: Response,
  url: string,
  maxBytes: number,
): Promise<Response | unknown> {
  const tooLarge = () =>
    new BodyTooLargeError(
      `${shortUrl(url)} answered more than ${maxBytes} bytes: not an answer this toolkit expects`,
      { hint: "Check SPOTIFY_API_URL / RECCOBEATS_API_URL (a proxy or a wrong host?)." },
    );
  try {
    const declared = Number(response.headers.get("content-length"));
    if (Number.isFinite(declared) && declared > maxBytes) {
      await response.body?.cancel();
      return tooLarge();
    }
    const body = await readAtMost(response.body, maxBytes);
    if (body === undefined) return tooLarge();
    const empty = response.status === 204 || response.status === 205 || response.status === 304;
    return new Response(empty ? null : body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  } catch (error) {
    return error;
  }
}

/**
 * `fetch` with timeout and retries. Returns the first OK (2xx/3xx) response, its body already
 * read within the timeout (a body that stalls or breaks off is retried like a network error);
 * throws {@link HttpError} for a non-retryable status or when retries run out,
 * {@link NetworkError} when no (complete) answer came.
 */
export async function fetchWithRetry(
  url: string,
  init: RequestInit = {},
  options: FetchRetryOptions = {},
): Promise<{ response: Response; stats: FetchStats }> {
  const {
    timeoutMs = 10_000,
    maxRetries = 5,
    maxRetryMs = 60_000,
    baseDelayMs = 500,
    maxDelayMs = 30_000,
    log,
    signal,
    sleep: doSleep = sleep,
    random = Math.random,
    maxBodyBytes = MAX_BODY_BYTES,
  } = options;
  const stats: FetchStats = { attempts: 0, waitedMs: 0 };
  for (;;) {
    stats.attempts++;
    const release = await options.gate?.acquire(signal);
    let attempt: Attempt;
    try {
      attempt = await tryOnce();
    } finally {
      release?.();
    }
    if ("response" in attempt) return { response: attempt.response, stats };
    const { failure, retryAfterMs } = attempt;
    let wait = Math.min(maxDelayMs, baseDelayMs * 2 ** (stats.attempts - 1)) * random();
    if (retryAfterMs !== undefined) {
      wait = Math.max(wait, retryAfterMs);
      options.gate?.pauseFor(retryAfterMs);
    }
    const retriesLeft = stats.attempts <= maxRetries;
    const withinBudget = stats.waitedMs + wait <= maxRetryMs;
    if (!retriesLeft || !withinBudget) {
      log?.warn(
        `Giving up on ${shortUrl(url)} after ${stats.attempts} attempt(s)${
          !withinBudget ? ` (next wait ${Math.round(wait)} ms exceeds the retry budget)` : ""
        }`,
      );
      throw failure;
    }
    log?.warn(`Retrying ${shortUrl(url)} in ${Math.round(wait)} ms`, {
      attempt: stats.attempts,
      cause: failure.message.slice(0, 200),
      ...(retryAfterMs !== undefined ? { retry_after_ms: retryAfterMs } : {}),
    });
    await doSleep(wait, signal);
    stats.waitedMs += wait;
  }

  /** One attempt: the answer, or a retryable failure (anything else is thrown). */
  async function tryOnce(): Promise<Attempt> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response | undefined;
    let failure: Error | undefined;
    try {
      response = await fetch(url, { ...init, signal: combined });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const timedOut = timeout.aborted;
      failure = new NetworkError(
        shortUrl(url),
        timedOut
          ? `No answer within ${timeoutMs} ms`
          : `Request failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (response && !shouldRetry(response.status)) {
      if (response.ok || (response.status >= 300 && response.status < 400)) {
        // The body is read here, under the same timeout: a body that stalls or breaks off after
        // the headers is a network error (retried), not a raw abort in the caller's read.
        const answer = await readBody(response, url, maxBodyBytes);
        if (answer instanceof Response) return { response: answer };
        if (answer instanceof BodyTooLargeError) throw answer;
        if (signal?.aborted) throw signal.reason;
        failure = new NetworkError(
          shortUrl(url),
          timeout.aborted
            ? `No complete answer within ${timeoutMs} ms (the body stalled)`
            : `Reading the answer failed: ${(answer as Error)?.message ?? String(answer)}`,
          { cause: answer },
        );
        response = undefined;
      }
    }
    if (response && !shouldRetry(response.status)) {
      const body = await response.text().catch(() => "");
      throw new HttpError(response.status, shortUrl(url), body, response.headers);
    }
    // Retryable: 429, 5xx or a network error.
    let retryAfterMs: number | undefined;
    if (response) {
      retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
      const body = await response.text().catch(() => "");
      failure = new HttpError(response.status, shortUrl(url), body, response.headers);
      // Spotify's daily app quota (429 with reason QUOTA_EXCEEDED) is no rate limit: waiting
      // a few seconds cannot help, and every retry spends more of a quota shared by all clients.
      if (response.status === 429 && /\bQUOTA_EXCEEDED\b/.test(body)) {
        options.gate?.stopAll?.(failure);
        throw failure;
      }
    }
    return { failure: failure!, retryAfterMs };
  }
}

/** One attempt of {@link fetchWithRetry}. */
type Attempt = { response: Response } | { failure: Error; retryAfterMs?: number };
