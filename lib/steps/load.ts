/**
 * The load step: reads the upload receipts (`upload/receipt.json`), loads each file into its
 * stream's raw table (DuckDB locally, Snowflake `COPY INTO` in prod) — a file already loaded
 * loads nothing and is reported skipped — writes `load/report.json` (`LoadReport`), then moves
 * the cursor streams' cursors to the newest rows now in the warehouse.
 *
 * `--setup` (prod only) prints the one-time Snowflake setup SQL instead; `--setup --apply` runs it.
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { readTokenStore } from "../spotify/token_store.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import { advanceCursor } from "../state.ts";
import { readUploadOutput } from "../streams/handoff.ts";
import { SAMPLE_USER } from "../streams/names.ts";
import { keyUser } from "../streams/stream.ts";
import { openWarehouse } from "../warehouse/open.ts";
import { type FileToLoad, type LoadReport, loadReport } from "../warehouse/warehouse.ts";

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

  const uploaded = await readUploadOutput(run);
  const files: FileToLoad[] = uploaded.files.map((f) => ({
    stream: f.stream,
    uri: f.uri,
    key: f.key,
    sha256: f.sha256,
    bytes: f.bytes,
    run_id: run.id,
  }));
  const migrationUser = await migrationUserOf(config);

  let report: LoadReport;
  if (files.length === 0) {
    // nothing new (a poll with no new play): the warehouse is not touched — a Snowflake
    // connection would wake a billed warehouse for nothing
    report = loadReport(config.warehouse.kind);
  } else {
    const warehouse = await openWarehouse(config, { log });
    try {
      report = await warehouse.load(files, { migrationUser });
    } finally {
      await warehouse.close();
    }
  }
  const rel = await run.writeJson("load", "report.json", report);
  // Only now that the plays are in the warehouse does the cursor move on: a run that fails
  // before this point leaves it, so the next poll asks Spotify for those plays again.
  for (const f of uploaded.files) {
    if (f.cursor) {
      await advanceCursor(config, f.stream, f.cursor.user_id, f.cursor.value, {
        log,
        runId: run.id,
      });
    }
  }
  const text = summaryText(report, config.warehouse.kind === "duckdb" ? config.warehouse.path : "");
  for (const m of report.migrations ?? []) run.warn(`load migrated ${m}`);
  log.info(text.split("\n")[0]!, {
    files_loaded: report.files_loaded,
    files_skipped: report.files_skipped,
    rows_loaded: report.rows_loaded,
  });
  // what was loaded of each user (by the key-safe id the keys carry)
  const users: Record<string, { files: number; rows: number }> = {};
  for (const f of report.files) {
    const user = keyUser(f.file);
    if (user === undefined || f.status !== "LOADED") continue;
    const u = (users[user] ??= { files: 0, rows: 0 });
    u.files++;
    u.rows += f.rows_loaded;
  }
  return {
    users,
    counts: {
      files_loaded: report.files_loaded,
      files_skipped: report.files_skipped,
      rows_loaded: report.rows_loaded,
    },
    summary: { text, report },
    outputs: [rel],
  };
}

/**
 * Whose rows the raw tables held before they had `user_id`: the token store's user, or `sample`
 * when the run uses the bundled sample.
 */
async function migrationUserOf(config: Config): Promise<string> {
  if (config.spotify.source === "sample") return SAMPLE_USER;
  try {
    const tokens = await readTokenStore(config.spotify.tokensFile);
    return tokens.user?.id ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The human-readable part of the load report (printed by the pipeline's final summary). */
export function summaryText(report: LoadReport, location: string): string {
  if (report.files.length === 0) return "Load: nothing to load";
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
