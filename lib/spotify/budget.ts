/**
 * One request budget for every account of a run: the accounts share the Spotify app's rate
 * limit and daily quota, so their requests go through the same gate — at most
 * `SPOTIFY_CONCURRENCY` in flight, a `Retry-After` from any answer pausing them all, and
 * Spotify's `QUOTA_EXCEEDED` stopping every account for the rest of the run.
 * @module
 */

import { sleep } from "../http.ts";
import type { RequestGate } from "../http.ts";
import type { QuotaExceededError } from "./top_tracks.ts";

/** Options of {@link RequestBudget}. */
export interface RequestBudgetOptions {
  /** Requests in flight at once (≥ 1). */
  concurrency: number;
  /** Clock, ms (tests). */
  now?: () => number;
}

/** What the budget saw, for the manifest and tests. */
export interface BudgetStats {
  requests: number;
  /** Most requests in flight at once. */
  maxInFlight: number;
  /** Requests that waited for a `Retry-After` pause another request had met. */
  paused: number;
}

/** The shared request budget (a {@link RequestGate} for `fetchWithRetry`). */
export class RequestBudget implements RequestGate {
  readonly #concurrency: number;
  readonly #now: () => number;
  #inFlight = 0;
  #queue: (() => void)[] = [];
  #notBefore = 0;
  #stopped?: Error;
  /** Set once any account met the app's daily quota: every account stops for the run. */
  quota?: QuotaExceededError;
  readonly stats: BudgetStats = { requests: 0, maxInFlight: 0, paused: 0 };

  constructor(options: RequestBudgetOptions) {
    this.#concurrency = Math.max(1, Math.floor(options.concurrency));
    this.#now = options.now ?? Date.now;
  }

  /** Waits for a slot, then for the end of any pause; returns the slot's release. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#inFlight >= this.#concurrency) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.#queue = this.#queue.filter((f) => f !== go);
          reject(signal!.reason);
        };
        const go = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        this.#queue.push(go);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    } else {
      this.#inFlight++;
    }
    // the slot is held from here (a queued waiter inherits it from release)
    try {
      let waited = false;
      for (
        let left = this.#notBefore - this.#now();
        left > 0;
        left = this.#notBefore - this.#now()
      ) {
        waited = true;
        await sleep(left, signal);
      }
      if (waited) this.stats.paused++;
      // the quota is the app's: once one answer says it is used up, nobody asks again
      if (this.#stopped) throw this.#stopped;
    } catch (error) {
      this.#release();
      throw error;
    }
    this.stats.requests++;
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.#inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#release();
    };
  }

  /** Refuses every later request with `error` (the answer that said the quota is used up). */
  stopAll(error: Error): void {
    this.#stopped ??= error;
  }

  /** Pauses every request for `ms` from now (the longest pause wins). */
  pauseFor(ms: number): void {
    this.#notBefore = Math.max(this.#notBefore, this.#now() + ms);
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next(); // the slot passes to the next waiter
    else this.#inFlight--;
  }
}
