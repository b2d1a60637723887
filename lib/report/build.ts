/**
 * Builds the report: reads the dbt models ({@link readReportData}), draws every user's charts
 * and writes the page to `$PIPELINE_DATA_DIR/report/index.html` (temp name, then rename: a
 * reader never sees half a page).
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { writeFileAtomic } from "../fs_atomic.ts";
import type { Logger } from "../log.ts";
import { type Chart, renderCharts } from "./charts.ts";
import { readReportData } from "./data.ts";
import { openModelReader } from "./models.ts";
import { reportPage } from "./page.ts";

/** Where the report is published: `$PIPELINE_DATA_DIR/report/index.html`. */
export function reportPath(config: Pick<Config, "dataDir">): string {
  return join(config.dataDir, "report", "index.html");
}

/** A built report. */
export interface BuiltReport {
  html: string;
  users: { user_id: string; charts: Chart[] }[];
  /** Charts drawn (not counting the ones shown as a sentence). */
  charts_drawn: number;
  /** Charts shown as a sentence (nothing to draw yet). */
  charts_empty: number;
}

/** Options of {@link buildReport}. */
export interface BuildReportOptions {
  log: Logger;
  now?: Date;
}

/** Reads the models and renders the page (writes nothing). */
export async function buildReport(
  config: Config,
  options: BuildReportOptions,
): Promise<BuiltReport> {
  const reader = await openModelReader(config, { log: options.log });
  let data;
  try {
    data = await readReportData(reader);
  } finally {
    await reader.close();
  }
  const users = [];
  for (const user of data.users) {
    users.push({ user_id: user.user_id, charts: await renderCharts(user) });
  }
  const all = users.flatMap((u) => u.charts);
  return {
    html: reportPage({ users, where: data.where, generatedAt: options.now ?? new Date() }),
    users,
    charts_drawn: all.filter((c) => c.svg !== undefined).length,
    charts_empty: all.filter((c) => c.svg === undefined).length,
  };
}

/** Writes a built page to `path` atomically (the folder is created). */
export async function publishReport(path: string, html: string): Promise<void> {
  await writeFileAtomic(path, html);
}
