/**
 * The upload step: reads `write/write.json`, puts the Parquet file into the object store (the lake
 * folder locally, S3 in prod) under its key, and writes the receipt `upload/receipt.json`
 * (`PutReceipt`). When the stored object already holds the same data (same content fingerprint),
 * nothing is written and the receipt is the stored object's, marked `skipped`.
 * @module
 */

import { ConfigError } from "../errors.ts";
import { sha256Hex } from "../fs_atomic.ts";
import type { PutReceipt } from "../store/object_store.ts";
import { openObjectStore } from "../store/open.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import { formatBytes } from "./_format.ts";
import type { WriteOutput } from "./write.ts";

/** Media type of the Parquet files. */
export const PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet";

/** Runs the upload step. */
export async function uploadStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log } = ctx;
  const written = await run.readJson<WriteOutput>("write", "write.json");
  const metaPath = run.path("write", "write.json");
  for (const field of ["key", "file", "sha256", "content_sha256"] as const) {
    if (typeof written?.[field] !== "string" || !written[field]) {
      throw new ConfigError(`Run ${run.id}: ${metaPath} has no "${field}"`, {
        hint: `Redo write: \`deno task pipeline --run ${run.id} --from write\`.`,
      });
    }
  }
  let data: Uint8Array;
  try {
    data = await Deno.readFile(run.path(written.file));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new ConfigError(`Run ${run.id}: ${run.path(written.file)} is missing`, {
      hint: `Redo write: \`deno task pipeline --run ${run.id} --from write\`.`,
    });
  }
  const sha256 = await sha256Hex(data);
  if (sha256 !== written.sha256) {
    throw new ConfigError(
      `Run ${run.id}: ${
        run.path(written.file)
      } changed since write (sha256 ${sha256}, write.json says ${written.sha256})`,
      { hint: `Redo write: \`deno task pipeline --run ${run.id} --from write\`.` },
    );
  }

  const store = await openObjectStore(config, { log });
  let receipt: PutReceipt;
  try {
    receipt = await store.put(written.key, data, {
      sha256,
      contentSha256: written.content_sha256,
      contentType: PARQUET_CONTENT_TYPE,
    });
  } finally {
    await store.close();
  }
  const rel = await run.writeJson("upload", "receipt.json", receipt);
  const text = receipt.skipped
    ? `Upload: ${receipt.uri} already holds the same data — nothing uploaded`
    : `Upload: ${formatBytes(receipt.bytes)} → ${receipt.uri}`;
  log.info(text, { skipped: receipt.skipped, sha256: receipt.sha256 });
  return {
    counts: {
      files_uploaded: receipt.skipped ? 0 : 1,
      files_skipped: receipt.skipped ? 1 : 0,
      bytes_uploaded: receipt.skipped ? 0 : receipt.bytes,
    },
    summary: { text, uri: receipt.uri, skipped: receipt.skipped, sha256: receipt.sha256 },
    outputs: [rel],
  };
}
