import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { ConfigError, ExitCode, exitCodeOf, LockedError } from "../lib/errors.ts";
import {
  acquireRunLock,
  isLockHolderAlive,
  type LockInfo,
  lockPath,
  readRunLock,
} from "../lib/lock.ts";
import { Logger } from "../lib/log.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { listRunIds } from "../lib/run.ts";

/** Awaits a rejection of class `type` and returns the error. */
async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: `expected ${type.name}, nothing was thrown` });
}

const LOCK_MODULE = new URL("../lib/lock.ts", import.meta.url).href;

async function withDataDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "lock_test_" });
  try {
    await fn(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function readLock(dataDir: string): Promise<LockInfo> {
  return JSON.parse(await Deno.readTextFile(lockPath({ dataDir }))) as LockInfo;
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

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", ""],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await child.status;
  return child.pid;
}

/** A separate process holding the lock until killed; resolves once it holds it. */
async function spawnHolder(
  dataDir: string,
  runId: string,
  lease: { host?: string; leaseMs?: number } = {},
): Promise<Deno.ChildProcess> {
  const code = `
    import { acquireRunLock } from ${JSON.stringify(LOCK_MODULE)};
    await acquireRunLock({ dataDir: ${JSON.stringify(dataDir)} }, { runId: ${
    JSON.stringify(runId)
  }, ...${JSON.stringify(lease)} });
    console.log("locked");
    setInterval(() => {}, 60_000); // hold until killed
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.deepEqual(new TextDecoder().decode(value).trim(), "locked");
  return child;
}

Deno.test("acquireRunLock() writes pid, start time and run id, and release() removes the file", async () => {
  await withDataDir(async (dataDir) => {
    const lock = await acquireRunLock({ dataDir }, { runId: "20261126T120000Z-ab12" });
    const info = await readLock(dataDir);
    assert.deepEqual(info.pid, Deno.pid);
    assert.deepEqual(info.run_id, "20261126T120000Z-ab12");
    assert(!Number.isNaN(Date.parse(info.started_at)));
    assert.deepEqual((await readRunLock({ dataDir }))?.token, info.token);
    await lock.release();
    assert(!(await exists(lockPath({ dataDir }))));
    assert.deepEqual(await readRunLock({ dataDir }), undefined);
    await lock.release(); // twice is fine
  });
});

Deno.test("a second acquire while the lock is held throws LockedError with the running id (exit 6)", async () => {
  await withDataDir(async (dataDir) => {
    const lock = await acquireRunLock({ dataDir });
    await lock.setRunId("20261126T120000Z-0001");
    const error = await assertRejects(() => acquireRunLock({ dataDir }), LockedError);
    assert.deepEqual(error.runId, "20261126T120000Z-0001");
    assert.deepEqual(exitCodeOf(error), ExitCode.locked);
    assert(error.message.includes("20261126T120000Z-0001"), error.message);
    await lock.release();
    const again = await acquireRunLock({ dataDir });
    await again.release();
  });
});

Deno.test("concurrent acquires: exactly one wins", async () => {
  await withDataDir(async (dataDir) => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => acquireRunLock({ dataDir }, { runId: `r${i}` })),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    assert.deepEqual(won.length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert(r.reason instanceof LockedError);
    }
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireRunLock>>>).value
      .release();
  });
});

Deno.test("concurrent acquires: every loser names the winner's run id (the lock is never seen half-written)", async () => {
  await withDataDir(async (dataDir) => {
    for (let round = 0; round < 40; round++) {
      const ids = Array.from({ length: 4 }, (_, i) => `20261126T12000${i}Z-${round}`);
      const results = await Promise.allSettled(
        ids.map((runId) => acquireRunLock({ dataDir }, { runId })),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      assert.deepEqual(won.length, 1);
      const lock =
        (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireRunLock>>>).value;
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        assert(r.reason instanceof LockedError);
        assert.deepEqual(r.reason.runId, lock.info.run_id, r.reason.message);
      }
      await lock.release();
    }
    // No private temp names left next to the lock.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dataDir)), []);
  });
});

/** Starts `n` processes that each try to take the lock at once; resolves to how many won. */
async function raceProcesses(dataDir: string, n: number): Promise<{ won: number; locked: number }> {
  const code = `
    import { acquireRunLock } from ${JSON.stringify(LOCK_MODULE)};
    let result = "won";
    try {
      await acquireRunLock({ dataDir: ${JSON.stringify(dataDir)} });
    } catch (error) {
      result = error.name === "LockedError" ? "locked" : "error " + error.message;
    }
    console.log(result);
    // Hold (alive) until the parent closes stdin, so late starters see a live holder.
    for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  `;
  const children = Array.from({ length: n }, () =>
    new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn());
  const results: string[] = [];
  for (const child of children) {
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    results.push(new TextDecoder().decode(value).trim());
  }
  for (const child of children) {
    await child.stdin.close();
    await child.stdout.cancel();
    await child.status;
  }
  assert.deepEqual(results.filter((r) => r !== "won" && r !== "locked"), []);
  return {
    won: results.filter((r) => r === "won").length,
    locked: results.filter((r) => r === "locked").length,
  };
}

Deno.test("processes starting at once: exactly one takes the lock", async () => {
  await withDataDir(async (dataDir) => {
    assert.deepEqual(await raceProcesses(dataDir, 4), { won: 1, locked: 3 });
  });
});

Deno.test("processes racing to take over one stale lock: exactly one wins", async () => {
  await withDataDir(async (dataDir) => {
    const stale: LockInfo = {
      pid: await deadPid(),
      started_at: "2026-01-01T00:00:00.000Z",
      token: crypto.randomUUID(),
    };
    await Deno.writeTextFile(lockPath({ dataDir }), JSON.stringify(stale));
    assert.deepEqual(await raceProcesses(dataDir, 4), { won: 1, locked: 3 });
  });
});

Deno.test("a lock held by another live process blocks; after that process is killed it is taken over", async () => {
  await withDataDir(async (dataDir) => {
    const holder = await spawnHolder(dataDir, "20261126T120000Z-beef");
    try {
      const error = await assertRejects(() => acquireRunLock({ dataDir }), LockedError);
      assert.deepEqual(error.runId, "20261126T120000Z-beef");
      assert.deepEqual((await readRunLock({ dataDir }))?.pid, holder.pid);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stdout.cancel();
    }
    // The holder died without releasing: its lock file is still there, but stale.
    assert.deepEqual((await readLock(dataDir)).pid, holder.pid);
    assert.deepEqual(await readRunLock({ dataDir }), undefined);
    const stale: LockInfo[] = [];
    const lock = await acquireRunLock({ dataDir }, { onStale: (info) => stale.push(info) });
    assert.deepEqual(stale.map((s) => s.pid), [holder.pid]);
    assert.deepEqual((await readLock(dataDir)).pid, Deno.pid);
    await lock.release();
  });
});

Deno.test("a stale lock from a dead pid is taken over", async () => {
  await withDataDir(async (dataDir) => {
    const pid = await deadPid();
    const stale: LockInfo = {
      pid,
      started_at: "2026-01-01T00:00:00.000Z",
      run_id: "20260101T000000Z-dead",
      token: crypto.randomUUID(),
    };
    await Deno.writeTextFile(lockPath({ dataDir }), JSON.stringify(stale));
    assert(!isLockHolderAlive(stale));
    const seen: LockInfo[] = [];
    const lock = await acquireRunLock({ dataDir }, {
      runId: "new",
      onStale: (info) => seen.push(info),
    });
    assert.deepEqual(seen[0]?.run_id, "20260101T000000Z-dead");
    assert.deepEqual((await readLock(dataDir)).run_id, "new");
    await lock.release();
  });
});

Deno.test("a lock with our own pid but not held by this process is stale (pid 1 in a restarted container)", async () => {
  await withDataDir(async (dataDir) => {
    const previous: LockInfo = {
      pid: Deno.pid,
      started_at: "2026-01-01T00:00:00.000Z",
      run_id: "old",
      token: crypto.randomUUID(),
    };
    await Deno.writeTextFile(lockPath({ dataDir }), JSON.stringify(previous));
    const lock = await acquireRunLock({ dataDir });
    assert((await readLock(dataDir)).token !== previous.token);
    await lock.release();
  });
});

Deno.test("a lock whose pid now belongs to another process (start time differs) is stale", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  const other = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    const reused: LockInfo = {
      pid: other.pid,
      started_at: "2026-01-01T00:00:00.000Z",
      proc_start: "1",
      token: crypto.randomUUID(),
    };
    assert(!isLockHolderAlive(reused));
    assert(isLockHolderAlive({ ...reused, proc_start: undefined }));
  } finally {
    other.kill("SIGKILL");
    await other.status;
  }
});

Deno.test("an unreadable lock file is respected while fresh and taken over once old", async () => {
  await withDataDir(async (dataDir) => {
    const path = lockPath({ dataDir });
    await Deno.writeTextFile(path, '{"pid": 12');
    await assertRejects(() => acquireRunLock({ dataDir }), LockedError);
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(path, old, old);
    const lock = await acquireRunLock({ dataDir });
    assert.deepEqual((await readLock(dataDir)).pid, Deno.pid);
    await lock.release();
  });
});

Deno.test("a data folder that cannot hold the lock is a ConfigError naming PIPELINE_DATA_DIR (exit 2, not an internal error)", async () => {
  await withDataDir(async (dataDir) => {
    const file = join(dataDir, "a_file");
    await Deno.writeTextFile(file, "");
    for (const bad of [file, join(file, "below")]) {
      const error = await assertRejects(() => acquireRunLock({ dataDir: bad }), ConfigError);
      assert.deepEqual(exitCodeOf(error), ExitCode.config);
      assert(error.message.startsWith(`PIPELINE_DATA_DIR="${bad}" cannot hold the run lock`));
      assert(!error.message.includes("\n"), error.message);
    }
  });
});

Deno.test("release() leaves a lock that another process has since taken", async () => {
  await withDataDir(async (dataDir) => {
    const lock = await acquireRunLock({ dataDir });
    const other: LockInfo = {
      pid: 424242,
      started_at: new Date().toISOString(),
      token: crypto.randomUUID(),
    };
    await Deno.writeTextFile(lockPath({ dataDir }), JSON.stringify(other));
    await lock.release();
    assert.deepEqual((await readLock(dataDir)).token, other.token);
  });
});

Deno.test("runPipeline() refuses to start while another run holds the lock, creating no run folder", async () => {
  await withDataDir(async (dataDir) => {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dataDir, SPOTIFY_SOURCE: "sample" },
      envFile: false,
    });
    const lock = await acquireRunLock(config, { runId: "20261126T120000Z-aaaa" });
    try {
      const log = new Logger({ sink: () => {} });
      const error = await assertRejects(() => runPipeline(config, { log }), LockedError);
      assert.deepEqual(error.runId, "20261126T120000Z-aaaa");
      assert.deepEqual(await listRunIds(config), []);
      assert(await exists(join(dataDir, "pipeline.lock")));
    } finally {
      await lock.release();
    }
  });
});

Deno.test("a live run on another host (container) sharing the folder is seen as live while it renews its lease, and taken over once the lease runs out", async () => {
  await withDataDir(async (dataDir) => {
    // Two containers: their own pid namespaces, so the holder's pid means nothing here.
    const leaseMs = 600;
    const holder = await spawnHolder(dataDir, "20261201T120000Z-a0a0", {
      host: "container-a/pid:[1]",
      leaseMs,
    });
    const here = { host: "container-b/pid:[2]" };
    try {
      const info = await readLock(dataDir);
      assert.deepEqual([info.host, info.lease_ms], ["container-a/pid:[1]", leaseMs]);
      // three leases long: only the heartbeat keeps it live
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, leaseMs / 2));
        const error = await assertRejects(() => acquireRunLock({ dataDir }, here), LockedError);
        assert.deepEqual(error.runId, "20261201T120000Z-a0a0");
      }
      assert.deepEqual((await readRunLock({ dataDir }, here))?.run_id, "20261201T120000Z-a0a0");
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stdout.cancel();
    }
    // killed: nobody renews; live until the lease runs out, then taken over
    await assertRejects(() => acquireRunLock({ dataDir }, here), LockedError);
    await new Promise((r) => setTimeout(r, leaseMs + 100));
    assert.deepEqual(await readRunLock({ dataDir }, here), undefined);
    const lock = await acquireRunLock({ dataDir }, { ...here, runId: "20261201T120100Z-b0b0" });
    assert.deepEqual((await readLock(dataDir)).host, "container-b/pid:[2]");
    await lock.release();
  });
});

Deno.test("a lock from another host with an expired lease is stale; from this host the pid decides", () => {
  const renewedAt = Date.now() - 120_000;
  const foreign: LockInfo = {
    pid: Deno.pid,
    started_at: "2026-12-01T00:00:00.000Z",
    token: "t",
    host: "elsewhere",
    lease_ms: 60_000,
  };
  assert.ok(!isLockHolderAlive(foreign, { renewedAt, host: "here" }));
  assert.ok(isLockHolderAlive(foreign, { renewedAt: Date.now() - 1_000, host: "here" }));
  // our own host: an old mtime does not matter, the pid does (pid 1 lives, but not with our token)
  assert.ok(!isLockHolderAlive({ ...foreign, host: "here" }, { renewedAt, host: "here" }));
});
