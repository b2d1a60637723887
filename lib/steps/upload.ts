/**
 * The upload step: reads `write/write.json`, puts each Parquet file into the object store (the
 * lake folder locally, S3 in prod) under its key, and writes `upload/receipt.json`
 * ({@link UploadOutput}). When the stored object already holds the same data (same content
 * fingerprint), nothing is written and the receipt is the stored object's, marked `skipped`.
 * @module
 */

import { ConfigError, IntegrityError } from "../errors.ts";
import { sha256Hex } from "../sha256.ts";
import { openObjectStore } from "../store/open.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import {
  readWriteOutput,
  type UploadedFile,
  type UploadOutput,
  writerOf,
} from "../streams/handoff.ts";
import { filesByUser } from "../streams/stream.ts";
import { formatBytes } from "./_format.ts";

/** Media type of the Parquet files. */
export const PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet";

/** Runs the upload step. */
export async function uploadStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log } = ctx;
  const written = await readWriteOutput(run);
  const writer = writerOf(run);
  const hint = writer === "import"
    ? `Redo the import: \`deno task import --run ${run.id} --from import\`.`
    : `Redo write: \`deno task pipeline --run ${run.id} --from write\`.`;
  // Every file is checked before anything is put: a changed file stops the step up front.
  const data: Uint8Array[] = [];
  for (const file of written.files) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(run.path(file.file));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new ConfigError(`Run ${run.id}: ${run.path(file.file)} is missing`, { hint });
    }
    const sha256 = await sha256Hex(bytes);
    if (sha256 !== file.sha256) {
      throw new IntegrityError(
        `Run ${run.id}: ${
          run.path(file.file)
        } changed since write (sha256 ${sha256}, write.json says ${file.sha256})`,
        { hint },
      );
    }
    data.push(bytes);
  }

  const files: UploadedFile[] = [];
  if (written.files.length) {
    const store = await openObjectStore(config, { log });
    try {
      for (const [i, file] of written.files.entries()) {
        const receipt = await store.put(file.key, data[i]!, {
          sha256: file.sha256,
          contentSha256: file.content_sha256,
          contentType: PARQUET_CONTENT_TYPE,
        });
        files.push({
          ...receipt,
          stream: file.stream,
          ...(file.cursor ? { cursor: file.cursor } : {}),
        });
        log.info(
          receipt.skipped
            ? `Upload: ${receipt.uri} already holds the same data — nothing uploaded`
            : `Upload: ${formatBytes(receipt.bytes)} → ${receipt.uri}`,
          { skipped: receipt.skipped, sha256: receipt.sha256 },
        );
      }
    } finally {
      await store.close();
    }
  }
  const output: UploadOutput = { run_id: run.id, files };
  const rel = await run.writeJson("upload", "receipt.json", output);

  const uploaded = files.filter((f) => !f.skipped);
  const text = files.length === 0
    ? "Upload: nothing to upload"
    : files.length === 1
    ? (files[0]!.skipped
      ? `Upload: ${files[0]!.uri} already holds the same data — nothing uploaded`
      : `Upload: ${formatBytes(files[0]!.bytes)} → ${files[0]!.uri}`)
    : `Upload: ${uploaded.length} file(s), ${
      formatBytes(uploaded.reduce((n, f) => n + f.bytes, 0))
    } → ${config.store.kind === "s3" ? "S3" : config.store.dir}; ${
      files.length - uploaded.length
    } already held the same data`;
  return {
    counts: {
      files_uploaded: uploaded.length,
      files_skipped: files.length - uploaded.length,
      bytes_uploaded: uploaded.reduce((n, f) => n + f.bytes, 0),
    },
    summary: {
      text,
      files: files.map((f) => ({ uri: f.uri, skipped: f.skipped, sha256: f.sha256 })),
    },
    outputs: [rel],
    users: filesByUser(files.map((f) => f.key)),
  };
}
