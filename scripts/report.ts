/**
 * Build the report from the dbt models: `$PIPELINE_DATA_DIR/report/index.html`, one
 * self-contained page of charts (the daily pipeline's last step builds it too).
 * @example deno task report
 * @module
 */
import { taskMain, TASKS } from "../lib/cli.ts";
import { buildReport, publishReport, reportPath } from "../lib/report/build.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(TASKS.report, args, async ({ config, log }) => {
    const report = await buildReport(config, { log });
    const path = reportPath(config);
    await publishReport(path, report.html);
    console.log(
      `Report: ${path} (${report.users.length} user(s), ${report.charts_drawn} charts${
        report.charts_empty ? `, ${report.charts_empty} waiting for data` : ""
      })`,
    );
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
