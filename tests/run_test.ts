import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { CancelledError, ExitCode, exitCodeOf, StorageError } from "../lib/errors.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { createRun, openRun } from "../lib/run.ts";
import { testLog } from "./_spotify_test_util.ts";

Deno.test("a run folder that cannot be created is a StorageError naming it (exit 4), not a crash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run_test_" });
  try {
    await Deno.writeTextFile(join(dir, "runs"), "a file where the runs folder should be");
    const config = loadConfig({ env: { PIPELINE_DATA_DIR: dir }, envFile: false });
    const error = await createRun(config).then(
      () => assert.fail("expected a StorageError"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof StorageError, String(error));
    assert.match(error.message, /Cannot create the run folder .*runs/);
    assert.match(error.hint ?? "", /PIPELINE_DATA_DIR/);
    assert.equal(exitCodeOf(error), ExitCode.storage);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a run asked to stop between steps is cancelled (exit 130), left partial, and --resume finishes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run_test_" });
  try {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, SPOTIFY_SOURCE: "sample", FEATURES_PROVIDERS: "csv" },
      envFile: false,
    });
    const stop = new AbortController();
    const { log } = testLog();
    let ran = 0;
    // the signal aborts once fetch has finished: enrich never starts
    const error = await runPipeline(config, {
      log,
      to: "write",
      signal: stop.signal,
      onRun: (run) => {
        const save = run.save.bind(run);
        run.save = async () => {
          await save();
          if (run.finished("fetch") && ran++ === 0) stop.abort();
        };
      },
    }).then(() => assert.fail("expected a CancelledError"), (e: unknown) => e);
    assert.ok(error instanceof CancelledError, String(error));
    assert.equal(exitCodeOf(error), ExitCode.cancelled);
    assert.equal(ExitCode.cancelled, 130);
    assert.match(error.message, /cancelled before enrich/);
    const run = await openRun(config);
    assert.equal(run.manifest.status, "partial");
    assert.deepEqual(Object.keys(run.manifest.steps), ["fetch"]);

    const { run: resumed, skipped } = await runPipeline(config, { log, resume: true, to: "write" });
    assert.equal(resumed.id, run.id);
    assert.deepEqual(skipped, ["fetch"]);
    assert.ok(resumed.finished("write"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
