/**
 * The transform step: `dbt build` (models + tests) for the active target from the project's
 * venv (created on first use), its summary saved as `transform/run_results.json`, and — for
 * DuckDB — this week's audio-feature means read back from `inter_top_weekly_audio_features`
 * into `summary.text`, which the pipeline prints.
 * @module
 */

import { join } from "node:path";
import { dbtErrorOf, type DbtSummary, runDbt } from "../dbt/runner.ts";
import { ensureVenv } from "../dbt/venv.ts";
import { withReadOnlyDuckDb } from "../dbt/_read_only.ts";
import { formatListening, readListening } from "../dbt/listening.ts";
import { formatWeeklyMeans, readWeeklyMeans, type WeeklyMeans } from "../dbt/weekly_means.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/**
 * Runs the transform step.
 * @throws DbtError naming the failed models/tests (after saving the summary).
 */
export async function transformStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, flags, signal } = ctx;
  const venv = await ensureVenv(config.dbt, {
    log,
    locks: [join(config.dbt.projectDir, "requirements.lock")],
    signal,
  });
  const summary = await runDbt(config, {
    log,
    venv,
    fullRefresh: flags["full-refresh"] === true,
    throwOnFailure: false,
    signal,
  });
  const output = await run.writeJson("transform", "run_results.json", summary);
  const error = dbtErrorOf(summary);
  if (error) throw error;

  const counts = {
    models: summary.models.built,
    tests_passed: summary.tests.passed,
    tests_warned: summary.tests.warned,
    tests_failed: summary.tests.failed,
  };
  const where = config.warehouse.kind === "duckdb"
    ? `${config.warehouse.path}, schema ${config.dbt.schema}`
    : `${config.warehouse.database}.${config.dbt.schema}`;
  const lines = [
    `dbt (${config.dbt.target}): ${counts.models} models built in ${where}; tests ${counts.tests_passed} passed, ${counts.tests_warned} warned, ${counts.tests_failed} failed (${
      summary.wall_s.toFixed(1)
    } s${phasesText(summary)})`,
  ];
  if (summary.warned.length) lines.push(`  warnings: ${summary.warned.join(", ")}`);

  let week: WeeklyMeans | undefined;
  if (config.warehouse.kind === "duckdb") {
    // one read-only open of the warehouse for both read-backs
    const read = await withReadOnlyDuckDb(config.warehouse.path, async (connection) => ({
      week: await readWeeklyMeans(connection, {
        schema: config.dbt.schema,
        date: run.snapshotDate,
      }),
      listening: await readListening(connection, config.dbt.schema),
    }));
    week = read.week;
    lines.push("", formatWeeklyMeans(week), "", formatListening(read.listening));
  }
  return {
    counts,
    summary: {
      target: summary.target,
      schema: summary.schema,
      full_refresh: summary.full_refresh,
      dbt_version: summary.dbt_version,
      elapsed_s: summary.elapsed_s,
      wall_s: summary.wall_s,
      ...(summary.phases_s ? { phases_s: summary.phases_s } : {}),
      warned: summary.warned,
      ...(week ? { week } : {}),
      text: lines.join("\n"),
    },
    outputs: [output],
  };
}

/** `: start-up 3.1, parse 1.0, run 3.2, exit 0.4` (seconds), or nothing without phases. */
function phasesText(summary: DbtSummary): string {
  const p = summary.phases_s;
  if (!p) return "";
  return `: start-up ${p.startup.toFixed(1)}, parse ${p.parse.toFixed(1)}, run ${
    p.execute.toFixed(1)
  }, exit ${p.exit.toFixed(1)}`;
}
