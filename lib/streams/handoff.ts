/**
 * The files the steps hand each other, typed and validated when read: a damaged or tampered file
 * is a clear error naming it and the way out, never `JSON.parse(...) as T`.
 *
 * - `fetch/<stream file>` and `enrich/<stream file>`: {@link StreamRows}, every row checked
 *   against the stream's columns (fetch's without the audio features enrich adds);
 * - `write/write.json`: {@link WriteOutput}, the Parquet files of every stream;
 * - `upload/receipt.json`: {@link UploadOutput}, one put receipt per file.
 * @module
 */

import { ConfigError } from "../errors.ts";
import { isRecord } from "../json.ts";
import { checkValue } from "../parquet/rows.ts";
import type { Run, StepName } from "../run.ts";
import type { PutReceipt } from "../store/object_store.ts";
import { FEATURE_SPEC_NAMES } from "./_shared_columns.ts";
import type { ColumnSpec } from "./columns.ts";
import { STREAM_NAMES, type StreamName } from "./names.ts";
import type { Row, StreamDef } from "./stream.ts";

/** One stream's rows as fetch and enrich write them. */
export interface StreamRows {
  stream: StreamName;
  run_id: string;
  snapshot_date: string;
  /** `api` or `sample`. */
  source: "api" | "sample";
  /** The users the rows belong to (every row names its own `user_id`). */
  users: string[];
  /** Users for whom the stream was stopped this run (missing scope, quota), and why. */
  skipped?: Record<string, string>;
  rows: Row[];
}

/** One Parquet file written by the write step. */
export interface WrittenFile {
  stream: StreamName;
  /** Lake key, e.g. `top_tracks/snapshot_date=YYYY-MM-DD/top_tracks.parquet`. */
  key: string;
  /** The file, relative to the run folder (`write/<key>`). */
  file: string;
  rows: number;
  bytes: number;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** Fingerprint of the rows without run metadata (same data → same value). */
  content_sha256: string;
  /** Newest value of the stream's cursor column in the file, and whose (cursor streams). */
  cursor?: FileCursor;
}

/** The newest cursor value of a file's rows, and the user they belong to. */
export interface FileCursor {
  user_id: string;
  value: string;
}

/** What write hands to upload: `write/write.json`. */
export interface WriteOutput {
  run_id: string;
  snapshot_date: string;
  files: WrittenFile[];
}

/** The hand-off record of a Parquet file the writer just wrote (`file` relative to the run). */
export function writtenFile(
  stream: StreamDef,
  key: string,
  file: string,
  result: { rows: number; bytes: number; sha256: string; contentSha256: string },
): WrittenFile {
  return {
    stream: stream.name,
    key,
    file,
    rows: result.rows,
    bytes: result.bytes,
    sha256: result.sha256,
    content_sha256: result.contentSha256,
  };
}

/** One uploaded file: the store's receipt plus the stream and cursor it carries. */
export type UploadedFile = PutReceipt & { stream: StreamName; cursor?: FileCursor };

/** What upload hands to load: `upload/receipt.json`. */
export interface UploadOutput {
  run_id: string;
  files: UploadedFile[];
}

const featureColumns = new Set(FEATURE_SPEC_NAMES);

/** The columns a step's rows carry: fetch's lack the audio features enrich adds. */
export function columnsAt(stream: StreamDef, step: "fetch" | "enrich"): readonly ColumnSpec[] {
  return step === "fetch" && stream.features
    ? stream.columns.filter((c) => !featureColumns.has(c.name))
    : stream.columns;
}

function redo(run: Run, step: StepName): string {
  const task = run.schedule === "import" ? "import" : "pipeline";
  return `Redo ${step}: \`deno task ${task} --run ${run.id} --from ${step}\`.`;
}

function validCursor(v: unknown): v is FileCursor {
  return isRecord(v) && typeof v.user_id === "string" && v.user_id !== "" &&
    typeof v.value === "string" && !Number.isNaN(Date.parse(v.value));
}

/** Writes a stream's rows (`fetch/` or `enrich/`) and returns the path relative to the run. */
export function writeStreamRows(
  run: Run,
  step: "fetch" | "enrich",
  stream: StreamDef,
  value: StreamRows,
): Promise<string> {
  return run.writeJson(step, stream.files.rows, value);
}

/**
 * Reads and checks a stream's rows written by `step`.
 * @throws {ConfigError} naming the file, the row and the column that does not fit.
 */
export async function readStreamRows(
  run: Run,
  step: "fetch" | "enrich",
  stream: StreamDef,
): Promise<StreamRows> {
  const value = await run.readJson(step, stream.files.rows);
  const file = run.path(step, stream.files.rows);
  const bad = (what: string) =>
    new ConfigError(`Run ${run.id}: ${file} is not a ${step} output of ${stream.name}: ${what}`, {
      hint: redo(run, step),
    });
  if (!isRecord(value)) throw bad("expected a JSON object");
  if (value.stream !== stream.name) {
    throw bad(`"stream" is ${JSON.stringify(value.stream)}, expected "${stream.name}"`);
  }
  for (const field of ["run_id", "snapshot_date"] as const) {
    if (typeof value[field] !== "string" || value[field] === "") throw bad(`no "${field}"`);
  }
  // a run folder from before household accounts names its one user
  if (value.users === undefined && typeof value.user_id === "string" && value.user_id !== "") {
    const user = value.user_id;
    value.users = [user];
    delete value.user_id;
    if (typeof value.skipped === "string") value.skipped = { [user]: value.skipped };
  }
  if (
    !Array.isArray(value.users) ||
    !value.users.every((u: unknown) => typeof u === "string" && u !== "")
  ) {
    throw bad(`no "users" list`);
  }
  if (value.source !== "api" && value.source !== "sample") {
    throw bad(`"source" is not api or sample`);
  }
  if (
    value.skipped !== undefined &&
    (!isRecord(value.skipped) || !Object.values(value.skipped).every((v) => typeof v === "string"))
  ) {
    throw bad(`"skipped" is not {user id: why}`);
  }
  if (!Array.isArray(value.rows)) throw bad(`no "rows" list`);
  const columns = columnsAt(stream, step);
  value.rows.forEach((row: unknown, i: number) => {
    if (!isRecord(row)) throw bad(`row ${i + 1} is not an object`);
    for (const column of columns) {
      try {
        checkValue(row, i, column);
      } catch (error) {
        throw bad((error as Error).message);
      }
    }
  });
  return value as unknown as StreamRows;
}

/** The step that writes a run's Parquet files: `write`, or `import` in an import run. */
export function writerOf(run: Run): "write" | "import" {
  return run.plannedSteps.includes("import") ? "import" : "write";
}

/**
 * Reads and checks `write/write.json` (`import/write.json` in an import run).
 * @throws {ConfigError} naming the file and the field.
 */
export async function readWriteOutput(run: Run): Promise<WriteOutput> {
  return await readFileList(run, writerOf(run), "write.json", {
    strings: ["key", "file", "sha256", "content_sha256"],
    counts: ["rows", "bytes"],
  }) as unknown as WriteOutput;
}

/**
 * Reads and checks `upload/receipt.json`.
 * @throws {ConfigError} naming the file and the field.
 */
export async function readUploadOutput(run: Run): Promise<UploadOutput> {
  return await readFileList(run, "upload", "receipt.json", {
    strings: ["uri", "key", "sha256"],
    counts: ["bytes"],
  }) as unknown as UploadOutput;
}

/**
 * A hand-off of the form `{files: [...]}` where every file names a known stream, has the given
 * non-empty string fields and whole non-negative counts, and an optional valid cursor.
 */
async function readFileList(
  run: Run,
  step: StepName,
  name: string,
  fields: { strings: readonly string[]; counts: readonly string[] },
): Promise<Record<string, unknown>> {
  const value = await run.readJson(step, name);
  const bad = (what: string) =>
    new ConfigError(`Run ${run.id}: ${run.path(step, name)} ${what}`, { hint: redo(run, step) });
  if (!isRecord(value) || !Array.isArray(value.files)) throw bad(`has no "files" list`);
  value.files.forEach((f: unknown, i: number) => {
    if (!isRecord(f)) throw bad(`files[${i}] is not an object`);
    if (!(STREAM_NAMES as readonly unknown[]).includes(f.stream)) {
      throw bad(`files[${i}] has no known "stream"`);
    }
    for (const field of fields.strings) {
      if (typeof f[field] !== "string" || !f[field]) throw bad(`files[${i}] has no "${field}"`);
    }
    for (const field of fields.counts) {
      if (!Number.isInteger(f[field]) || (f[field] as number) < 0) {
        throw bad(`files[${i}] has no "${field}" count`);
      }
    }
    if (f.cursor !== undefined && !validCursor(f.cursor)) {
      throw bad(`files[${i}] "cursor" is not {user_id, value (ISO-8601)}`);
    }
  });
  return value;
}
