/**
 * Reads an audio-features CSV catalog (the seed project's "fallback CSV") as a stream, keeping
 * only the rows that answer the query (wanted track ids, wanted (title, primary artist) pairs)
 * plus counters, so a 1.2M-row catalog is never held in memory as JS objects.
 *
 * Accepts the files people really have (see `../shared/fixtures/audio_features`): the Kaggle
 * "Spotify Tracks Dataset" columns and common variants (`track_id`/`id`/`uri`/`track id`,
 * `track_name`/`name`/`track name`, `artists`/`track_artist`/`artist_name`/`artists names`);
 * ids as bare ids, `spotify:track:` URIs or `open.spotify.com/track/` URLs; artists as `A;B`,
 * `A, B` or Python-list strings `['A', "B"]`; a byte-order mark, CRLF, quoted newlines, an
 * unnamed index column and Excel's values (`FALSE`, `1.01E-06`).
 *
 * Rows with out-of-range values are rejected and counted; a repeated id keeps its first valid
 * row and is counted.
 *
 * Two readers, same results. The byte reader (`_csv_records.ts`, `_catalog_segment.ts`) finds
 * record and field boundaries in the raw bytes, reads the feature numbers and hashes the id
 * straight from them, and decodes a row to strings only when its id or primary artist may be
 * wanted; a large file is read in two segments at once, the second in a worker, when workers are
 * available. A file the byte reader cannot read exactly as csv-parse would (a lone-CR delimiter,
 * text after a closing quote, an unclosed quote, a record over 1 MiB, UTF-16) is read again from
 * the start with npm:csv-parse (`_csv_text.ts`).
 * @module
 */

import { ConfigError } from "../errors.ts";
import { CatalogMatcher, type NameQuery } from "./_catalog_rows.ts";
import {
  mergeSegments,
  type RowTable,
  scanSegment,
  type SegmentJob,
  type SegmentResult,
} from "./_catalog_segment.ts";
import { BLOCK_BYTES, RecordReader, recordTexts, Unsupported } from "./_csv_records.ts";
import type { ColumnMap, FeatureScale } from "./column_map.ts";
import type { CatalogStats, FeaturesHit } from "./provider.ts";

export {
  type CatalogColumns,
  COLUMN_ALIASES,
  headerKey,
  type NameQuery,
  parseArtists,
} from "./_catalog_rows.ts";
export type { RowTable } from "./_catalog_segment.ts";

/** Options of {@link scanCatalog}. */
export interface ScanCatalogOptions {
  /** Track ids wanted. */
  ids?: Iterable<string>;
  /** (title, primary artist) pairs wanted by name. */
  names?: Iterable<NameQuery>;
  signal?: AbortSignal;
  /** Rejected-row examples kept in the stats (default 5). */
  maxExamples?: number;
  /** `csv-parse`: read with csv-parse even when the byte reader could (tests compare them). */
  reader?: "auto" | "csv-parse";
  /**
   * Segments read at once (default: 2 for files of 32 MiB or more when workers are available,
   * else 1). Tests set 2 to exercise the merge on small files.
   */
  segments?: 1 | 2;
  /** `AUDIO_FEATURES_CSV_COLUMNS` (config `features.csvColumns`). */
  columnMap?: ColumnMap;
  /** The features' scales, when already known (an index's); default: decided from the head. */
  scales?: readonly FeatureScale[];
}

/** What {@link scanCatalog} found. */
export interface CatalogScan {
  stats: CatalogStats;
  /** Wanted id → the first valid row with that id. */
  byId: Map<string, FeaturesHit>;
  /**
   * Name key (see `nameKeys()` in normalize.ts: `f:` full title, `b:` base title) → the first
   * valid row with that key. Look up the full key first, then the base key.
   */
  byName: Map<string, FeaturesHit>;
  /** Which reader read the file. */
  reader: "bytes" | "csv-parse";
  /** Why the byte reader gave the file to csv-parse, when it did. */
  fallback?: string;
  /** Segments the byte reader read at once (2: the second in a worker). */
  segments?: number;
}

/**
 * Streams one catalog CSV and returns the rows matching the wanted ids and names, with counts.
 * @throws ConfigError when the file is missing, is not a CSV with the needed columns (naming the
 *   file, the columns needed and the columns found), or is malformed (naming the line)
 * @example
 * const { byId, stats } = await scanCatalog("data/audio_features_sample.csv", {
 *   ids: ["2IVsRhKrx8hlQBOWy4qebo"],
 * });
 */
export async function scanCatalog(
  path: string,
  options: ScanCatalogOptions = {},
): Promise<CatalogScan> {
  return (await scanCatalogTable(path, options)).scan;
}

/** Options of {@link scanCatalogTable}. */
export interface ScanTableOptions extends ScanCatalogOptions {
  /** Also return the table of accepted rows an index is built from. */
  table?: boolean;
  /** Also return the content hash (see `catalog_index.ts`). */
  hash?: boolean;
}

/** What {@link scanCatalogTable} returns. */
export interface TableScan {
  scan: CatalogScan;
  /** Accepted rows (asked for, and the byte reader read the file). */
  table?: RowTable;
  /** SHA-256 over the SHA-256 of each 4 MiB block (asked for, byte reader). */
  contentSha256?: string;
}

/**
 * {@link scanCatalog}, also returning what an index of the catalog is built from.
 * @internal for `catalog_index.ts`
 */
export async function scanCatalogTable(
  path: string,
  options: ScanTableOptions = {},
): Promise<TableScan> {
  const size = await checkFile(path);
  // how the columns the header does not explain are read, from the values at its head
  const scales = options.scales ??
    await (await import("./_catalog_layout.ts")).inferScales(path, options.columnMap);
  options = { ...options, ...(scales ? { scales } : {}) };
  let fallback: string | undefined;
  if (options.reader !== "csv-parse") {
    try {
      return await scanBytes(path, size, options);
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error;
      fallback = error.message;
    }
  }
  const { scanText } = await import("./_csv_text.ts");
  const m = new CatalogMatcher(path, options);
  await scanText(m, options);
  if (m.header === null) throw emptyFile(path);
  return {
    scan: {
      stats: m.stats,
      byId: m.byId,
      byName: m.byName,
      reader: "csv-parse",
      ...(fallback === undefined ? {} : { fallback }),
    },
  };
}

/** Files from this size are read in two segments at once (when workers are available). */
const PARALLEL_MIN_BYTES = 32 << 20;

async function scanBytes(
  path: string,
  size: number,
  options: ScanTableOptions,
): Promise<TableScan> {
  const { signal, table = false, hash = false } = options;
  const job: SegmentJob = {
    path,
    start: 0,
    first: 0,
    end: null,
    header: null,
    crlf: null,
    ids: [...options.ids ?? []],
    names: [...options.names ?? []],
    maxExamples: options.maxExamples ?? 5,
    table,
    hash,
    size,
    columnMap: options.columnMap ?? {},
    ...(options.scales ? { scales: [...options.scales] } : {}),
  };
  const segments = options.segments ??
    (size >= PARALLEL_MIN_BYTES && typeof Worker === "function" &&
        (navigator.hardwareConcurrency ?? 1) >= 2
      ? 2
      : 1);
  const second = segments === 2 ? await splitJob(job, size, hash) : null;
  let results: SegmentResult[];
  if (second === null) {
    signal?.throwIfAborted();
    results = [await scanSegment(job)];
  } else {
    const worker = startWorker(second, signal);
    try {
      const first = await scanSegment({ ...job, end: second.first });
      if (first.crossed) {
        // The second segment did not start at a record (a quoted line break): the first
        // segment read on to the end by itself.
        results = [first];
      } else {
        let rest: SegmentResult;
        try {
          rest = await worker.result;
        } catch (error) {
          if (!(error instanceof WorkerUnavailable)) throw error;
          rest = await scanSegment(second);
        }
        results = [first, rest];
      }
    } finally {
      worker.stop();
    }
  }
  if (results[0]!.header.length === 0) throw emptyFile(path);
  const m = new CatalogMatcher(path, job);
  const merged = mergeSegments(m, results, { table, hash });
  return {
    scan: {
      stats: m.stats,
      byId: m.byId,
      byName: m.byName,
      reader: "bytes",
      segments: results.length,
    },
    ...merged,
  };
}

/**
 * The second segment's job: from the middle of the file (a block boundary when hashing), its
 * first record taken to start after the first line feed there. Whether it really does (the line
 * feed is not inside quotes) is known when the first segment gets there. `null` when the file
 * cannot be split.
 */
async function splitJob(job: SegmentJob, size: number, hash: boolean): Promise<SegmentJob | null> {
  const file = await Deno.open(job.path, { read: true });
  try {
    let header: string[] = [];
    const reader = new RecordReader();
    const head = await reader.readFile(file, {
      maxRecords: 1,
      onRecord: (v) => header = recordTexts(v),
    });
    if (header.length === 0) return null;
    const half = Math.floor(size / 2);
    const start = hash ? Math.floor(half / BLOCK_BYTES) * BLOCK_BYTES : half;
    if (start <= 0 || start >= size) return null;
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(1 << 20);
    const n = await file.read(buf) ?? 0;
    const lf = buf.subarray(0, n).indexOf(10);
    if (lf < 0) return null;
    const first = start + lf + 1;
    if (first < head.stoppedAt || first >= size) return null;
    return { ...job, start, first, header, crlf: reader.crlf };
  } finally {
    file.close();
  }
}

/** The worker could not be started or loaded (e.g. not embedded in a compiled binary). */
class WorkerUnavailable extends Error {
  override name = "WorkerUnavailable";
}

/** Runs a segment in a worker; `stop()` ends it (always call it). */
function startWorker(
  job: SegmentJob,
  signal?: AbortSignal,
): { result: Promise<SegmentResult>; stop(): void } {
  let worker: Worker;
  try {
    worker = new Worker(new URL("./_scan_worker.ts", import.meta.url).href, { type: "module" });
  } catch (error) {
    const result = Promise.reject(new WorkerUnavailable(String(error)));
    result.catch(() => {});
    return { result, stop() {} };
  }
  let stopped = false;
  let rejectResult: (reason: unknown) => void = () => {};
  const stop = () => {
    if (stopped) return;
    stopped = true;
    signal?.removeEventListener("abort", onAbort);
    worker.terminate();
  };
  // a terminated worker never answers: an abort must also settle the result, or the caller
  // awaiting it after its own segment would wait forever
  const onAbort = () => {
    stop();
    rejectResult(signal!.reason);
  };
  const result = new Promise<SegmentResult>((resolve, reject) => {
    rejectResult = reject;
    worker.onmessage = (event: MessageEvent) => {
      stop();
      const answer = event.data as
        | { result: SegmentResult }
        | { error: { name: string; message: string } };
      if ("result" in answer) return resolve(answer.result);
      const { name, message } = answer.error;
      reject(
        name === "Unsupported"
          ? new Unsupported(message)
          : name === "ConfigError"
          ? new ConfigError(message)
          : new Error(`${name}: ${message}`),
      );
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      stop();
      reject(new WorkerUnavailable(event.message));
    };
  });
  // Not awaited when the first segment fails or reads to the end itself.
  result.catch(() => {});
  if (signal?.aborted) onAbort();
  else {
    signal?.addEventListener("abort", onAbort);
    worker.postMessage(job);
  }
  return { result, stop };
}

function emptyFile(path: string): ConfigError {
  return new ConfigError(
    `Cannot read audio features from "${path}": the file is empty (no header row)`,
    { hint: "Point AUDIO_FEATURES_CSV at an audio-features CSV (see docs/steps.md, enrich)." },
  );
}

/** Checks that `path` is a readable file (ConfigError otherwise); returns its size. */
async function checkFile(path: string): Promise<number> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(`Cannot read audio features from "${path}": no such file`, {
        hint: "Set AUDIO_FEATURES_CSV to an existing CSV file (several: separate with commas).",
      });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new ConfigError(`Cannot read audio features from "${path}": permission denied`);
    }
    if (error instanceof Deno.errors.FilesystemLoop) {
      throw new ConfigError(
        `Cannot read audio features from "${path}": a loop of symbolic links (it never reaches a file)`,
        { hint: "Point AUDIO_FEATURES_CSV at the CSV file itself." },
      );
    }
    if (error instanceof Deno.errors.NotADirectory) {
      throw new ConfigError(
        `Cannot read audio features from "${path}": a part of the path is a file, not a folder`,
      );
    }
    throw error;
  }
  if (!info.isFile) {
    throw new ConfigError(`Cannot read audio features from "${path}": not a file`);
  }
  return info.size;
}
