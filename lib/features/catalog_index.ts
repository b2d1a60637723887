/**
 * An on-disk index of an audio-features catalog, so that a catalog unchanged since the last run
 * is not parsed again: a lookup of 50 tracks reads the index's few entries for them and the
 * catalog rows they point at, instead of the whole file.
 *
 * **The index** (`<cacheDir>/catalog-<sha256(path)[:16]>.idx`, written atomically) keeps no
 * feature values: the catalog itself is the data. It holds the first scan's counts (rows,
 * duplicates, rejections, examples), the header, and two hash tables of accepted rows — by id
 * fingerprint, and by primary-artist key hash — each entry giving the row's byte offset and
 * length (and line). A lookup reads a row back from the catalog and runs the same row logic on
 * it, so every answer is what a scan would give (the id itself is compared, not just its hash).
 *
 * **When the catalog counts as unchanged.** The index is keyed by the file's identity — absolute
 * path, size, modification and status-change times, inode and device — and by its content: a
 * SHA-256 over the SHA-256 of each 4 MiB block, computed during the first scan. Identity alone
 * answers the common case in a few system calls; content decides whenever identity cannot:
 * - identity unchanged: unchanged. Any write changes the size or the modification time (and the
 *   status-change time, which `touch` cannot set back), except a write within the timestamps'
 *   granularity of the previous one. So, as git does for its index ("racily clean" entries), an
 *   index built less than 2 s after the file's last modification is marked *racy*, and a racy
 *   index is trusted only after the content hash is checked again (then it is re-marked).
 * - size changed: changed, scanned again.
 * - same size, other times/inode (a copy, a checkout, `touch`): the content hash is computed
 *   (~0.1 s for 200 MB) and compared; the same content re-stamps the index, other content
 *   rebuilds it.
 * A file that changes while it is being scanned (identity before ≠ after) is answered but not
 * indexed. An index that cannot be written (read-only folder) only costs the next run a scan.
 * @module
 */

import { isAbsolute, join, resolve } from "node:path";
import { isRecord, isStringList } from "../json.ts";
import { writeChunksAtomic, writeFileAtomic } from "../fs_atomic.ts";
import { sha256HexSync } from "../sha256.ts";
import type { Logger } from "../log.ts";
import { type AudioFeatures, FEATURE_COLUMNS } from "../types.ts";
import { CatalogMatcher, type NameQuery, numericFields, readFeatures } from "./_catalog_rows.ts";
import { contentSha256Of, type RowTable } from "./_catalog_segment.ts";
import { RecordReader, recordTexts } from "./_csv_records.ts";
import { fingerprint } from "./_id_set.ts";
import { columnMapText, type FeatureScale } from "./column_map.ts";
import { type CatalogScan, type ScanCatalogOptions, scanCatalogTable } from "./csv_catalog.ts";
import { type CatalogStats, extractTrackId } from "./provider.ts";

/** Bumped whenever the index layout or the row logic (ranges, matching) changes. */
export const INDEX_VERSION = 2;
const MAGIC = "AFIDX01\n";
/** Within this of the file's last modification, identity cannot prove the content unchanged. */
const RACY_MS = 2000;

/** The file identity an index is keyed by. */
export interface FileIdentity {
  path: string;
  size: number;
  mtime_ms: number | null;
  ctime_ms: number | null;
  ino: number | null;
  dev: number;
}

interface Section {
  offset: number;
  bits: number;
  count: number;
}

/** The index file's JSON header. */
interface IndexHeader {
  version: number;
  catalog: FileIdentity;
  content_sha256: string;
  /** See the module doc. */
  racy: boolean;
  built_at: string;
  crlf: boolean;
  header: string[];
  /** The column map the index was built with (`columnMapText`). */
  column_map: string;
  /** How each feature's cells were read (by `FEATURE_COLUMNS` index). */
  scales: FeatureScale[];
  stats: Omit<CatalogStats, "file">;
  ids: Section;
  artists: Section;
}

/** Options of {@link lookupCatalog}. */
export interface LookupCatalogOptions extends ScanCatalogOptions {
  /** Folder of the index files (`config.features.cacheDir`). */
  cacheDir: string;
  log?: Logger;
}

/** What {@link lookupCatalog} found, and how. */
export interface CatalogLookup extends CatalogScan {
  /**
   * `hit`: answered from the index; `verified`: from the index after checking the content hash;
   * `built`: scanned, index written; `scanned`: scanned, no index (see `cacheNote`).
   */
  cache: "hit" | "verified" | "built" | "scanned";
  /** Why the index was not used or not written. */
  cacheNote?: string;
}

/**
 * Answers ids and names from a catalog, through its index when the catalog is unchanged (see
 * the module doc), else by scanning it and writing the index. Hits are the same as
 * `scanCatalog()`'s, except that names of tracks found by id in this catalog (`NameQuery.track_id`)
 * may be left out.
 * @example
 * const found = await lookupCatalog("data/audio_features_sample.csv", {
 *   ids: ["2IVsRhKrx8hlQBOWy4qebo"],
 *   cacheDir: config.features.cacheDir,
 * });
 */
export async function lookupCatalog(
  path: string,
  options: LookupCatalogOptions,
): Promise<CatalogLookup> {
  const { cacheDir, log } = options;
  const absolute = isAbsolute(path) ? path : resolve(path);
  const indexPath = join(cacheDir, `catalog-${sha256HexSync(absolute).slice(0, 16)}.idx`);
  const identity = await identityOf(absolute);
  let note: string | undefined;
  if (identity) {
    const index = await openIndex(indexPath);
    if (index) {
      try {
        const h = index.header;
        let state: "hit" | "verified" | null = null;
        if (h.version !== INDEX_VERSION || h.catalog.path !== absolute) note = "index outdated";
        else if (h.column_map !== columnMapText(options.columnMap)) note = "column map changed";
        else if (h.catalog.size !== identity.size) note = "catalog size changed";
        else if (sameIdentity(h.catalog, identity) && !h.racy) state = "hit";
        else {
          const sha = await contentSha256Of(absolute, options.signal);
          if (sha === h.content_sha256) state = "verified";
          else note = "catalog content changed";
        }
        if (state) {
          const found = answer(index, path, options);
          if (state === "verified") {
            await restamp(index, indexPath, identity).catch((error) =>
              log?.debug(`Could not update the catalog index ${indexPath}`, {
                error: String(error),
              })
            );
          }
          return { ...found, cache: state };
        }
      } finally {
        index.file.close();
      }
    } else note = "no index yet";
  }

  const startedAt = Date.now();
  const { scan, table, contentSha256 } = await scanCatalogTable(path, {
    ...options,
    table: true,
    hash: true,
  });
  if (!table || !contentSha256 || !identity) {
    return { ...scan, cache: "scanned", cacheNote: scan.fallback ?? "not indexable" };
  }
  const after = await identityOf(absolute);
  if (!after || !sameIdentity(after, identity)) {
    return { ...scan, cache: "scanned", cacheNote: "catalog changed while it was read" };
  }
  try {
    const racy = identity.mtime_ms === null || identity.mtime_ms >= startedAt - RACY_MS;
    const layout = {
      column_map: columnMapText(options.columnMap),
      scales: FEATURE_COLUMNS.map((f) => (scan.stats.feature_scales[f] ?? "unit") as FeatureScale),
    };
    await writeIndex(
      indexPath,
      buildIndex(table, scan.stats, identity, contentSha256, racy, layout),
    );
    log?.debug(`Indexed audio-features catalog ${path}`, { index: indexPath, reason: note });
    return { ...scan, cache: "built", ...(note ? { cacheNote: note } : {}) };
  } catch (error) {
    const reason = `index not written: ${error instanceof Error ? error.message : error}`;
    log?.debug(`Could not write the catalog index ${indexPath}`, { error: reason });
    return { ...scan, cache: "scanned", cacheNote: reason };
  }
}

async function identityOf(path: string): Promise<FileIdentity | null> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) return null;
    return {
      path,
      size: info.size,
      mtime_ms: info.mtime?.getTime() ?? null,
      ctime_ms: info.ctime?.getTime() ?? null,
      ino: info.ino,
      dev: info.dev,
    };
  } catch {
    return null; // the scan reports it (missing file, permission)
  }
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.path === b.path && a.size === b.size && a.mtime_ms === b.mtime_ms &&
    a.ctime_ms === b.ctime_ms && a.ino === b.ino && a.dev === b.dev;
}

// ---------------------------------------------------------------------------------------------
// Building and writing

/** Entries per hash-table bucket aimed at. */
const BUCKET_LOAD = 4;

function bitsFor(count: number): number {
  let bits = 1;
  while ((1 << bits) * BUCKET_LOAD < count && bits < 24) bits++;
  return bits;
}

/**
 * A bucketed hash table over `count` entries: `buckets[b] .. buckets[b + 1]` index the entries
 * (4 words each, from `fill`) whose key's top `bits` bits are `b`, in file order.
 */
function bucketTable(
  keys: Uint32Array,
  bits: number,
  fill: (i: number, entries: Uint32Array, at: number) => void,
): { buckets: Uint32Array; entries: Uint32Array } {
  const count = keys.length;
  const shift = 32 - bits;
  const buckets = new Uint32Array((1 << bits) + 1);
  for (let i = 0; i < count; i++) {
    const b = (keys[i]! >>> shift) + 1;
    buckets[b] = buckets[b]! + 1;
  }
  for (let b = 1; b < buckets.length; b++) buckets[b] = buckets[b]! + buckets[b - 1]!;
  const next = buckets.slice(0, buckets.length - 1);
  const entries = new Uint32Array(count * 4);
  for (let i = 0; i < count; i++) {
    const b = keys[i]! >>> shift;
    const at = next[b]!;
    next[b] = at + 1;
    fill(i, entries, at * 4);
  }
  return { buckets, entries };
}

interface BuiltIndex {
  header: IndexHeader;
  parts: Uint32Array[];
}

const TWO_32 = 0x1_0000_0000;

function buildIndex(
  table: RowTable,
  stats: CatalogStats,
  identity: FileIdentity,
  contentSha256: string,
  racy: boolean,
  layout: { column_map: string; scales: FeatureScale[] },
): BuiltIndex {
  const { idHi, idLo, repeat } = table;
  // Accepted rows with an id, keyed by the id fingerprint's high word; artist keys likewise
  // (two entries for an ambiguous `A, B`). Rows are numbered across the parts.
  let withIds = 0;
  let artistCount = 0;
  for (const p of table.parts) {
    for (let r = 0; r < p.ord.length; r++) {
      const o = p.ord[r]!;
      if (o > 0 && repeat[o - 1] === 1) continue;
      if (o > 0) withIds++;
      const a1 = p.artist1[r]!;
      const a2 = p.artist2[r]!;
      if (a1 !== 0) artistCount++;
      if (a2 !== 0 && a2 !== a1) artistCount++;
    }
  }
  const idPart = new Uint8Array(withIds);
  const idRow = new Uint32Array(withIds);
  const idKey = new Uint32Array(withIds);
  const artistPart = new Uint8Array(artistCount);
  const artistRow = new Uint32Array(artistCount);
  const artistKey = new Uint32Array(artistCount);
  let k = 0;
  let a = 0;
  table.parts.forEach((p, pi) => {
    for (let r = 0; r < p.ord.length; r++) {
      const o = p.ord[r]!;
      if (o > 0 && repeat[o - 1] === 1) continue;
      if (o > 0) {
        idPart[k] = pi;
        idRow[k] = r;
        idKey[k++] = idHi[o - 1]!;
      }
      const a1 = p.artist1[r]!;
      const a2 = p.artist2[r]!;
      if (a1 !== 0) {
        artistPart[a] = pi;
        artistRow[a] = r;
        artistKey[a++] = a1;
      }
      if (a2 !== 0 && a2 !== a1) {
        artistPart[a] = pi;
        artistRow[a] = r;
        artistKey[a++] = a2;
      }
    }
  });
  const idBits = bitsFor(withIds);
  const ids = bucketTable(idKey, idBits, (i, w, at) => {
    const p = table.parts[idPart[i]!]!;
    const r = idRow[i]!;
    const o = p.ord[r]! - 1;
    const offset = p.offset[r]!;
    w[at] = idHi[o]!;
    w[at + 1] = idLo[o]!;
    w[at + 2] = offset % TWO_32;
    w[at + 3] = p.length[r]! | (Math.floor(offset / TWO_32) << 24);
  });
  const artistBits = bitsFor(artistCount);
  const artists = bucketTable(artistKey, artistBits, (i, w, at) => {
    const p = table.parts[artistPart[i]!]!;
    const r = artistRow[i]!;
    const offset = p.offset[r]!;
    w[at] = artistKey[i]!;
    w[at + 1] = offset % TWO_32;
    w[at + 2] = p.length[r]! | (Math.floor(offset / TWO_32) << 24);
    w[at + 3] = p.line[r]! + p.lineShift;
  });
  const { file: _file, ...rest } = stats;
  const header: IndexHeader = {
    version: INDEX_VERSION,
    catalog: identity,
    content_sha256: contentSha256,
    racy,
    built_at: new Date().toISOString(),
    crlf: table.crlf,
    header: table.header,
    ...layout,
    stats: rest,
    ids: { offset: 0, bits: idBits, count: withIds },
    artists: { offset: 0, bits: artistBits, count: artistCount },
  };
  return { header, parts: [ids.buckets, ids.entries, artists.buckets, artists.entries] };
}

/** Writes the index atomically (temporary name, flushed, renamed), part by part. */
async function writeIndex(path: string, built: BuiltIndex): Promise<void> {
  const { head, parts } = encodeIndex(built);
  await writeChunksAtomic(path, [head, ...parts]);
}

function encodeIndex(built: BuiltIndex): { head: Uint8Array; parts: Uint8Array[] } {
  const { header, parts } = built;
  // Sections come after the header, whose length depends on their offsets: size it with the
  // longest offsets, plus room for a later re-stamp (see `restamp()`).
  const sized = {
    ...header,
    ids: { ...header.ids, offset: 1e15 },
    artists: { ...header.artists, offset: 1e15 },
  };
  const headerRoom = align8(16 + new TextEncoder().encode(JSON.stringify(sized)).length + 256);
  let offset = headerRoom;
  const offsets = parts.map((p) => {
    const at = offset;
    offset += p.byteLength;
    return at;
  });
  header.ids.offset = offsets[0]!;
  header.artists.offset = offsets[2]!;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(headerRoom);
  head.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(head.buffer).setUint32(8, json.length, true);
  head.set(json, 16);
  return { head, parts: parts.map((p) => new Uint8Array(p.buffer, p.byteOffset, p.byteLength)) };
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

async function restamp(index: OpenIndex, path: string, identity: FileIdentity): Promise<void> {
  const h = index.header;
  const racy = identity.mtime_ms === null || identity.mtime_ms >= Date.now() - RACY_MS;
  const header: IndexHeader = { ...h, catalog: identity, racy };
  const bytes = await Deno.readFile(path);
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (16 + json.length > h.ids.offset) return; // no room: keep verifying next time
  const view = new DataView(bytes.buffer);
  view.setUint32(8, json.length, true);
  bytes.fill(0, 16, h.ids.offset);
  bytes.set(json, 16);
  await writeFileAtomic(path, bytes);
}

// ---------------------------------------------------------------------------------------------
// Reading

interface OpenIndex {
  file: Deno.FsFile;
  header: IndexHeader;
}

async function openIndex(path: string): Promise<OpenIndex | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return null;
  }
  try {
    const head = readAt(file, 0, 16);
    if (new TextDecoder().decode(head.subarray(0, 8)) !== MAGIC) throw new Error("bad magic");
    const length = new DataView(head.buffer, head.byteOffset).getUint32(8, true);
    const header = indexHeaderOf(JSON.parse(new TextDecoder().decode(readAt(file, 16, length))));
    if (!header) throw new Error("bad header");
    return { file, header };
  } catch {
    file.close();
    return null; // unreadable: rebuilt
  }
}

/**
 * The index file's header when it has every field a lookup reads, with the right types (a
 * damaged or older index is then rebuilt, never trusted).
 */
function indexHeaderOf(value: unknown): IndexHeader | undefined {
  const num = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  const numOrNull = (v: unknown) => v === null || num(v);
  const section = (v: unknown) => isRecord(v) && num(v.offset) && num(v.bits) && num(v.count);
  if (
    !isRecord(value) || !num(value.version) || typeof value.content_sha256 !== "string" ||
    typeof value.racy !== "boolean" || typeof value.crlf !== "boolean" ||
    typeof value.built_at !== "string" || typeof value.column_map !== "string" ||
    !isStringList(value.header) || !Array.isArray(value.scales) || !isRecord(value.stats) ||
    !section(value.ids) || !section(value.artists)
  ) {
    return undefined;
  }
  const c = value.catalog;
  if (
    !isRecord(c) || typeof c.path !== "string" || !num(c.size) || !numOrNull(c.mtime_ms) ||
    !numOrNull(c.ctime_ms) || !numOrNull(c.ino) || !num(c.dev)
  ) {
    return undefined;
  }
  return value as unknown as IndexHeader; // every field a lookup reads checked above
}

/** Reads exactly `length` bytes at `offset` (sync: a lookup makes few, small reads). */
function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let n = 0;
  while (n < length) {
    const got = file.readSync(buf.subarray(n));
    if (got === null) throw new Error(`unexpected end of file at ${offset + n}`);
    n += got;
  }
  return buf;
}

function words(bytes: Uint8Array): Uint32Array {
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
}

/** Entries of the bucket a 32-bit key falls in. */
function bucketEntries(file: Deno.FsFile, section: Section, key: number): Uint32Array {
  const b = key >>> (32 - section.bits);
  const range = words(readAt(file, section.offset + b * 4, 8));
  const count = range[1]! - range[0]!;
  if (count === 0) return new Uint32Array(0);
  const entriesAt = section.offset + ((1 << section.bits) + 1) * 4;
  return words(readAt(file, entriesAt + range[0]! * 16, count * 16));
}

function answer(index: OpenIndex, path: string, options: LookupCatalogOptions): CatalogScan {
  const { file, header: h } = index;
  const stats: CatalogStats = { file: path, ...structuredClone(h.stats) };
  const catalog = Deno.openSync(h.catalog.path, { read: true });
  try {
    const how = { columnMap: options.columnMap, scales: h.scales };
    const ids = new CatalogMatcher(path, { ids: options.ids, ...how });
    ids.setHeader(h.header);
    const reader = new RecordReader({ crlf: h.crlf });
    reader.numeric = numericFields(ids.cols!);
    const readRow = (offset: number, length: number, line: number) =>
      reader.parseRecord(readAt(catalog, offset, length), { crlf: h.crlf, line });

    for (const id of ids.wantedIds) {
      const [hi, lo] = fingerprint(id);
      const entries = bucketEntries(file, h.ids, hi);
      for (let at = 0; at < entries.length; at += 4) {
        if (entries[at] !== hi || entries[at + 1] !== lo) continue;
        const w3 = entries[at + 3]!;
        const v = readRow(entries[at + 2]! + (w3 >>> 24) * 0x1_0000_0000, w3 & 0xffffff, 0);
        const texts = recordTexts(v);
        if (extractTrackId(texts[ids.cols!.id]) !== id || readFeatures(ids, v)) continue;
        ids.byId.set(id, { features: ids.toFeatures() });
        break;
      }
    }

    const names: NameQuery[] = [];
    for (const q of options.names ?? []) {
      if (q.track_id === undefined || !ids.byId.has(q.track_id)) names.push(q);
    }
    const m = new CatalogMatcher(path, { names, ...how });
    m.setHeader(h.header);
    const rows = new Map<number, { length: number; line: number }>();
    if (m.matchesNames) {
      for (const hash of m.wantedArtistHashes) {
        const entries = bucketEntries(file, h.artists, hash);
        for (let at = 0; at < entries.length; at += 4) {
          if (entries[at] !== hash) continue;
          const w2 = entries[at + 2]!;
          const offset = entries[at + 1]! + (w2 >>> 24) * 0x1_0000_0000;
          rows.set(offset, { length: w2 & 0xffffff, line: entries[at + 3]! });
        }
      }
    }
    for (const offset of [...rows.keys()].sort((a, b) => a - b)) {
      const { length, line } = rows.get(offset)!;
      const v = readRow(offset, length, line);
      const record = recordTexts(v);
      if (readFeatures(m, v)) continue;
      const id = m.cols!.id >= 0 ? extractTrackId(record[m.cols!.id]) : null;
      const features: AudioFeatures = m.toFeatures();
      m.matchNames(record, line, id, features);
    }
    return { stats, byId: ids.byId, byName: m.byName, reader: "bytes", segments: 0 };
  } finally {
    catalog.close();
  }
}
