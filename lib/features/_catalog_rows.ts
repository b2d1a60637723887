/**
 * The row logic of an audio-features catalog scan, shared by the byte reader
 * (`_catalog_segment.ts`), the csv-parse reader (`_csv_text.ts`) and the index
 * (`catalog_index.ts`): which columns hold what, feature range checks, first-valid-row-wins by
 * id, and matching by normalized (title, primary artist). See `csv_catalog.ts` for the formats.
 * @module
 */

import { ConfigError } from "../errors.ts";
import { type AudioFeatures, FEATURE_COLUMNS, type FeatureName } from "../types.ts";
import {
  EMPTY,
  fieldEnd,
  fieldStart,
  fieldText,
  foldHashBytes,
  keyHash,
  parseNumber,
  type RecordView,
} from "./_csv_records.ts";
import { fingerprint, FingerprintSet } from "./_id_set.ts";
import { artistKey, joinKey, titleKeys } from "./normalize.ts";
import {
  type CatalogStats,
  checkFeature,
  extractTrackId,
  FEATURE_RANGES,
  type FeaturesHit,
  type NameMatchDetail,
} from "./provider.ts";

/** Header names accepted for each role, most specific first (compared after {@link headerKey}). */
export const COLUMN_ALIASES = {
  id: ["track_id", "id", "uri", "track_uri", "spotify_id", "spotify_track_id", "trackid"],
  title: ["track_name", "name", "title", "song", "song_name", "track_title", "track"],
  artists: [
    "artists",
    "artist_name",
    "artists_names",
    "artist_names",
    "track_artist",
    "track_artists",
    "artist",
  ],
} as const;

/** Features a catalog must have (time_signature is optional: TidyTuesday has none). */
export const REQUIRED_FEATURES: readonly FeatureName[] = FEATURE_COLUMNS.filter((c) =>
  c !== "time_signature"
);

/** Canonical form of a header cell: trimmed, lower case, spaces and dashes as `_`. */
export function headerKey(cell: string): string {
  return cell.replace(/^\uFEFF/, "").trim().toLowerCase().replace(/[\s-]+/g, "_");
}

/** Which cell holds what, by index (-1 = absent). */
export interface CatalogColumns {
  id: number;
  title: number;
  artists: number;
  /** Cell of each of `FEATURE_COLUMNS`, in order. */
  features: number[];
  /** Fewest cells a row needs to reach every column used. */
  minCells: number;
}

/** Finds the columns in a header row (ConfigError naming what is missing). */
export function resolveColumns(header: string[], file: string): CatalogColumns {
  const keys = header.map(headerKey);
  const find = (names: readonly string[]) => {
    for (const name of names) {
      const i = keys.indexOf(name);
      if (i >= 0) return i;
    }
    return -1;
  };
  const id = find(COLUMN_ALIASES.id);
  const title = find(COLUMN_ALIASES.title);
  const artists = find(COLUMN_ALIASES.artists);
  const features = FEATURE_COLUMNS.map((name) => keys.indexOf(name));
  const missing: string[] = REQUIRED_FEATURES.filter((name) => !keys.includes(name));
  if (id < 0 && (title < 0 || artists < 0)) {
    missing.unshift(
      `an id column (${COLUMN_ALIASES.id.slice(0, 3).join(", ")}) or both a title column (${
        COLUMN_ALIASES.title.slice(0, 2).join(", ")
      }) and an artists column (${COLUMN_ALIASES.artists.slice(0, 3).join(", ")})`,
    );
  }
  if (missing.length) {
    // one line and bounded, whatever the header holds (line breaks, control bytes, a million
    // columns): control characters escaped, long cells cut, at most 40 cells listed
    const cell = (h: string) => {
      const t = h.trim();
      if (t === "") return "(blank)";
      // deno-lint-ignore no-control-regex
      const safe = t.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
      return safe.length > 60 ? `${safe.slice(0, 60)}…` : safe;
    };
    const found = header.slice(0, 40).map(cell).join(", ") +
      (header.length > 40 ? `, … (${header.length} columns in all)` : "");
    throw new ConfigError(
      `Cannot read audio features from "${file}": missing ${missing.join(", ")} ` +
        `(needed: an id column or title+artists, and ${REQUIRED_FEATURES.join(", ")}; ` +
        `found: ${found || "no columns"})`,
      { hint: "Point AUDIO_FEATURES_CSV at an audio-features CSV (see README, enrich)." },
    );
  }
  const used = [id, title, artists, ...features].filter((i) => i >= 0);
  return { id, title, artists, features, minCells: Math.max(...used) + 1 };
}

const PY_ITEM_RE = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g;

/**
 * Splits an artists cell into names: a Python-list string (`['A', "B's"]`), `A;B` or `A, B`.
 * A comma list is ambiguous ("Tyler, The Creator"): name matching also tries the whole cell.
 * @example parseArtists("['Öwnboss', 'Sevek']") // ["Öwnboss", "Sevek"]
 */
export function parseArtists(cell: string | null | undefined): string[] {
  const v = cell?.trim();
  if (!v) return [];
  if (v.startsWith("[") && v.endsWith("]")) {
    const out: string[] = [];
    for (const m of v.matchAll(PY_ITEM_RE)) {
      const item = (m[1] ?? m[2] ?? "").replace(/\\(.)/g, "$1").trim();
      if (item) out.push(item);
    }
    return out;
  }
  const sep = v.includes(";") ? ";" : v.includes(",") ? "," : null;
  if (sep === null) return [v];
  return v.split(sep).map((s) => s.trim()).filter(Boolean);
}

/** Artist names to try as the row's primary artist (two for an ambiguous comma list). */
export function primaryCandidates(cell: string | undefined): string[] {
  const v = cell?.trim();
  if (!v) return [];
  if (v.startsWith("[")) {
    const first = parseArtists(v)[0];
    return first ? [first] : [];
  }
  const semi = v.indexOf(";");
  if (semi >= 0) return [v.slice(0, semi).trim()];
  const comma = v.indexOf(",");
  if (comma >= 0) return [v.slice(0, comma).trim(), v];
  return [v];
}

/** A (title, primary artist) pair to find by name. */
export interface NameQuery {
  title: string;
  artist: string;
  /**
   * The track asking. An indexed lookup (`catalog_index.ts`) may skip the name of a track it
   * found by id in the same file; a scan answers every name.
   */
  track_id?: string;
}

/** What a scan looks for. */
export interface MatchOptions {
  /** Track ids wanted. */
  ids?: Iterable<string>;
  /** (title, primary artist) pairs wanted by name. */
  names?: Iterable<NameQuery>;
  /** Rejected-row examples kept in the stats (default 5). */
  maxExamples?: number;
}

const ARTIST_MEMO_LIMIT = 50_000;

/**
 * The feature ranges as flat arrays by column index (the hot path of the byte reader): the same
 * table `checkFeature` uses ({@link FEATURE_RANGES}), so the quick check and the full one cannot
 * disagree.
 */
const RANGE_MIN = Float64Array.from(FEATURE_COLUMNS, (n) => FEATURE_RANGES[n].min);
const RANGE_MAX = Float64Array.from(FEATURE_COLUMNS, (n) => FEATURE_RANGES[n].max);
const RANGE_MIN_EXCLUSIVE = Uint8Array.from(
  FEATURE_COLUMNS,
  (n) => FEATURE_RANGES[n].minExclusive ? 1 : 0,
);
const RANGE_INTEGER = Uint8Array.from(FEATURE_COLUMNS, (n) => FEATURE_RANGES[n].integer ? 1 : 0);

/** A quick check of feature `k`: `true` exactly when `checkFeature` accepts the value. */
function quickValid(k: number, x: number): boolean {
  const min = RANGE_MIN[k]!;
  return (RANGE_MIN_EXCLUSIVE[k] ? x > min : x >= min) && x <= RANGE_MAX[k]! &&
    (!RANGE_INTEGER[k] || Math.floor(x) === x);
}

/**
 * The state of one catalog query: what is wanted, what was found, the counters, and the row
 * logic both readers share.
 * @internal exported for `catalog_index.ts`
 */
export class CatalogMatcher {
  readonly path: string;
  readonly stats: CatalogStats;
  readonly byId = new Map<string, FeaturesHit>();
  readonly byName = new Map<string, FeaturesHit>();
  readonly wantedIds: Set<string>;
  /** Fingerprint high words of the wanted ids (a cheap first test). */
  readonly wantedIdHi = new Set<number>();
  readonly wantedKeys = new Set<string>();
  readonly wantedArtists = new Set<string>();
  /** `keyHash()` of each wanted artist key (a cheap first test). */
  readonly wantedArtistHashes = new Set<number>();
  /** The last row's feature values (NaN = empty). */
  readonly values = new Float64Array(FEATURE_COLUMNS.length);
  header: string[] | null = null;
  cols: CatalogColumns | null = null;
  /** The first rejected rows, `[line, reason]`. */
  readonly examples: [number, string][] = [];
  readonly maxExamples: number;
  readonly #seen = new FingerprintSet(1 << 14);
  readonly #artistMemo = new Map<string, string>();
  readonly #plainBase = new Set<string>();

  constructor(path: string, options: MatchOptions = {}) {
    this.path = path;
    this.maxExamples = options.maxExamples ?? 5;
    this.wantedIds = new Set(options.ids ?? []);
    for (const id of this.wantedIds) this.wantedIdHi.add(fingerprint(id)[0]);
    for (const { title, artist } of options.names ?? []) {
      const a = artistKey(artist);
      const t = titleKeys(title);
      if (!a || !t.full) continue;
      this.wantedArtists.add(a);
      this.wantedArtistHashes.add(keyHash(a));
      this.wantedKeys.add(joinKey("f", t.full, a));
      this.wantedKeys.add(joinKey("b", t.base, a));
    }
    this.stats = {
      file: path,
      rows: 0,
      accepted: 0,
      duplicate_ids: 0,
      rejected: 0,
      rejected_by_reason: {},
      rejected_examples: [],
      without_id: 0,
      columns: { id: null, title: null, artists: null },
      bytes: 0,
    };
  }

  /** Takes the header record: resolves the columns (or throws naming what is missing). */
  setHeader(record: string[]): void {
    this.header = record;
    const cols = resolveColumns(record, this.path);
    this.cols = cols;
    this.stats.columns = {
      id: cols.id >= 0 ? record[cols.id]!.trim() : null,
      title: cols.title >= 0 ? record[cols.title]!.trim() : null,
      artists: cols.artists >= 0 ? record[cols.artists]!.trim() : null,
    };
  }

  /** Counts a rejected row. */
  reject(reason: string, line: number): void {
    const stats = this.stats;
    stats.rejected++;
    stats.rejected_by_reason[reason] = (stats.rejected_by_reason[reason] ?? 0) + 1;
    if (this.examples.length < this.maxExamples) this.examples.push([line, reason]);
  }

  /** Writes the rejected-row examples into the stats (`line N: reason`). */
  finishStats(): void {
    this.stats.rejected_examples = this.examples.map(([line, reason]) => `line ${line}: ${reason}`);
  }

  /** The last row's features as an object. */
  toFeatures(): AudioFeatures {
    const f = {} as AudioFeatures;
    const values = this.values;
    for (let i = 0; i < FEATURE_COLUMNS.length; i++) {
      const v = values[i]!;
      f[FEATURE_COLUMNS[i]!] = Number.isNaN(v) ? null : v;
    }
    return f;
  }

  /** Folded key of an artist name (memoized: catalogs repeat artists). */
  keyOfArtist(name: string): string {
    let k = this.#artistMemo.get(name);
    if (k === undefined) {
      if (this.#artistMemo.size >= ARTIST_MEMO_LIMIT) this.#artistMemo.clear();
      k = artistKey(name);
      this.#artistMemo.set(name, k);
    }
    return k;
  }

  /** Whether name matching applies (names wanted, and the file has titles and artists). */
  get matchesNames(): boolean {
    const c = this.cols!;
    return this.wantedArtists.size > 0 && c.title >= 0 && c.artists >= 0;
  }

  /**
   * Checks one feature cell (already trimmed text, or parsed from bytes) into `values[i]`;
   * returns the reason when the row must be rejected.
   */
  featureFromText(i: number, raw: string): string | undefined {
    if (raw === "") {
      this.values[i] = NaN;
      return undefined;
    }
    return this.featureValue(i, Number(raw));
  }

  /** As {@link featureFromText}, for a number already read. */
  featureValue(i: number, n: number): string | undefined {
    if (!quickValid(i, n)) {
      const reason = checkFeature(FEATURE_COLUMNS[i]!, n);
      if (reason) return reason;
    }
    this.values[i] = n;
    return undefined;
  }

  /** The whole row logic for a record of strings (the csv-parse reader). */
  row(record: string[], line: number): void {
    const c = this.cols!;
    const stats = this.stats;
    stats.rows++;
    if (record.length < c.minCells) {
      return this.reject(`row has ${record.length} cells, header has ${this.header!.length}`, line);
    }
    let any = false;
    for (let i = 0; i < FEATURE_COLUMNS.length; i++) {
      const ci = c.features[i]!;
      const reason = this.featureFromText(i, ci < 0 ? "" : record[ci]!.trim());
      if (reason) return this.reject(reason, line);
      if (!Number.isNaN(this.values[i]!)) any = true;
    }
    if (!any) return this.reject("no feature values", line);

    const id = c.id >= 0 ? extractTrackId(record[c.id]) : null;
    if (id === null) stats.without_id++;
    else if (!this.#seen.add(id)) {
      stats.duplicate_ids++;
      return;
    }
    stats.accepted++;

    let features: AudioFeatures | undefined;
    if (id !== null && this.wantedIds.has(id) && !this.byId.has(id)) {
      features = this.toFeatures();
      this.byId.set(id, { features });
    }
    if (this.matchesNames) this.matchNames(record, line, id, features);
  }

  /**
   * The name part of the row logic for an accepted row: records a hit for each wanted name key
   * the row has (first row wins; for base keys an unversioned title beats an earlier versioned
   * one). Returns the row's features object if one was made.
   */
  matchNames(
    record: string[],
    line: number,
    id: string | null,
    features: AudioFeatures | undefined,
  ): AudioFeatures | undefined {
    const c = this.cols!;
    const artistsCell = record[c.artists];
    for (const candidate of primaryCandidates(artistsCell)) {
      const a = this.keyOfArtist(candidate);
      if (!a || !this.wantedArtists.has(a)) continue;
      const title = record[c.title]!;
      const t = titleKeys(title);
      if (!t.full) break;
      // For base keys, a row without a version suffix ("Song") beats an earlier versioned
      // one ("Song - Live"): it is the recording a versioned title most likely refers to.
      const unversioned = t.full === t.base;
      for (const kind of ["f", "b"] as const) {
        const key = joinKey(kind, kind === "f" ? t.full : t.base, a);
        if (!this.wantedKeys.has(key)) continue;
        if (
          this.byName.has(key) && (kind === "f" || !unversioned || this.#plainBase.has(key))
        ) continue;
        if (kind === "b" && unversioned) this.#plainBase.add(key);
        features ??= this.toFeatures();
        const name: NameMatchDetail = {
          catalog_track_id: id,
          catalog_track_name: title.trim(),
          catalog_artists: artistsCell!.trim(),
          key: kind === "f" ? "full" : "base",
          file: this.path,
          line,
        };
        this.byName.set(key, { features, name });
      }
    }
    return features;
  }

  /** Hashes of the primary-artist candidates of an artists cell (slow path: from text). */
  artistHashes(cell: string | undefined, out: Uint32Array): void {
    const candidates = primaryCandidates(cell);
    out[0] = 0;
    out[1] = 0;
    for (let i = 0; i < candidates.length && i < 2; i++) {
      const key = this.keyOfArtist(candidates[i]!);
      out[i] = key ? keyHash(key) : 0;
    }
  }
}

/** The numeric-field flags for a reader (see `RecordReader.numeric`): the feature cells. */
export function numericFields(cols: CatalogColumns): Uint8Array {
  const flags = new Uint8Array(Math.max(0, ...cols.features) + 1);
  for (const ci of cols.features) if (ci >= 0) flags[ci] = 1;
  return flags;
}

/**
 * Reads the feature cells of a record from its bytes into `m.values`; returns the reason when
 * the row must be rejected ("no feature values" included).
 * @internal exported for `catalog_index.ts`
 */
export function readFeatures(m: CatalogMatcher, v: RecordView): string | undefined {
  const cols = m.cols!.features;
  const values = m.values;
  const buf = v.buf;
  const ends = v.ends;
  let any = false;
  for (let k = 0; k < cols.length; k++) {
    const ci = cols[k]!;
    if (ci < 0) {
      values[k] = NaN;
      continue;
    }
    let x = v.numbered ? v.numbers[ci]! : NaN;
    if (x !== x) {
      x = v.anyQuoted && v.quoted[ci] !== 0
        ? NaN
        : parseNumber(buf, ci === 0 ? v.pos : ends[ci - 1]! + 1, ends[ci]!);
    }
    if (x === EMPTY) {
      values[k] = NaN;
      continue;
    }
    if (x !== x) {
      // Not a plain decimal (or quoted): exactly what the text reader does.
      const reason = m.featureFromText(k, fieldText(v, ci).trim());
      if (reason) return reason;
      if (!Number.isNaN(values[k]!)) any = true;
      continue;
    }
    if (!quickValid(k, x)) {
      const reason = checkFeature(FEATURE_COLUMNS[k]!, x);
      if (reason) return reason;
    }
    values[k] = x;
    any = true;
  }
  return any ? undefined : "no feature values";
}

/** Whether `buf[s .. e)` contains `byte`. */
function hasByte(buf: Uint8Array, s: number, e: number, byte: number): boolean {
  for (let i = s; i < e; i++) if (buf[i] === byte) return true;
  return false;
}

/** The ASCII string `buf[s .. e)`. */
export function asciiText(buf: Uint8Array, s: number, e: number): string {
  let out = "";
  for (let i = s; i < e; i++) out += String.fromCharCode(buf[i]!);
  return out;
}

/**
 * Hashes of the primary-artist candidates of field `col`, read from the bytes when the cell is
 * plain ASCII and not a Python list (the common case); otherwise from its text, exactly as the
 * text reader. Writes `out[0]`, `out[1]` (0 = none).
 * @internal exported for `catalog_index.ts`
 */
export function artistHashesOf(
  m: CatalogMatcher,
  v: RecordView,
  col: number,
  out: Uint32Array,
): void {
  const buf = v.buf;
  let s = fieldStart(v, col);
  let e = fieldEnd(v, col);
  while (s < e && (buf[s] === 32 || (buf[s]! - 9) >>> 0 <= 4)) s++;
  while (e > s && (buf[e - 1] === 32 || (buf[e - 1]! - 9) >>> 0 <= 4)) e--;
  out[0] = 0;
  out[1] = 0;
  if (s === e) return;
  // A Python list (`['A', 'B']`) is read from the text; so is a cell that starts with
  // non-ASCII (it may be Unicode white space before a `[`).
  if (buf[s] !== 91 && (buf[s]! < 0x80 || !hasByte(buf, s, e, 91))) {
    let semi = -1;
    let comma = -1;
    for (let i = s; i < e; i++) {
      const c = buf[i]!;
      if (c === 59) {
        semi = i;
        break;
      }
      if (c === 44 && comma < 0) comma = i;
    }
    if (semi >= 0) {
      const h = foldHashBytes(buf, s, semi);
      if (h >= 0) {
        out[0] = h;
        return;
      }
    } else if (comma >= 0) {
      const h1 = foldHashBytes(buf, s, comma);
      const h2 = h1 >= 0 ? foldHashBytes(buf, s, e) : -1;
      if (h2 >= 0) {
        out[0] = h1;
        out[1] = h2;
        return;
      }
    } else {
      const h = foldHashBytes(buf, s, e);
      if (h >= 0) {
        out[0] = h;
        return;
      }
    }
  }
  m.artistHashes(fieldText(v, col), out);
}
