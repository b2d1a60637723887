/**
 * One run at a time on Deno Deploy, where several instances of the app may run at once and a
 * cron may be retried: a lease in Deno KV (the file lock of `lib/lock.ts` would only see its own
 * instance's disk). The lease is taken with an atomic check-and-set, renewed by its holder every
 * third of its length while the run lives, and released at the end; a holder that vanished
 * (instance stopped, crashed) loses it when it expires unrenewed.
 * @module
 */

import { LockedError } from "../errors.ts";

/** KV key of the run lease. */
export const LEASE_KEY: readonly unknown[] = ["lease", "pipeline"];

/** Default lease length: renewed every 10 s, so a vanished holder blocks runs for 30 s at most. */
export const KV_LEASE_MS = 30_000;

/** What the lease entry holds. */
export interface LeaseValue {
  token: string;
  run_id: string;
  /** When the lease ends unless renewed (ISO 8601). */
  expires_at: string;
  started_at: string;
}

/** The atomic part of `Deno.Kv` the lease needs (Deno KV's types are unstable: not referenced). */
export interface AtomicKv {
  get<T>(key: readonly unknown[]): Promise<{ value: T | null; versionstamp: string | null }>;
  atomic(): AtomicOp;
}

/** The part of `Deno.AtomicOperation` the lease uses. */
export interface AtomicOp {
  check(...checks: { key: readonly unknown[]; versionstamp: string | null }[]): AtomicOp;
  set(key: readonly unknown[], value: unknown, options?: { expireIn?: number }): AtomicOp;
  delete(key: readonly unknown[]): AtomicOp;
  commit(): Promise<{ ok: boolean }>;
}

/** Options of {@link acquireKvLease}. */
export interface AcquireKvLeaseOptions {
  runId: string;
  /** Lease length (default {@link KV_LEASE_MS}). */
  leaseMs?: number;
  /** Clock (tests). */
  now?: () => Date;
}

/** A lease this instance holds; release it in a `finally`. */
export class KvLease {
  readonly runId: string;
  #kv: AtomicKv;
  #token: string;
  #leaseMs: number;
  #versionstamp: string;
  #timer?: ReturnType<typeof setInterval>;
  #lost = false;
  #now: () => Date;
  #startedAt: Date;

  constructor(
    kv: AtomicKv,
    held: { runId: string; token: string; versionstamp: string; leaseMs: number },
    now: () => Date,
  ) {
    this.#kv = kv;
    this.runId = held.runId;
    this.#token = held.token;
    this.#versionstamp = held.versionstamp;
    this.#leaseMs = held.leaseMs;
    this.#now = now;
    this.#startedAt = now();
    const beat = setInterval(() => this.#renew(), Math.max(10, Math.floor(held.leaseMs / 3)));
    Deno.unrefTimer(beat);
    this.#timer = beat;
  }

  /** Whether another holder took the lease over (this one was not renewed in time). */
  get lost(): boolean {
    return this.#lost;
  }

  async #renew(): Promise<void> {
    try {
      const value = leaseValue(this.#token, this.runId, {
        now: this.#now(),
        started: this.#startedAt,
        leaseMs: this.#leaseMs,
      });
      const res = await this.#kv.atomic()
        .check({ key: LEASE_KEY, versionstamp: this.#versionstamp })
        .set(LEASE_KEY, value, { expireIn: this.#leaseMs })
        .commit() as { ok: boolean; versionstamp?: string };
      if (res.ok && res.versionstamp) this.#versionstamp = res.versionstamp;
      else if (!res.ok) {
        this.#lost = true;
        this.#stop();
      }
    } catch {
      // KV unreachable for a moment: the next beat tries again
    }
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Ends the lease if it is still ours. Safe to call twice. */
  async release(): Promise<void> {
    this.#stop();
    await this.#kv.atomic()
      .check({ key: LEASE_KEY, versionstamp: this.#versionstamp })
      .delete(LEASE_KEY)
      .commit()
      .catch(() => ({ ok: false }));
  }
}

/**
 * Takes the run lease, or throws a {@link LockedError} naming the run that holds it. An expired
 * lease (its holder stopped renewing) is taken over.
 */
export async function acquireKvLease(
  kv: AtomicKv,
  options: AcquireKvLeaseOptions,
): Promise<KvLease> {
  const { runId, leaseMs = KV_LEASE_MS, now = () => new Date() } = options;
  const token = crypto.randomUUID();
  for (let attempt = 0; attempt < 10; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
    const current = await kv.get<LeaseValue>(LEASE_KEY);
    const held = current.value;
    if (held && Date.parse(held.expires_at) > now().getTime()) {
      throw new LockedError(
        held.run_id,
        `Another run is in progress: run ${held.run_id} (started ${held.started_at}) holds the Deno KV lease; wait for it to finish`,
      );
    }
    let res: { ok: boolean; versionstamp?: string };
    try {
      res = await kv.atomic()
        .check({ key: LEASE_KEY, versionstamp: current.versionstamp })
        .set(LEASE_KEY, leaseValue(token, runId, { now: now(), started: now(), leaseMs }), {
          expireIn: leaseMs,
        })
        .commit() as typeof res;
    } catch (error) {
      // A local KV file another process is writing ("database is locked"): nothing was
      // written; try again. Anything else is not ours to absorb.
      if (!/database is locked|busy/i.test((error as Error)?.message ?? "")) throw error;
      continue;
    }
    if (res.ok) {
      return new KvLease(kv, {
        runId,
        token,
        versionstamp: res.versionstamp ?? "",
        leaseMs,
      }, now);
    }
    // another instance got there first: read again (it may hold it now)
  }
  const holder = (await kv.get<LeaseValue>(LEASE_KEY)).value;
  throw new LockedError(
    holder?.run_id ?? "unknown",
    `Another run is in progress: run ${holder?.run_id ?? "(starting)"} holds the Deno KV lease`,
  );
}

function leaseValue(
  token: string,
  runId: string,
  at: { now: Date; started: Date; leaseMs: number },
): LeaseValue {
  return {
    token,
    run_id: runId,
    expires_at: new Date(at.now.getTime() + at.leaseMs).toISOString(),
    started_at: at.started.toISOString(),
  };
}
