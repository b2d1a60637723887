/**
 * The load step: reads the upload receipt (`upload/receipt.json`), loads the file into the
 * warehouse's raw table (DuckDB locally, Snowflake `COPY INTO` in prod) — a file already loaded
 * loads nothing and is reported skipped — and writes `load/report.json` (`LoadReport`).
 *
 * `--setup` (prod only) prints the one-time Snowflake setup SQL instead; `--setup --apply` runs it.
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import type { PutReceipt } from "../store/object_store.ts";
import { openWarehouse } from "../warehouse/open.ts";
import type { FileToLoad, LoadReport } from "../warehouse/warehouse.ts";

/** Options of {@link runLoadSetup}. */
export interface RunLoadSetupOptions {
  /** Run the SQL (otherwise only print it). */
  apply: boolean;
  log: Logger;
}

/**
 * `load --setup [--apply]`: the one-time Snowflake setup (prod only; the local DuckDB warehouse
 * needs none). Needs no run folder.
 * @throws {ConfigError} in the local profile.
 */
export async function runLoadSetup(config: Config, options: RunLoadSetupOptions): Promise<void> {
  if (config.profile !== "prod") {
    throw new ConfigError(
      "--setup prepares Snowflake (role, warehouse, database, storage integration, stage) and is for the prod profile; the local profile's DuckDB warehouse needs no setup",
      { hint: "Run `PIPELINE_PROFILE=prod deno task load --setup` with the Snowflake settings." },
    );
  }
  const { runSnowflakeSetup } = await import("../warehouse/snowflake_setup.ts");
  await runSnowflakeSetup(config, { apply: options.apply, log: options.log });
}

/**
 * Runs the load step. The one-time setup is not part of a run (`scripts/load.ts` sends
 * `--setup [--apply]` to {@link runLoadSetup}): a step never runs it, nor marks a run's load done
 * by it.
 */
export async function loadStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, flags } = ctx;
  if (flags.setup || flags.apply) {
    throw new ConfigError(
      "--setup/--apply are not part of a run: `deno task load --setup` prints the Snowflake setup, `deno task load --setup --apply` runs it",
    );
  }

  const receipt = await run.readJson<PutReceipt>("upload", "receipt.json");
  for (const field of ["uri", "key", "sha256"] as const) {
    if (typeof receipt?.[field] !== "string" || !receipt[field]) {
      throw new ConfigError(
        `Run ${run.id}: ${run.path("upload", "receipt.json")} has no "${field}"`,
        { hint: `Redo upload: \`deno task pipeline --run ${run.id} --from upload\`.` },
      );
    }
  }
  const file: FileToLoad = {
    uri: receipt.uri,
    key: receipt.key,
    sha256: receipt.sha256,
    bytes: receipt.bytes,
    run_id: run.id,
  };

  const warehouse = await openWarehouse(config, { log });
  let report: LoadReport;
  try {
    report = await warehouse.load([file]);
  } finally {
    await warehouse.close();
  }
  const rel = await run.writeJson("load", "report.json", report);
  const text = summaryText(report, config.warehouse.kind === "duckdb" ? config.warehouse.path : "");
  log.info(text.split("\n")[0]!, {
    files_loaded: report.files_loaded,
    files_skipped: report.files_skipped,
    rows_loaded: report.rows_loaded,
  });
  return {
    counts: {
      files_loaded: report.files_loaded,
      files_skipped: report.files_skipped,
      rows_loaded: report.rows_loaded,
    },
    summary: { text, report },
    outputs: [rel],
  };
}

/** The human-readable part of the load report (printed by the pipeline's final summary). */
export function summaryText(report: LoadReport, location: string): string {
  const where = location ? `${report.table} in ${location}` : report.table;
  const head = report.files_loaded > 0
    ? `Load: ${report.rows_loaded} rows from ${report.files_loaded} file(s) into ${where}` +
      (report.files_skipped ? `; ${report.files_skipped} already loaded, skipped` : "")
    : `Load: nothing new — ${report.files_skipped} file(s) already loaded into ${where}, skipped`;
  const lines = report.files.map((f) =>
    `  ${f.status.padEnd(8)} ${f.file}` +
    (f.status === "LOADED" ? ` (${f.rows_loaded} rows)` : "") +
    (f.first_error ? ` — ${f.first_error}` : "")
  );
  return [head, ...lines].join("\n");
}
