/**
 * The write step: reads `enrich/tracks.json` (`EnrichOutput`), writes the snapshot's rows as
 * `write/top_tracks.parquet` (explicit Arrow schema, zstd) and `write/write.json`
 * ({@link WriteOutput}) with the lake key, sizes, the file's SHA-256 and the content fingerprint.
 * @module
 */

import { ConfigError } from "../errors.ts";
import { writeTopTracksParquetFile } from "../parquet/writer.ts";
import { topTracksKey } from "../parquet/schema.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import type { EnrichOutput } from "../types.ts";
import { formatBytes } from "./_format.ts";

/** What write hands to upload: `write/write.json`. */
export interface WriteOutput {
  /** Lake key: `top_tracks/snapshot_date=YYYY-MM-DD/top_tracks.parquet`. */
  key: string;
  /** The Parquet file, relative to the run folder (`write/top_tracks.parquet`). */
  file: string;
  rows: number;
  bytes: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** Fingerprint of the rows without run_id and fetched_at (same data → same value). */
  content_sha256: string;
  snapshot_date: string;
}

/** Name of the Parquet file in the run folder. */
export const PARQUET_FILE = "write/top_tracks.parquet";

/** Runs the write step. */
export async function writeStep(ctx: StepContext): Promise<StepOutcome> {
  const { run, log } = ctx;
  const input = await run.readJson<EnrichOutput>("enrich", "tracks.json");
  const inputPath = run.path("enrich", "tracks.json");
  if (!input || !Array.isArray(input.rows)) {
    throw new ConfigError(`Run ${run.id}: ${inputPath} has no "rows" list`, {
      hint: `Redo enrich: \`deno task pipeline --run ${run.id} --from enrich\`.`,
    });
  }
  const snapshotDate = input.snapshot_date ?? run.snapshotDate;
  const other = input.rows.find((r) => r?.snapshot_date !== snapshotDate);
  if (other) {
    throw new ConfigError(
      `Run ${run.id}: ${inputPath} mixes snapshot dates: expected every row on ${snapshotDate}, found ${
        String(other.snapshot_date)
      } (one file per snapshot date)`,
    );
  }

  let result;
  try {
    result = await writeTopTracksParquetFile(run.path(PARQUET_FILE), input.rows);
  } catch (error) {
    if (error instanceof TypeError) {
      throw new ConfigError(`Run ${run.id}: ${inputPath}: ${error.message}`, {
        hint: `Redo enrich: \`deno task pipeline --run ${run.id} --from enrich\`.`,
      });
    }
    throw error;
  }

  const output: WriteOutput = {
    key: topTracksKey(snapshotDate),
    file: PARQUET_FILE,
    rows: result.rows,
    bytes: result.bytes,
    sha256: result.sha256,
    content_sha256: result.contentSha256,
    snapshot_date: snapshotDate,
  };
  const meta = await run.writeJson("write", "write.json", output);
  log.info(`Wrote ${result.rows} rows to ${PARQUET_FILE} (${formatBytes(result.bytes)})`, {
    key: output.key,
    content_sha256: output.content_sha256,
  });
  return {
    counts: { rows: result.rows, bytes: result.bytes },
    summary: {
      text: `Parquet: ${result.rows} rows, ${formatBytes(result.bytes)} → ${output.key}`,
      key: output.key,
      sha256: output.sha256,
      content_sha256: output.content_sha256,
    },
    outputs: [PARQUET_FILE, meta],
  };
}
