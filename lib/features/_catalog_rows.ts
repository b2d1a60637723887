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
import { type ColumnMap, type ColumnRole, type FeatureScale } from "./column_map.ts";
import { artistKey, joinKey, titleKeys } from "./normalize.ts";
import {
  type CatalogStats,
  checkFeature,
  extractTrackId,
  FEATURE_RANGES,
  type FeaturesHit,
  type NameMatchDetail,
  UNIT_INTERVAL_FEATURES,
} from "./provider.ts";

/**
 * Header names accepted for each role, most specific first (compared after {@link headerKey}).
 * `song_id` comes last: where a file has it beside a Spotify id column it is the file's own key.
 */
export const COLUMN_ALIASES = {
  id: [
    "track_id",
    "id",
    "uri",
    "track_uri",
    "spotify_id",
    "spotify_track_id",
    "trackid",
    "song_id",
  ],
  title: ["track_name", "name", "title", "song", "song_name", "track_title", "track"],
  artists: [
    "artists",
    "artist_name",
    "artists_names",
    "artist_names",
    "artists_name",
    "track_artist",
    "track_artists",
    "artist",
    "performer",
  ],
} as const;

/**
 * Header names of each feature (after {@link headerKey}); a 0–1 feature's name followed by `_%`
 * or `%` (`danceability_%`) is that feature in percent.
 */
export const FEATURE_ALIASES: Readonly<Record<FeatureName, readonly string[]>> = {
  ...Object.fromEntries(FEATURE_COLUMNS.map((f) => [f, [f]])) as Record<FeatureName, string[]>,
  tempo: ["tempo", "bpm", "beats_per_minute"],
  loudness: ["loudness", "loudness_db"],
};

/**
 * Canonical form of a header cell: trimmed, lower case, spaces, dashes and dots as `_` (R's
 * `Track.Name`), `(s)` as `s` (`artist(s)_name`), no repeated, leading or trailing `_`.
 */
export function headerKey(cell: string): string {
  return cell.replace(/^\uFEFF/, "").trim().toLowerCase().replace(/\(s\)/g, "s")
    .replace(/[\s.-]+/g, "_").replace(/_+/g, "_").replace(/^_|_$/g, "");
}

/** Which cell holds what, by index (-1 = absent). */
export interface CatalogColumns {
  id: number;
  title: number;
  artists: number;
  /** Cell of each of `FEATURE_COLUMNS`, in order (-1: the catalog does not provide it). */
  features: number[];
  /**
   * The scale of each feature as the header or the column map says it (`danceability_%`,
   * `energy=Energy:percent`); null: not said (the values decide, see `_catalog_layout.ts`).
   */
  scales: (FeatureScale | null)[];
  /** Fewest cells a row needs to reach every column used. */
  minCells: number;
}

/** A header cell as it can be shown in one bounded line. */
function shownCell(h: string): string {
  const t = h.trim();
  if (t === "") return "(blank)";
  // deno-lint-ignore no-control-regex
  const safe = t.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
  return safe.length > 60 ? `${safe.slice(0, 60)}…` : safe;
}

/**
 * The header's cells, bounded whatever it holds (line breaks, control bytes, a million
 * columns): control characters escaped, long cells cut, at most 40 cells listed.
 */
export function shownHeader(header: readonly string[]): string {
  return (header.slice(0, 40).map(shownCell).join(", ") +
    (header.length > 40 ? `, … (${header.length} columns in all)` : "")) || "no columns";
}

/**
 * Finds the columns in a header row: the column map's first (`AUDIO_FEATURES_CSV_COLUMNS`),
 * then the known names. A catalog needs an id column or both title and artists, and at least
 * one feature; the others stay null for the tracks it matches.
 * @throws ConfigError naming the file, what is missing and the columns found; or a mapped
 *   column the file does not have.
 */
export function resolveColumns(
  header: string[],
  file: string,
  columnMap: ColumnMap = {},
): CatalogColumns {
  const keys = header.map(headerKey);
  const find = (names: readonly string[]) => {
    for (const name of names) {
      const i = keys.indexOf(name);
      if (i >= 0) return i;
    }
    return -1;
  };
  const mapped = (role: ColumnRole): number | undefined => {
    const entry = columnMap[role];
    if (!entry) return undefined;
    let i = header.findIndex((h) => h.replace(/^\uFEFF/, "").trim() === entry.column);
    if (i < 0) i = keys.indexOf(headerKey(entry.column));
    if (i < 0) {
      throw new ConfigError(
        `AUDIO_FEATURES_CSV_COLUMNS maps ${role} to the column "${entry.column}", which "${file}" does not have (found: ${
          shownHeader(header)
        })`,
        { hint: "Name the column as the file's header spells it." },
      );
    }
    return i;
  };
  const id = mapped("track_id") ?? find(COLUMN_ALIASES.id);
  const title = mapped("track_name") ?? find(COLUMN_ALIASES.title);
  const artists = mapped("artists") ?? find(COLUMN_ALIASES.artists);
  const features: number[] = [];
  const scales: (FeatureScale | null)[] = [];
  for (const name of FEATURE_COLUMNS) {
    const byMap = mapped(name);
    if (byMap !== undefined) {
      features.push(byMap);
      scales.push(columnMap[name]!.scale ?? null);
      continue;
    }
    let at = find(FEATURE_ALIASES[name]);
    let scale: FeatureScale | null = null;
    if (at < 0 && UNIT_INTERVAL_FEATURES.includes(name)) {
      at = find(FEATURE_ALIASES[name].flatMap((a) => [`${a}_%`, `${a}%`]));
      if (at >= 0) scale = "percent";
    }
    features.push(at);
    scales.push(scale);
  }
  const missing: string[] = [];
  if (id < 0 && (title < 0 || artists < 0)) {
    missing.push(
      `an id column (${COLUMN_ALIASES.id.slice(0, 3).join(", ")}) or both a title column (${
        COLUMN_ALIASES.title.slice(0, 2).join(", ")
      }) and an artists column (${COLUMN_ALIASES.artists.slice(0, 3).join(", ")})`,
    );
  }
  if (features.every((i) => i < 0)) {
    missing.push(`any audio-feature column (${FEATURE_COLUMNS.join(", ")})`);
  }
  if (missing.length) {
    // one cell holding `a;b;c`: another separator than the comma
    const sep = header.length === 1 ? /[;\t|]/.exec(header[0]!)?.[0] : undefined;
    const named = sep === "\t" ? "tabs" : `"${sep}"`;
    throw new ConfigError(
      `Cannot read audio features from "${file}": ${
        sep
          ? `its columns are separated by ${named}, not commas`
          : `missing ${missing.join(", and ")}`
      } (needed: an id column or title+artists, and at least one feature; ` +
        `found: ${shownHeader(header)})`,
      {
        hint: sep
          ? "Save it as comma-separated CSV (in a spreadsheet: CSV, comma delimited) and point AUDIO_FEATURES_CSV at that copy."
          : "Point AUDIO_FEATURES_CSV at an audio-features CSV, or name its columns in AUDIO_FEATURES_CSV_COLUMNS (see docs/steps.md, enrich).",
      },
    );
  }
  const used = [id, title, artists, ...features].filter((i) => i >= 0);
  return { id, title, artists, features, scales, minCells: Math.max(...used) + 1 };
}

/** Cells that mean "no value" in the files people have (R's `NA`, pandas' `NaN`, SQL's NULL). */
const MISSING_CELLS = new Set(["NA", "N/A", "NaN", "nan", "null", "NULL", "None"]);

const NOTE_RE = /^([A-Ga-g])\s*([#♯b♭]?)$/;
const NOTE_PITCH: Record<string, number> = { c: 0, d: 2, e: 4, f: 5, g: 7, a: 9, b: 11 };

/** The pitch class of a note name (`C` 0 … `B` 11; `C#`/`Db` 1), or undefined. */
export function pitchClass(text: string): number | undefined {
  const m = NOTE_RE.exec(text.trim());
  if (!m) return undefined;
  const shift = m[2] === "#" || m[2] === "♯" ? 1 : m[2] === "b" || m[2] === "♭" ? -1 : 0;
  return (NOTE_PITCH[m[1]!.toLowerCase()]! + shift + 12) % 12;
}

/** `Major` → 1, `Minor` → 0 (any case), else undefined. */
export function modeValue(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  return t === "major" ? 1 : t === "minor" ? 0 : undefined;
}

/** Whether a cell is empty or one of the usual "no value" markers. */
export function isMissingCell(text: string): boolean {
  return text === "" || MISSING_CELLS.has(text);
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

/** What a scan looks for, and how the catalog's columns are read. */
export interface MatchOptions {
  /** Track ids wanted. */
  ids?: Iterable<string>;
  /** (title, primary artist) pairs wanted by name. */
  names?: Iterable<NameQuery>;
  /** Rejected-row examples kept in the stats (default 5). */
  maxExamples?: number;
  /** `AUDIO_FEATURES_CSV_COLUMNS`. */
  columnMap?: ColumnMap;
  /**
   * The scale of each feature (by `FEATURE_COLUMNS` index) where the header does not say it,
   * as the values decided (`inferScales`); absent: `unit`.
   */
  scales?: readonly FeatureScale[];
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
  /** How each feature's cells are read (set with the header). */
  scales: FeatureScale[] = FEATURE_COLUMNS.map(() => "unit");
  /** Each feature's divisor (100 for a percentage, else 1). */
  readonly divisors = new Float64Array(FEATURE_COLUMNS.length).fill(1);
  /** 1 for a feature read from text only (note names, Major/Minor). */
  readonly textOnly = new Uint8Array(FEATURE_COLUMNS.length);
  readonly columnMap: ColumnMap;
  readonly inferredScales: readonly FeatureScale[] | undefined;
  readonly #seen = new FingerprintSet(1 << 14);
  readonly #artistMemo = new Map<string, string>();
  readonly #plainBase = new Set<string>();
  /** Name keys two rows with different values share (a names-only catalog): never matched. */
  readonly #ambiguous = new Set<string>();

  constructor(path: string, options: MatchOptions = {}) {
    this.path = path;
    this.columnMap = options.columnMap ?? {};
    this.inferredScales = options.scales;
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
      ambiguous_names: 0,
      columns: { id: null, title: null, artists: null },
      features: [],
      feature_scales: {},
      bytes: 0,
    };
  }

  /** Takes the header record: resolves the columns (or throws naming what is missing). */
  setHeader(record: string[]): void {
    this.header = record;
    const cols = resolveColumns(record, this.path, this.columnMap);
    this.cols = cols;
    const cell = (i: number) => i >= 0 ? record[i]!.replace(/^\uFEFF/, "").trim() : null;
    this.stats.columns = {
      id: cell(cols.id),
      title: cell(cols.title),
      artists: cell(cols.artists),
    };
    this.stats.features = [];
    this.stats.feature_scales = {};
    FEATURE_COLUMNS.forEach((name, i) => {
      const scale = cols.scales[i] ?? this.inferredScales?.[i] ?? "unit";
      this.scales[i] = scale;
      this.divisors[i] = scale === "percent" ? 100 : 1;
      this.textOnly[i] = scale === "note" || scale === "mode" ? 1 : 0;
      if (cols.features[i]! < 0) return;
      this.stats.features.push(name);
      if (scale !== "unit") this.stats.feature_scales[name] = scale;
    });
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
    if (isMissingCell(raw)) {
      this.values[i] = NaN;
      return undefined;
    }
    if (this.textOnly[i]) {
      const scale = this.scales[i];
      const v = scale === "note" ? pitchClass(raw) : modeValue(raw);
      if (v === undefined) return this.#textReason(i);
      this.values[i] = v;
      return undefined;
    }
    return this.featureValue(i, Number(raw));
  }

  /** Why a note-name or Major/Minor cell was refused. */
  #textReason(i: number): string {
    return this.scales[i] === "note" ? "key is not a note name" : "mode is not Major/Minor";
  }

  /** As {@link featureFromText}, for a number already read (a percentage not yet divided). */
  featureValue(i: number, n: number): string | undefined {
    if (this.textOnly[i]) return this.#textReason(i);
    if (this.divisors[i] !== 1) n /= this.divisors[i]!;
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
        if (!this.wantedKeys.has(key) || this.#ambiguous.has(key)) continue;
        if (c.id < 0 && this.byName.has(key)) {
          // A catalog of names only has no id to tell two rows of one (title, artist) apart:
          // the same values are one track listed twice, different ones are never a match.
          features ??= this.toFeatures();
          if (!sameFeatures(this.byName.get(key)!.features, features)) {
            this.byName.delete(key);
            this.#ambiguous.add(key);
            // counted once per (title, artist) listed twice: a base-title key is only a fallback
            if (kind === "f") this.stats.ambiguous_names++;
          }
          continue;
        }
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

/** Whether two feature sets hold the same values. */
function sameFeatures(a: AudioFeatures, b: AudioFeatures): boolean {
  return FEATURE_COLUMNS.every((f) => a[f] === b[f]);
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
    if (x !== x || m.textOnly[k]) {
      // Not a plain decimal (or quoted), or a note name / Major-Minor column: exactly what the
      // text reader does.
      const reason = m.featureFromText(k, fieldText(v, ci).trim());
      if (reason) return reason;
      if (!Number.isNaN(values[k]!)) any = true;
      continue;
    }
    if (m.divisors[k] !== 1) x /= m.divisors[k]!;
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
