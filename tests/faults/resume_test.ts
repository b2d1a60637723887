/**
 * Resume: finished steps are skipped only while their outputs check out (size and SHA-256 in the
 * manifest), the failed step is redone from its input, a changed/missing output or a step redone
 * alone makes that step and the later ones run again (with a log line saying why), leftovers of a
 * killed writer are never taken for outputs, and a corrupt run folder is a one-line config error
 * (exit 2) naming the file and how to recover — checked through the CLI, never a stack trace.
 */

import { join } from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { ConfigError, ExitCode, StorageError } from "../../lib/errors.ts";
import { runPipeline } from "../../lib/pipeline.ts";
import { createRun, listRunIds, type Manifest, openRun, type StepName } from "../../lib/run.ts";
import { runStep } from "../../lib/steps.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  runTask,
  testLog,
} from "../_spotify_test_util.ts";

/** A temp data dir with a local, sample-data config (no Spotify, no warehouse needed to `write`). */
async function setup(extra: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "resume_test_" });
  const env = {
    PIPELINE_DATA_DIR: dir,
    SPOTIFY_SOURCE: "sample",
    PIPELINE_STREAMS: "top_tracks",
    ...extra,
  };
  return {
    dir,
    env,
    config: loadConfig({ env, envFile: false }),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A user's top-tracks Parquet file of a run, relative to the run folder (`write/<lake key>`). */
function parquetOf(date: string, user = "sample"): string {
  return `write/top_tracks/user_id=${user}/snapshot_date=${date}/top_tracks.parquet`;
}

async function manifestOf(dir: string, runId: string): Promise<Manifest> {
  return JSON.parse(await Deno.readTextFile(join(dir, "runs", runId, "manifest.json")));
}

/** Messages of the log lines (JSON) that mention `step`. */
function stepLines(lines: string[], step: StepName): string[] {
  return lines.map((l) => JSON.parse(l) as { msg: string; step?: string })
    .filter((r) => r.step === step).map((r) => r.msg);
}

/** The error records carrying an exit code (what a task prints last). */
function errorRecords(stderr: string): { msg: string; hint?: string; exit_code: number }[] {
  return stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .filter((r) => r.level === "error" && r.exit_code !== undefined);
}

Deno.test("a finished step records each output's size and SHA-256 once it is in place", async () => {
  await using env = await setup();
  const { log } = testLog();
  const { run } = await runPipeline(env.config, { log, to: "write" });
  const m = await manifestOf(env.dir, run.id);
  for (const step of ["fetch", "enrich", "write"] as const) {
    const record = m.steps[step]!;
    assertEquals(Object.keys(record.files ?? {}).sort(), [...record.outputs!].sort(), step);
    for (const [rel, digest] of Object.entries(record.files!)) {
      const data = await Deno.readFile(join(run.dir, rel));
      assertEquals(digest.bytes, data.length, rel);
      assertMatch(digest.sha256, /^[0-9a-f]{64}$/);
    }
  }
  assertEquals(m.status, "partial");
});

Deno.test("--resume skips verified steps and redoes the failed one from its input", async () => {
  // The lake folder's parent is a file: upload fails (exit 4) until it is fixed.
  await using env = await setup();
  const blocker = join(env.dir, "blocker");
  await Deno.writeTextFile(blocker, "not a folder");
  const blocked = loadConfig({
    env: { ...env.env, PIPELINE_LAKE_DIR: join(blocker, "lake") },
    envFile: false,
  });
  const first = testLog();
  const error = await assertRejects(
    () => runPipeline(blocked, { log: first.log, to: "upload" }),
    StorageError,
  );
  assertStringIncludes(error.message, blocker);
  const [runId] = (await Array.fromAsync(Deno.readDir(join(env.dir, "runs")))).map((e) => e.name);
  const failed = await manifestOf(env.dir, runId!);
  assertEquals(failed.status, "failed");
  assertEquals(failed.steps.upload?.status, "failed");
  assertEquals(failed.steps.upload?.exit_code, ExitCode.storage);
  const writtenAt = failed.steps.write!.finished_at;

  await Deno.remove(blocker);
  const fixed = loadConfig({
    env: { ...env.env, PIPELINE_LAKE_DIR: join(blocker, "lake") },
    envFile: false,
  });
  const second = testLog();
  const result = await runPipeline(fixed, { log: second.log, resume: true, to: "upload" });
  assertEquals(result.run.id, runId);
  assertEquals(result.skipped, ["fetch", "enrich", "write"]);
  assertEquals(result.ran, ["upload"]);
  for (const step of result.skipped) {
    assertEquals(stepLines(second.lines, step), [
      `${step}: already finished in this run, outputs verified, skipped`,
    ]);
  }
  const after = await manifestOf(env.dir, runId!);
  assertEquals(after.steps.upload?.status, "succeeded");
  assertEquals(after.steps.upload?.error, undefined);
  assertEquals(after.steps.write!.finished_at, writtenAt);
});

Deno.test("--resume redoes a step whose output changed or vanished, and every step after it", async (t) => {
  await using env = await setup();
  const { run } = await runPipeline(env.config, { log: testLog().log, to: "write" });

  await t.step("a changed output (same size, other bytes) is caught by its SHA-256", async () => {
    const file = join(run.dir, "enrich", "tracks.json");
    const text = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, text.replace('"csv"', '"CSV"'));
    const { log, lines } = testLog();
    const result = await runPipeline(env.config, { log, resume: true, to: "write" });
    assertEquals(result.skipped, ["fetch"]);
    assertEquals(result.ran, ["enrich", "write"]);
    const why = stepLines(lines, "enrich")[0]!;
    assertMatch(
      why,
      /^enrich: its output enrich\/tracks\.json changed since the step finished \(sha256 [0-9a-f]{12}…, the manifest says [0-9a-f]{12}…\); redoing enrich and the steps after it$/,
    );
    // redone from its input: the hand edit is gone
    assert(!(await Deno.readTextFile(file)).includes('"CSV"'));
  });

  await t.step("a missing output (the Parquet file) redoes its step", async () => {
    await Deno.remove(join(run.dir, parquetOf(run.snapshotDate)));
    const { log, lines } = testLog();
    const result = await runPipeline(env.config, { log, resume: true, to: "write" });
    assertEquals(result.skipped, ["fetch", "enrich"]);
    assertEquals(result.ran, ["write"]);
    assertStringIncludes(
      stepLines(lines, "write")[0]!,
      `write: its output ${parquetOf(run.snapshotDate)} is missing; redoing write`,
    );
  });

  await t.step("a step redone alone makes the steps after it stale", async () => {
    const opened = await openRun(env.config, { runId: run.id });
    await runStep("enrich", { config: env.config, run: opened, log: testLog().log, flags: {} });
    const { log, lines } = testLog();
    const result = await runPipeline(env.config, { log, resume: true, to: "write" });
    assertEquals(result.skipped, ["fetch", "enrich"]);
    assertEquals(result.ran, ["write"]);
    assertStringIncludes(
      stepLines(lines, "write")[0]!,
      "enrich finished again after write ran, so write's input changed",
    );
  });

  await t.step("everything intact: nothing runs", async () => {
    const result = await runPipeline(env.config, { log: testLog().log, resume: true, to: "write" });
    assertEquals(result.ran, []);
  });
});

Deno.test("a half-written file left by a killed writer is never taken for an output", async () => {
  await using env = await setup();
  const { run } = await runPipeline(env.config, { log: testLog().log, to: "enrich" });
  // What a SIGKILL in the middle of write leaves: the step marked running, a temp file holding
  // part of the Parquet file, no write.json (tests/faults/fault_suite_test.ts kills real ones).
  const m = await manifestOf(env.dir, run.id);
  m.steps.write = { status: "running", started_at: new Date().toISOString() };
  m.status = "running";
  await Deno.writeTextFile(join(run.dir, "manifest.json"), JSON.stringify(m));
  await Deno.mkdir(join(run.dir, "write"));
  const tmp = join(run.dir, "write", ".0a1b2c3d.top_tracks.parquet.tmp");
  await Deno.writeFile(tmp, new Uint8Array([0x50, 0x41, 0x52, 0x31, 0, 0]));
  // A step run alone refuses the missing hand-off (it never reads the temp file).
  const reopened = await openRun(env.config, { runId: run.id });
  const alone = await assertRejects(
    () =>
      runStep("upload", {
        config: env.config,
        run: reopened,
        log: testLog().log,
        flags: {},
      }),
    ConfigError,
  );
  assertStringIncludes(alone.message, "no write output (write/write.json)");

  const result = await runPipeline(env.config, { log: testLog().log, resume: true, to: "write" });
  assertEquals(result.ran, ["write"]);
  await assertRejects(() => Deno.stat(tmp), Deno.errors.NotFound);
  const after = await manifestOf(env.dir, run.id);
  assertEquals(after.steps.write?.status, "succeeded");
  assertEquals(Object.keys(after.steps.write?.files ?? {}).sort(), [
    parquetOf(run.snapshotDate, "sample"),
    parquetOf(run.snapshotDate, "sample_2"),
    "write/write.json",
  ]);
});

Deno.test("a corrupt run folder is a one-line config error (exit 2) naming the file and the way out", async (t) => {
  await using env = await setup();
  const cwd = env.dir;
  const { run } = await runPipeline(env.config, { log: testLog().log, to: "write" });
  const manifestFile = join(run.dir, "manifest.json");
  const good = await Deno.readTextFile(manifestFile);

  const expectConfigError = async (
    args: string[],
    script = "pipeline.ts",
    code: number = ExitCode.config,
  ) => {
    const r = await runTask(script, args, env.env, cwd);
    const where = `exit ${r.code}\n${r.stderr}`;
    assertEquals(r.code, code, where);
    const records = errorRecords(r.stderr);
    assertEquals(records.length, 1, where);
    assert(!records[0]!.msg.includes("\n"), where);
    assert(!r.stderr.includes("    at "), `a stack trace:\n${where}`);
    return records[0]!;
  };

  await t.step("a truncated manifest: start a new run", async () => {
    await Deno.writeTextFile(manifestFile, good.slice(0, good.length / 2));
    const e = await expectConfigError(["--resume"]);
    assertStringIncludes(e.msg, `manifest ${manifestFile} is corrupt (not JSON`);
    assertStringIncludes(e.hint!, "start a new run");
  });

  await t.step("a manifest of the wrong shape (steps: null, a bad status)", async () => {
    for (
      const [edit, what] of [
        [(m: Record<string, unknown>) => (m.steps = null), '"steps" is not an object'],
        [
          (
            m: Record<string, unknown>,
          ) => ((m.steps as Record<string, unknown>).fetch = { status: "done" }),
          'steps.fetch has no valid "status"',
        ],
        [(m: Record<string, unknown>) => (m.snapshot_date = "tomorrow"), '"snapshot_date"'],
      ] as const
    ) {
      const m = JSON.parse(good);
      edit(m);
      await Deno.writeTextFile(manifestFile, JSON.stringify(m));
      const e = await expectConfigError(["--run", run.id, "--resume"]);
      assertStringIncludes(e.msg, what);
    }
  });

  await t.step("a folder where the manifest should be", async () => {
    await Deno.remove(manifestFile);
    await Deno.mkdir(manifestFile);
    const e = await expectConfigError(["--run", run.id, "--resume"]);
    assertStringIncludes(e.msg, `cannot read ${manifestFile}`);
    await Deno.remove(manifestFile);
    await Deno.writeTextFile(manifestFile, good);
  });

  await t.step(
    "an invalid output JSON read by the next step: redo the step that wrote it",
    async () => {
      const file = join(run.dir, "enrich", "tracks.json");
      const text = await Deno.readTextFile(file);
      await Deno.writeTextFile(file, text.slice(0, 100));
      const e = await expectConfigError(["--run", run.id], "write.ts");
      assertStringIncludes(e.msg, `${file} is not valid JSON`);
      assertStringIncludes(e.hint!, `--run ${run.id} --from enrich`);
      // the way out it names works
      const redo = await runTask(
        "pipeline.ts",
        ["--run", run.id, "--from", "enrich", "--to", "write"],
        env.env,
        cwd,
      );
      assertEquals(redo.code, 0, redo.stderr);
    },
  );

  await t.step(
    "the same truncated output is repaired by --resume (its SHA-256 no longer matches)",
    async () => {
      const file = join(run.dir, "fetch", "tracks.json");
      const text = await Deno.readTextFile(file);
      await Deno.writeTextFile(file, text.slice(0, 100));
      const r = await runTask("pipeline.ts", ["--resume", "--to", "write"], env.env, cwd);
      assertEquals(r.code, 0, r.stderr);
      assertStringIncludes(
        r.stderr,
        "fetch: its output fetch/tracks.json changed since the step finished",
      );
      JSON.parse(await Deno.readTextFile(file));
    },
  );

  await t.step(
    "--run ../x and other ids that are not run ids never reach the file system",
    async () => {
      for (const id of ["../x", "../../etc", "/tmp", `${run.id}/..`, "."]) {
        const e = await expectConfigError(["--run", id]);
        assertStringIncludes(e.msg, `--run "${id}" is not a run id`);
        const step = await expectConfigError(["--run", id], "upload.ts");
        assertStringIncludes(step.msg, `--run "${id}" is not a run id`);
      }
    },
  );

  await t.step(
    "a tampered hand-off pointing outside the run folder is refused (integrity: exit 4)",
    async () => {
      const file = join(run.dir, "write", "write.json");
      const meta = JSON.parse(await Deno.readTextFile(file));
      meta.files[0].file = "../../../../etc/passwd";
      await Deno.writeTextFile(file, JSON.stringify(meta));
      const e = await expectConfigError(["--run", run.id], "upload.ts", ExitCode.storage);
      assertStringIncludes(e.msg, '"../../../../etc/passwd" is outside the run folder');
    },
  );
});

Deno.test("--resume takes the run started last, also among runs started within the same second", async () => {
  await using env = await setup();
  // two runs in the same second whose random suffixes sort the other way round
  const now = new Date("2026-11-26T12:00:00.100Z");
  const first = await createRun(env.config, { id: "20261126T120000Z-ffff", now });
  const second = await createRun(env.config, {
    id: "20261126T120000Z-0000",
    now: new Date(now.getTime() + 400),
  });
  assertEquals(await listRunIds(env.config), [first.id, second.id]);
  assertEquals((await openRun(env.config)).id, second.id);
  assertEquals((await openRun(env.config, { unfinished: true })).id, second.id);
  const result = await runPipeline(env.config, { log: testLog().log, resume: true, to: "fetch" });
  assertEquals(result.run.id, second.id);
});

Deno.test("a FIFO planted in a run folder never blocks a step or GET /runs: a one-line error naming it", async () => {
  await using env = await setup();
  const { run } = await runPipeline(env.config, { log: testLog().log, to: "fetch" });
  const planted = join(run.dir, "fetch", "tracks.json");
  await Deno.remove(planted);
  const made = await new Deno.Command("mkfifo", { args: [planted] }).output();
  assert(made.success, "mkfifo");
  // bounded: a regression would block on the open (no writer ever comes)
  const bounded = <T>(p: Promise<T>) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("blocked")), 10_000)),
    ]);
  const reopened = await openRun(env.config, { runId: run.id });
  const error = await bounded(
    runStep("enrich", { config: env.config, run: reopened, log: testLog().log, flags: {} }).then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  assert(error instanceof ConfigError, String(error));
  assertStringIncludes(error.message, "fetch/tracks.json is not a regular file");
  // --resume finds the output gone bad and redoes fetch
  const resumed = await bounded(
    runPipeline(env.config, { log: testLog().log, resume: true, to: "enrich" }),
  );
  assertEquals(resumed.ran, ["fetch", "enrich"]);

  // a FIFO as another run's manifest: that run is left out of the list, the rest is listed
  const other = await createRun(env.config, { date: "2026-11-20" });
  const manifest = join(other.dir, "manifest.json");
  await Deno.remove(manifest);
  assert((await new Deno.Command("mkfifo", { args: [manifest] }).output()).success);
  const { listRuns } = await import("../../lib/server/runs.ts");
  const listed = await bounded(listRuns(env.config));
  assertEquals(listed.map((r) => r.run_id), [run.id]);
});

Deno.test("a full disk stops the run with exit 4 and one line naming the folder; after freeing space --resume finishes with nothing lost", async (t) => {
  const mountpoint = await Deno.makeTempDir({ prefix: "disk_full_" });
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountpoint],
    stderr: "null",
    stdout: "null",
  }).output().catch(() => ({ success: false }));
  if (!mounted.success) {
    // not root (or no mount namespace): the case cannot be made here
    await Deno.remove(mountpoint, { recursive: true });
    console.warn("disk-full test skipped: cannot mount a tmpfs here");
    return;
  }
  try {
    const dataDir = join(mountpoint, "data");
    const env = {
      PIPELINE_DATA_DIR: dataDir,
      SPOTIFY_SOURCE: "sample",
      PIPELINE_STREAMS: "top_tracks",
    };
    await Deno.mkdir(dataDir);
    // leave ~40 kB: the first pages fit, the rest of the run does not
    const filler = join(mountpoint, "filler");
    const free = () => {
      const out = new Deno.Command("df", { args: ["-B1", "--output=avail", mountpoint] })
        .outputSync();
      return Number(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1));
    };
    await Deno.writeFile(filler, new Uint8Array(Math.max(0, free() - 40_000)));

    const failed = await runTask("pipeline.ts", ["--to", "upload"], env, mountpoint);
    await t.step("exit 4, one line naming the folder, no stack", () => {
      assertEquals(failed.code, ExitCode.storage, failed.stderr);
      const errors = errorRecords(failed.stderr);
      assertEquals(errors.length, 1, failed.stderr);
      assertStringIncludes(errors[0]!.msg, "No space left on the device holding");
      assertStringIncludes(errors[0]!.msg, dataDir);
      assert(!failed.stderr.includes('"stack"'), "no stack trace");
    });

    await Deno.remove(filler);
    const resumed = await runTask("pipeline.ts", ["--resume", "--to", "upload"], env, mountpoint);
    await t.step("--resume after freeing space finishes; no temp file left", async () => {
      assertEquals(resumed.code, 0, resumed.stderr);
      const config = loadConfig({ env, envFile: false });
      const [id] = await listRunIds(config);
      const m = await manifestOf(dataDir, id!);
      assertEquals(m.steps.upload?.status, "succeeded");
      const temps: string[] = [];
      for await (const e of walk(join(dataDir, "runs"))) if (e.endsWith(".tmp")) temps.push(e);
      assertEquals(temps, []);
      const lake = join(dataDir, "lake", "top_tracks");
      assert((await Array.fromAsync(walk(lake))).some((p) => p.endsWith("top_tracks.parquet")));
    });
  } finally {
    await new Deno.Command("umount", { args: [mountpoint] }).output();
    await Deno.remove(mountpoint, { recursive: true });
  }
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walk(p);
    else yield p;
  }
}
