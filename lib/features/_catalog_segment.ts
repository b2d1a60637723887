/**
 * The byte reader's scan of a catalog, or of one segment of it (a large file is read in two
 * segments at once, the second in a worker: see `csv_catalog.ts`).
 *
 * A repeated id is only known once every id has been seen, so a segment does not decide rows by
 * itself: it lists every valid row's id fingerprint, keeps the few rows that can answer the query
 * (a wanted id, or a primary artist whose key hash is wanted) and, for an index, every valid
 * row's position. {@link mergeSegments} then marks the repeated ids over all segments in file
 * order (`markRepeats()`) and decides the kept rows in file order — the same
 * first-valid-row-wins result as deciding row by row.
 * @module
 */

import type { ColumnMap, FeatureScale } from "./column_map.ts";
import { createHash } from "node:crypto";
import type { AudioFeatures } from "../types.ts";
import {
  artistHashesOf,
  asciiText,
  type CatalogColumns,
  CatalogMatcher,
  type NameQuery,
  numericFields,
  readFeatures,
} from "./_catalog_rows.ts";
import {
  BLOCK_BYTES,
  fieldEnd,
  fieldStart,
  fieldText,
  RecordReader,
  recordTexts,
  type RecordView,
} from "./_csv_records.ts";
import { fingerprintBareId, fingerprintInto, markRepeats } from "./_id_set.ts";
import { extractTrackId } from "./provider.ts";

/**
 * The rows a scan accepted, in file order, with what an index of the catalog needs: where each
 * row's bytes are, its line, its id's fingerprint and the hashes of its primary-artist keys
 * (`keyHash()`: the first artist, and the whole cell for an ambiguous `A, B`; 0 = none). Kept
 * as the segments' own lists (no copy): a row `r` of a part is accepted unless its id is a
 * repeat (`ord[r] > 0 && repeat[ord[r] - 1] === 1`); its id fingerprint is
 * `idHi[ord[r] - 1]`, `idLo[ord[r] - 1]` (`ord` 0: no id).
 */
export interface RowTable {
  /** The header record (the columns are resolved from it again when the index is read). */
  header: string[];
  columns: CatalogColumns;
  /** Whether records end with `\r\n`. */
  crlf: boolean;
  /** Accepted rows in all. */
  count: number;
  idHi: Uint32Array;
  idLo: Uint32Array;
  repeat: Uint8Array;
  parts: {
    offset: Float64Array;
    length: Uint32Array;
    /** Lines are the part's own: add `lineShift`. */
    line: Uint32Array;
    lineShift: number;
    /** Index in `idHi`/`idLo` + 1 (0: no id). */
    ord: Uint32Array;
    artist1: Uint32Array;
    artist2: Uint32Array;
  }[];
}

/** One segment to scan (structured-cloneable: it is posted to the worker). */
export interface SegmentJob {
  path: string;
  /** File offset the segment reads from (a multiple of the block size). */
  start: number;
  /** Offset of its first record (the header's, for the first segment). */
  first: number;
  /** Stop before the record starting here (see `ReadFileOptions.end`); null: to the end. */
  end: number | null;
  /** The header record, for a segment after the first. */
  header: string[] | null;
  crlf: boolean | null;
  ids: string[];
  names: NameQuery[];
  maxExamples: number;
  /** Keep every valid row's position (to build an index). */
  table: boolean;
  /** SHA-256 every block read (for the content hash). */
  hash: boolean;
  /** File size when the scan started (sizes the lists). */
  size: number;
  /** `AUDIO_FEATURES_CSV_COLUMNS`. */
  columnMap: ColumnMap;
  /** The features' scales (see `MatchOptions.scales`). */
  scales?: FeatureScale[];
}

/** A row that may answer the query, decided once repeated ids are known. */
export interface Candidate {
  /** Index in the segment's id list (-1: no id). */
  ord: number;
  line: number;
  id: string | null;
  idWanted: boolean;
  features: AudioFeatures;
  /** The record's strings, when its primary artist may be wanted. */
  record?: string[];
}

/** What a segment found (structured-cloneable; its arrays are transferred). */
export interface SegmentResult {
  header: string[];
  crlf: boolean;
  /** Where the segment started reading, and the reader state where it stopped. */
  start: number;
  stoppedAt: number;
  crossed: boolean;
  lines: number;
  bytes: number;
  rows: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  examples: [number, string][];
  withoutId: number;
  /** Id fingerprints of the valid rows with an id, in order. */
  idHi: Uint32Array;
  idLo: Uint32Array;
  candidates: Candidate[];
  /** Every valid row's position (`ord` = id list index + 1, 0: no id). */
  table: {
    offset: Float64Array;
    length: Uint32Array;
    line: Uint32Array;
    ord: Uint32Array;
    artist1: Uint32Array;
    artist2: Uint32Array;
  } | null;
  /** SHA-256 of each block read: its offset, length and digest. */
  blocks: { offset: number; length: number; sha256: Uint8Array }[];
}

/** A growable list of 32-bit unsigned integers. */
class U32List {
  data: Uint32Array;
  length = 0;
  constructor(capacity: number) {
    this.data = new Uint32Array(Math.max(16, capacity));
  }
  push(value: number): void {
    if (this.length === this.data.length) {
      const data = new Uint32Array(this.data.length * 2);
      data.set(this.data);
      this.data = data;
    }
    this.data[this.length++] = value;
  }
  take(): Uint32Array {
    return this.data.slice(0, this.length);
  }
}

/** A growable list of doubles. */
class F64List {
  data: Float64Array;
  length = 0;
  constructor(capacity: number) {
    this.data = new Float64Array(Math.max(16, capacity));
  }
  push(value: number): void {
    if (this.length === this.data.length) {
      const data = new Float64Array(this.data.length * 2);
      data.set(this.data);
      this.data = data;
    }
    this.data[this.length++] = value;
  }
  take(): Float64Array {
    return this.data.slice(0, this.length);
  }
}

/** Bytes per row assumed when sizing the lists before the first rows are seen. */
const BYTES_PER_ROW_GUESS = 128;

/** Scans one segment with the byte reader (throws `Unsupported` for CSV it cannot read). */
export async function scanSegment(job: SegmentJob): Promise<SegmentResult> {
  const m = new CatalogMatcher(job.path, {
    ids: job.ids,
    names: job.names,
    maxExamples: job.maxExamples,
    columnMap: job.columnMap,
    scales: job.scales,
  });
  if (job.header) m.setHeader(job.header);
  const stats = m.stats;
  const fp = new Uint32Array(2);
  const hashes = new Uint32Array(2);
  const segmentBytes = (job.end ?? job.size) - job.first;
  let capacity = Math.ceil(segmentBytes / BYTES_PER_ROW_GUESS);
  const idHi = new U32List(capacity);
  const idLo = new U32List(capacity);
  const candidates: Candidate[] = [];
  if (!job.table) capacity = 0;
  const tOffset = new F64List(capacity);
  const tLength = new U32List(capacity);
  const tLine = new U32List(capacity);
  const tOrd = new U32List(capacity);
  const tArtist1 = new U32List(capacity);
  const tArtist2 = new U32List(capacity);
  const blocks: SegmentResult["blocks"] = [];
  let cols: CatalogColumns | null = m.cols;
  let headerCells = job.header?.length ?? 0;
  let names = false;
  let artists = false;
  const reader = new RecordReader(job.crlf === null ? {} : { crlf: job.crlf });
  const setup = (c: CatalogColumns) => {
    cols = c;
    reader.numeric = numericFields(c);
    names = m.matchesNames;
    artists = c.title >= 0 && c.artists >= 0 && (names || job.table);
  };
  if (cols) setup(cols);

  const onRecord = (v: RecordView): void => {
    if (cols === null) {
      m.setHeader(recordTexts(v));
      headerCells = v.count;
      return setup(m.cols!);
    }
    const line = v.line;
    stats.rows++;
    if (v.count < cols.minCells) {
      return m.reject(`row has ${v.count} cells, header has ${headerCells}`, line);
    }
    const reason = readFeatures(m, v);
    if (reason) return m.reject(reason, line);

    const buf = v.buf;
    const idCol = cols.id;
    let id: string | null = null;
    let hasId = false;
    if (idCol >= 0) {
      const s = fieldStart(v, idCol);
      if (
        fieldEnd(v, idCol) - s === 22 && !(v.anyQuoted && v.quoted[idCol] !== 0) &&
        fingerprintBareId(buf, s, fp)
      ) {
        hasId = true;
        if (m.wantedIdHi.has(fp[0]!)) id = asciiText(buf, s, s + 22);
      } else {
        id = extractTrackId(fieldText(v, idCol));
        if (id !== null) {
          hasId = true;
          fingerprintInto(id, fp);
        }
      }
    }
    let ord = -1;
    if (hasId) {
      ord = idHi.length;
      idHi.push(fp[0]!);
      idLo.push(fp[1]!);
    } else stats.without_id++;

    const idWanted = id !== null && m.wantedIds.has(id);
    let record: string[] | undefined;
    if (artists) {
      artistHashesOf(m, v, cols.artists, hashes);
      if (
        names && (m.wantedArtistHashes.has(hashes[0]!) || m.wantedArtistHashes.has(hashes[1]!))
      ) {
        record = recordTexts(v);
        if (hasId) id ??= extractTrackId(record[idCol]);
      }
    }
    if (idWanted || record) {
      candidates.push({ ord, line, id, idWanted, features: m.toFeatures(), record });
    }
    if (job.table) {
      tOffset.push(v.offset);
      tLength.push(v.length);
      tLine.push(line);
      tOrd.push(ord + 1);
      tArtist1.push(hashes[0]!);
      tArtist2.push(hashes[1]!);
    }
  };

  const file = await Deno.open(job.path, { read: true });
  let read;
  try {
    read = await reader.readFile(file, {
      onRecord,
      start: job.start,
      first: job.first,
      end: job.end ?? undefined,
      onBlock: job.hash
        ? (bytes, offset) => {
          const digest = createHash("sha256").update(bytes).digest();
          blocks.push({ offset, length: bytes.length, sha256: new Uint8Array(digest) });
        }
        : undefined,
    });
  } finally {
    file.close();
  }
  return {
    header: m.header ?? [],
    crlf: reader.crlf,
    start: job.start,
    stoppedAt: read.stoppedAt,
    crossed: read.crossed,
    lines: read.lines,
    bytes: read.bytes,
    rows: stats.rows,
    rejected: stats.rejected,
    rejectedByReason: stats.rejected_by_reason,
    examples: m.examples,
    withoutId: stats.without_id,
    idHi: idHi.take(),
    idLo: idLo.take(),
    candidates,
    table: job.table
      ? {
        offset: tOffset.take(),
        length: tLength.take(),
        line: tLine.take(),
        ord: tOrd.take(),
        artist1: tArtist1.take(),
        artist2: tArtist2.take(),
      }
      : null,
    blocks,
  };
}

/** The typed arrays of a result, to transfer them to another thread. */
export function transferables(result: SegmentResult): ArrayBuffer[] {
  const out = [result.idHi.buffer, result.idLo.buffer];
  if (result.table) {
    const t = result.table;
    out.push(t.offset.buffer, t.length.buffer, t.line.buffer, t.ord.buffer);
    out.push(t.artist1.buffer, t.artist2.buffer);
  }
  return out as ArrayBuffer[];
}

/** What {@link mergeSegments} returns besides filling the matcher. */
export interface Merged {
  table?: RowTable;
  /** SHA-256 over the blocks' SHA-256 digests in file order (when hashed). */
  contentSha256?: string;
}

/**
 * Combines the segments' results (in file order) into `m`: the counts, the rejected-row
 * examples (lines shifted to whole-file numbers), the repeated ids, the hits by id and name, and
 * the table of accepted rows.
 */
export function mergeSegments(
  m: CatalogMatcher,
  segments: readonly SegmentResult[],
  options: { table: boolean; hash: boolean },
): Merged {
  const stats = m.stats;
  const first = segments[0]!;
  m.setHeader(first.header);
  let ids = 0;
  for (const s of segments) ids += s.idHi.length;
  const hi = new Uint32Array(ids);
  const lo = new Uint32Array(ids);
  let lineShift = 0;
  let idBase = 0;
  const idBases: number[] = [];
  const lineShifts: number[] = [];
  for (const s of segments) {
    stats.rows += s.rows;
    stats.rejected += s.rejected;
    stats.without_id += s.withoutId;
    stats.bytes = Math.max(stats.bytes, s.start + s.bytes);
    for (const [reason, n] of Object.entries(s.rejectedByReason)) {
      stats.rejected_by_reason[reason] = (stats.rejected_by_reason[reason] ?? 0) + n;
    }
    for (const [line, reason] of s.examples) {
      if (m.examples.length < m.maxExamples) m.examples.push([line + lineShift, reason]);
    }
    hi.set(s.idHi, idBase);
    lo.set(s.idLo, idBase);
    idBases.push(idBase);
    lineShifts.push(lineShift);
    idBase += s.idHi.length;
    lineShift += s.lines - 1;
  }
  m.finishStats();
  const repeat = markRepeats(hi, lo, ids);
  let repeats = 0;
  for (let i = 0; i < ids; i++) repeats += repeat[i]!;
  stats.duplicate_ids = repeats;
  stats.accepted = ids - repeats + stats.without_id;

  segments.forEach((s, k) => {
    for (const c of s.candidates) {
      if (c.ord >= 0 && repeat[idBases[k]! + c.ord] === 1) continue;
      if (c.idWanted && !m.byId.has(c.id!)) m.byId.set(c.id!, { features: c.features });
      if (c.record) m.matchNames(c.record, c.line + lineShifts[k]!, c.id, c.features);
    }
  });

  const merged: Merged = {};
  if (options.hash) {
    const blocks = new Map<number, { length: number; sha256: Uint8Array }>();
    for (const s of segments) for (const b of s.blocks) blocks.set(b.offset, b);
    const all = createHash("sha256");
    for (let offset = 0; offset < stats.bytes;) {
      const b = blocks.get(offset);
      if (!b) throw new Error(`content hash: no block at offset ${offset}`);
      all.update(b.sha256);
      offset += b.length;
    }
    merged.contentSha256 = all.digest("hex");
  }
  if (!options.table) return merged;

  merged.table = {
    header: m.header!,
    columns: m.cols!,
    crlf: first.crlf,
    count: stats.accepted,
    idHi: hi,
    idLo: lo,
    repeat,
    parts: segments.map((s, k) => {
      const t = s.table!;
      // Segment-local id indexes → indexes in the whole list.
      const base = idBases[k]!;
      if (base > 0) { for (let r = 0; r < t.ord.length; r++) if (t.ord[r]! > 0) t.ord[r]! += base; }
      return { ...t, lineShift: lineShifts[k]! };
    }),
  };
  return merged;
}

/**
 * The content hash {@link mergeSegments} computes, from the file itself: SHA-256 over the
 * SHA-256 of each 4 MiB block (the last one shorter), in order.
 */
export async function contentSha256Of(path: string, signal?: AbortSignal): Promise<string> {
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(BLOCK_BYTES);
    const all = createHash("sha256");
    for (;;) {
      signal?.throwIfAborted();
      let n = 0;
      while (n < BLOCK_BYTES) {
        const got = await file.read(buf.subarray(n));
        if (got === null) break;
        n += got;
      }
      if (n > 0) all.update(createHash("sha256").update(buf.subarray(0, n)).digest());
      if (n < BLOCK_BYTES) return all.digest("hex");
    }
  } finally {
    file.close();
  }
}
