/**
 * The write step: reads each stream's `enrich/<stream file>`, splits its rows into the stream's
 * Parquet files (deterministic lake keys) and writes each as `write/<key>` (explicit Arrow
 * schema, zstd), then `write/write.json` ({@link WriteOutput}) with every file's key, sizes,
 * SHA-256, content fingerprint and, for cursor streams, the newest cursor value it holds.
 * @module
 */

import { ConfigError } from "../errors.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import { partitionCursor } from "../streams/cursor.ts";
import {
  readStreamRows,
  type WriteOutput,
  type WrittenFile,
  writtenFile,
} from "../streams/handoff.ts";
import { streamDefs } from "../streams/registry.ts";
import { formatBytes } from "./_format.ts";

export type { WriteOutput, WrittenFile };

/** Runs the write step. */
export async function writeStep(ctx: StepContext): Promise<StepOutcome> {
  const { run, log } = ctx;
  const files: WrittenFile[] = [];
  const counts: Record<string, number> = { rows: 0, files: 0, bytes: 0 };
  const lines: string[] = [];
  const users: Record<string, { rows: number; files: number }> = {};
  for (const stream of streamDefs(run.streams)) {
    const input = await readStreamRows(run, "enrich", stream);
    const inputPath = run.path("enrich", stream.files.rows);
    const stopped = Object.entries(input.skipped ?? {});
    if (stopped.length) {
      lines.push(
        `Parquet: ${stream.name} skipped for ${stopped.map(([u]) => u).join(", ")} (${
          stopped[0]![1].split(":")[0]
        })`,
      );
      if (input.rows.length === 0) continue;
    }
    const snapshotDate = input.snapshot_date;
    const other = input.rows.find((r) =>
      r.snapshot_date !== undefined && r.snapshot_date !== snapshotDate
    );
    if (other) {
      throw new ConfigError(
        `Run ${run.id}: ${inputPath} mixes snapshot dates: expected every row on ${snapshotDate}, found ${
          String(other.snapshot_date)
        } (one file per snapshot date)`,
      );
    }
    let streamRows = 0;
    let streamBytes = 0;
    const partitions = stream.partition(input.rows, { snapshotDate });
    // parquet-wasm loads only when there is something to write (a poll often has nothing)
    const { writeParquetFile } = partitions.length
      ? await import("../parquet/writer.ts")
      : { writeParquetFile: undefined };
    for (const { key, rows } of partitions) {
      const file = `write/${key}`;
      let result;
      try {
        result = await writeParquetFile!(stream, run.path(file), rows);
      } catch (error) {
        if (error instanceof TypeError) {
          throw new ConfigError(`Run ${run.id}: ${inputPath}: ${error.message}`, {
            hint: `Redo enrich: \`deno task pipeline --run ${run.id} --from enrich\`.`,
          });
        }
        throw error;
      }
      const written = writtenFile(stream, key, file, result);
      const cursor = partitionCursor(stream, rows);
      if (cursor) written.cursor = cursor;
      files.push(written);
      for (const row of rows) {
        const u = (users[String(row.user_id)] ??= { rows: 0, files: 0 });
        u.rows++;
      }
      // every partition holds one user's rows (the keys name the user)
      if (rows[0]) users[String(rows[0].user_id)]!.files++;
      streamRows += result.rows;
      streamBytes += result.bytes;
      log.info(
        `Wrote ${result.rows} ${stream.name} rows to ${file} (${formatBytes(result.bytes)})`,
        {
          key,
          content_sha256: result.contentSha256,
        },
      );
    }
    counts.rows! += streamRows;
    counts.bytes! += streamBytes;
    counts.files! += partitions.length;
    counts[`${stream.name}_rows`] = streamRows;
    counts[`${stream.name}_files`] = partitions.length;
    lines.push(
      partitions.length === 0
        ? `Parquet: ${stream.name}: nothing new to write`
        : partitions.length === 1
        ? `Parquet: ${streamRows} rows, ${formatBytes(streamBytes)} → ${partitions[0]!.key}`
        : `Parquet: ${stream.name} ${streamRows} rows in ${partitions.length} file(s), ${
          formatBytes(streamBytes)
        }${partitions.length ? ` → ${stream.name}/...` : ""}`,
    );
  }
  const output: WriteOutput = { run_id: run.id, snapshot_date: run.snapshotDate, files };
  const meta = await run.writeJson("write", "write.json", output);
  return {
    counts,
    summary: { text: lines.join("\n"), files: files.map((f) => ({ key: f.key, rows: f.rows })) },
    outputs: [...files.map((f) => f.file), meta],
    users,
  };
}
