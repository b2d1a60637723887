/**
 * The report step (the daily pipeline's last): builds the report from the dbt models, keeps it
 * in the run folder (`report/index.html`) and publishes it to `$PIPELINE_DATA_DIR/report/`.
 * @module
 */

import { buildReport, publishReport, reportPath } from "../report/build.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** Runs the report step. */
export async function reportStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log } = ctx;
  const report = await buildReport(config, { log });
  const output = await run.writeFile("report", "index.html", report.html);
  const path = reportPath(config);
  await publishReport(path, report.html);
  return {
    counts: {
      users: report.users.length,
      charts: report.charts_drawn,
      charts_empty: report.charts_empty,
      bytes: new TextEncoder().encode(report.html).byteLength,
    },
    // the pipeline's summary ends with the path (see formatSummary)
    summary: { path, users: report.users.map((u) => u.user_id) },
    outputs: [output],
  };
}
