/**
 * The report step in a run: before the models are built it fails as a storage error naming the
 * warehouse and saying what to run, leaves the published page as it was, and the run continues
 * from there once dbt has built the models.
 */

import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { ExitCode, exitCodeOf, StorageError } from "../lib/errors.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { reportPath } from "../lib/report/build.ts";
import { assert, assertEquals, assertRejects, testLog } from "./_spotify_test_util.ts";

Deno.test({
  name: "report step: fails cleanly before the models exist, then resumes after transform",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "report_run_" });
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, SPOTIFY_SOURCE: "sample" },
      envFile: false,
    });
    const { log } = testLog();
    try {
      const { run } = await runPipeline(config, { log, to: "load" });
      assertEquals(run.manifest.status, "partial");
      // an older page stays until a new one is complete
      const published = reportPath(config);
      await Deno.mkdir(join(published, ".."), { recursive: true });
      await Deno.writeTextFile(published, "<!doctype html><p>yesterday</p>");

      const error = await assertRejects(
        () => runPipeline(config, { log, runId: run.id, from: "report" }),
        StorageError,
      );
      assertEquals(exitCodeOf(error), ExitCode.storage);
      assert(
        error.message.includes(config.warehouse.kind === "duckdb" ? config.warehouse.path : ""),
      );
      assert(error.hint?.includes("deno task transform"), error.hint);
      assertEquals(await Deno.readTextFile(published), "<!doctype html><p>yesterday</p>");

      const resumed = await runPipeline(config, { log, runId: run.id, from: "transform" });
      assertEquals(resumed.ran, ["transform", "report"]);
      assertEquals(resumed.run.manifest.status, "succeeded");
      const html = await Deno.readTextFile(published);
      assert(html.includes('data-chart="top_artists" data-marks="10"'), "the new page");
      assertEquals(
        await Deno.readTextFile(join(run.dir, "report", "index.html")),
        html,
        "the run folder keeps the same page",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
