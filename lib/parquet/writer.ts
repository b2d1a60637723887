/**
 * Writes a stream's rows as Parquet with npm:apache-arrow and npm:parquet-wasm.
 *
 * Rows are converted to Arrow record batches of {@link ParquetWriteOptions.batchRows} rows at a
 * time, into typed arrays reused from batch to batch, and streamed through parquet-wasm's
 * `transformParquetStream`, which encodes row groups of {@link ParquetWriteOptions.rowGroupRows}
 * rows; the Arrow data of the whole input is never held at once, so a multi-year backfill writes
 * the same way as a day. parquet-wasm's wasm memory grows to hold the row group being encoded
 * and the encoded output not yet read (measured: 58 MB at 100k rows, 155 MB at 1M rows with the
 * defaults; smaller row groups lower it). The file is zstd-compressed and carries the content
 * fingerprint in its key-value metadata (`content_sha256`). The same rows always give the same
 * bytes.
 *
 * parquet-wasm's default entry (its `node` build under Deno) loads its wasm synchronously from
 * the package folder on import (`fs.readFileSync` beside the module): no init call and no fetch,
 * so it works under `deno run` with read permission and from the npm files `deno compile` embeds.
 * @module
 */

import { createHash } from "node:crypto";
import { makeData, RecordBatch, type Schema, Struct, Table, tableToIPC } from "apache-arrow";
import {
  Compression,
  type RecordBatch as WasmRecordBatch,
  Table as WasmTable,
  transformParquetStream,
  WriterPropertiesBuilder,
} from "parquet-wasm";
import { writeChunksAtomic } from "../fs_atomic.ts";
import type { Row, StreamDef } from "../streams/stream.ts";
import { TOP_TRACKS } from "../streams/top_tracks.ts";
import { ColumnEncoder } from "./_columns.ts";
import { canonicalOrder, contentSha256 } from "./rows.ts";
import { CONTENT_SHA256_KEY, streamSchema } from "./schema.ts";

/** Options of the Parquet writers. */
export interface ParquetWriteOptions {
  /** Rows converted to Arrow at a time (bounds memory; default 65 536). */
  batchRows?: number;
  /** Most rows per Parquet row group (default 131 072). */
  rowGroupRows?: number;
  /** Compression codec (default zstd). */
  compression?: "zstd" | "snappy";
}

/** What was written. */
export interface ParquetWriteResult {
  rows: number;
  bytes: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** Fingerprint of the rows without run metadata (also in the file's metadata). */
  contentSha256: string;
}

/** A Parquet file being produced: its fingerprint is known up front, bytes come as a stream. */
export interface ParquetStream {
  rows: number;
  contentSha256: string;
  /** The file's bytes, one row group at a time. */
  stream: ReadableStream<Uint8Array>;
}

/**
 * Starts encoding rows as a Parquet file of `stream`, in canonical order (by the stream's natural
 * key). Every value is checked first.
 * @throws {TypeError} when a row does not fit the schema (naming the row and column).
 */
export async function parquetStream(
  def: StreamDef,
  input: readonly object[],
  options: ParquetWriteOptions = {},
): Promise<ParquetStream> {
  const rows = input as readonly Row[];
  const {
    batchRows = 65_536,
    rowGroupRows = 131_072,
    compression = "zstd",
  } = options;
  if (!Number.isInteger(batchRows) || batchRows < 1) {
    throw new RangeError(`batchRows must be a positive integer, got ${batchRows}`);
  }
  const order = canonicalOrder(def, rows);
  const fingerprint = contentSha256(def, rows, order);
  const schema = streamSchema(def);
  const capacity = Math.max(1, Math.min(batchRows, rows.length));
  const encoders = def.columns.map((column) => new ColumnEncoder(column, capacity));

  // An empty input still yields one (empty) batch: the file then has the schema and no rows.
  let next = 0;
  let started = false;
  const batches = new ReadableStream<WasmRecordBatch>({
    pull(controller) {
      if (started && next >= order.length) {
        controller.close();
        return;
      }
      started = true;
      const end = Math.min(next + batchRows, order.length);
      controller.enqueue(toWasmBatch(schema, encoders, rows, order.slice(next, end)));
      next = end;
    },
  });
  const properties = new WriterPropertiesBuilder()
    .setCompression(compression === "zstd" ? Compression.ZSTD : Compression.SNAPPY)
    .setMaxRowGroupSize(rowGroupRows)
    // One key only: parquet-wasm keeps key-value metadata in a hash map, so with several keys
    // their order (and the file's bytes) would change from one write to the next.
    .setKeyValueMetadata(new Map([[CONTENT_SHA256_KEY, fingerprint]]))
    .build();
  const stream = await transformParquetStream(batches, properties) as ReadableStream<Uint8Array>;
  return { rows: rows.length, contentSha256: fingerprint, stream };
}

/**
 * Encodes rows as a Parquet file of `stream` in memory (no filesystem: usable on Deno Deploy).
 * @example
 * const { data, sha256, contentSha256 } = await encodeParquet(TOP_TRACKS, enriched.rows);
 */
export async function encodeParquet(
  def: StreamDef,
  rows: readonly object[],
  options: ParquetWriteOptions = {},
): Promise<ParquetWriteResult & { data: Uint8Array }> {
  const { stream, contentSha256 } = await parquetStream(def, rows, options);
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const hash = createHash("sha256");
  for await (const chunk of stream) {
    chunks.push(chunk);
    hash.update(chunk);
    bytes += chunk.length;
  }
  const data = new Uint8Array(bytes);
  let offset = 0;
  for (const chunk of chunks) {
    data.set(chunk, offset);
    offset += chunk.length;
  }
  return { data, rows: rows.length, bytes, sha256: hash.digest("hex"), contentSha256 };
}

/** {@link encodeParquet} for `top_tracks` rows. */
export function encodeTopTracksParquet(
  rows: readonly object[],
  options: ParquetWriteOptions = {},
): Promise<ParquetWriteResult & { data: Uint8Array }> {
  return encodeParquet(TOP_TRACKS, rows, options);
}

/**
 * Writes rows as a Parquet file of `stream` at `path`, streaming row groups to a temporary file
 * that is renamed into place when complete (a reader never sees half a file).
 */
export async function writeParquetFile(
  def: StreamDef,
  path: string,
  rows: readonly object[],
  options: ParquetWriteOptions = {},
): Promise<ParquetWriteResult> {
  const { stream, contentSha256 } = await parquetStream(def, rows, options);
  const hash = createHash("sha256");
  let bytes = 0;
  await writeChunksAtomic(
    path,
    (async function* () {
      for await (const chunk of stream) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    })(),
  );
  return { rows: rows.length, bytes, sha256: hash.digest("hex"), contentSha256 };
}

/** {@link writeParquetFile} for `top_tracks` rows. */
export function writeTopTracksParquetFile(
  path: string,
  rows: readonly object[],
  options: ParquetWriteOptions = {},
): Promise<ParquetWriteResult> {
  return writeParquetFile(TOP_TRACKS, path, rows, options);
}

/**
 * Converts the rows at `indexes` into one Arrow record batch, then copies it into wasm memory
 * (through Arrow IPC), after which the encoders' buffers can be reused.
 */
function toWasmBatch(
  schema: Schema,
  encoders: readonly ColumnEncoder[],
  rows: readonly Row[],
  indexes: readonly number[],
): WasmRecordBatch {
  const children = encoders.map((encoder) => encoder.encode(rows, indexes));
  const data = makeData({
    type: new Struct(schema.fields),
    length: indexes.length,
    nullCount: 0,
    children,
  });
  const ipc = tableToIPC(new Table([new RecordBatch(schema, data)]), "stream");
  const table = WasmTable.fromIPCStream(ipc);
  try {
    const batch = table.recordBatch(0);
    if (!batch) throw new Error("parquet-wasm: the Arrow IPC stream held no record batch");
    return batch;
  } finally {
    table.free();
  }
}
