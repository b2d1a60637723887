import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { ExitCode, exitCodeOf, StorageError } from "../lib/errors.ts";
import { createRun } from "../lib/run.ts";

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
