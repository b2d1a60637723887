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
 * Rows with out-of-range values are rejected and counted; a repeated id keeps its first row and
 * is counted.
 * @module
 */

import { CsvError, Parser } from "csv-parse";
import { ConfigError } from "../errors.ts";
import { type AudioFeatures, FEATURE_COLUMNS, type FeatureName } from "../types.ts";
import { FingerprintSet } from "./_id_set.ts";
import { artistKey, joinKey, titleKeys } from "./normalize.ts";
import {
  type CatalogStats,
  checkFeature,
  extractTrackId,
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
interface Columns {
  id: number;
  title: number;
  artists: number;
  features: number[];
  /** Fewest cells a row needs to reach every column used. */
  minCells: number;
}

function resolveColumns(header: string[], file: string): Columns {
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
    const found = header.map((h) => h.trim() === "" ? "(blank)" : h.trim()).join(", ");
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
function primaryCandidates(cell: string | undefined): string[] {
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
}

/** An accepted catalog row, as given to {@link ScanCatalogOptions.onRow}. */
export interface CatalogRow {
  id: string | null;
  title: string | null;
  artists: string | null;
  features: AudioFeatures;
  line: number;
}

/** Options of {@link scanCatalog}. */
export interface ScanCatalogOptions {
  /** Track ids wanted. */
  ids?: Iterable<string>;
  /** (title, primary artist) pairs wanted by name. */
  names?: Iterable<NameQuery>;
  signal?: AbortSignal;
  /** Called for every accepted row (e.g. to build an index of the whole catalog). */
  onRow?: (row: CatalogRow) => void;
  /** Rejected-row examples kept in the stats (default 5). */
  maxExamples?: number;
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
}

const ARTIST_MEMO_LIMIT = 50_000;

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
  const { signal, onRow, maxExamples = 5 } = options;
  const wantedIds = new Set(options.ids ?? []);
  const wantedKeys = new Set<string>();
  const wantedArtists = new Set<string>();
  for (const { title, artist } of options.names ?? []) {
    const a = artistKey(artist);
    const t = titleKeys(title);
    if (!a || !t.full) continue;
    wantedArtists.add(a);
    wantedKeys.add(joinKey("f", t.full, a));
    wantedKeys.add(joinKey("b", t.base, a));
  }

  const stats: CatalogStats = {
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
  const byId = new Map<string, FeaturesHit>();
  const byName = new Map<string, FeaturesHit>();
  const seen = new FingerprintSet(1 << 14);
  const artistMemo = new Map<string, string>();
  const plainBase = new Set<string>();
  let header: string[] | null = null;
  let cols: Columns | null = null;
  const values: (number | null)[] = new Array(FEATURE_COLUMNS.length).fill(null);

  const reject = (reason: string, line: number) => {
    stats.rejected++;
    stats.rejected_by_reason[reason] = (stats.rejected_by_reason[reason] ?? 0) + 1;
    if (stats.rejected_examples.length < maxExamples) {
      stats.rejected_examples.push(`line ${line}: ${reason}`);
    }
  };
  const keyOfArtist = (name: string) => {
    let k = artistMemo.get(name);
    if (k === undefined) {
      if (artistMemo.size >= ARTIST_MEMO_LIMIT) artistMemo.clear();
      k = artistKey(name);
      artistMemo.set(name, k);
    }
    return k;
  };
  const toFeatures = (): AudioFeatures => {
    const f = {} as AudioFeatures;
    FEATURE_COLUMNS.forEach((name, i) => f[name] = values[i]!);
    return f;
  };

  const onRecord = (record: string[], line: number): void => {
    if (header === null) {
      header = record;
      cols = resolveColumns(record, path);
      stats.columns = {
        id: cols.id >= 0 ? record[cols.id]!.trim() : null,
        title: cols.title >= 0 ? record[cols.title]!.trim() : null,
        artists: cols.artists >= 0 ? record[cols.artists]!.trim() : null,
      };
      return;
    }
    const c = cols!;
    stats.rows++;
    if (record.length < c.minCells) {
      return reject(`row has ${record.length} cells, header has ${header.length}`, line);
    }
    let any = false;
    for (let i = 0; i < values.length; i++) {
      const ci = c.features[i]!;
      const raw = ci < 0 ? "" : record[ci]!.trim();
      if (raw === "") {
        values[i] = null;
        continue;
      }
      const n = Number(raw);
      const reason = checkFeature(FEATURE_COLUMNS[i]!, n);
      if (reason) return reject(reason, line);
      values[i] = n;
      any = true;
    }
    if (!any) return reject("no feature values", line);

    const id = c.id >= 0 ? extractTrackId(record[c.id]) : null;
    if (id === null) stats.without_id++;
    else if (!seen.add(id)) {
      stats.duplicate_ids++;
      return;
    }
    stats.accepted++;

    let features: AudioFeatures | undefined;
    if (id !== null && wantedIds.has(id) && !byId.has(id)) {
      features = toFeatures();
      byId.set(id, { features });
    }
    if (wantedArtists.size && c.title >= 0 && c.artists >= 0) {
      const artistsCell = record[c.artists];
      for (const candidate of primaryCandidates(artistsCell)) {
        const a = keyOfArtist(candidate);
        if (!a || !wantedArtists.has(a)) continue;
        const title = record[c.title]!;
        const t = titleKeys(title);
        if (!t.full) break;
        // For base keys, a row without a version suffix ("Song") beats an earlier versioned
        // one ("Song - Live"): it is the recording a versioned title most likely refers to.
        const unversioned = t.full === t.base;
        for (const kind of ["f", "b"] as const) {
          const key = joinKey(kind, kind === "f" ? t.full : t.base, a);
          if (!wantedKeys.has(key)) continue;
          if (byName.has(key) && (kind === "f" || !unversioned || plainBase.has(key))) continue;
          if (kind === "b" && unversioned) plainBase.add(key);
          features ??= toFeatures();
          const name: NameMatchDetail = {
            catalog_track_id: id,
            catalog_track_name: title.trim(),
            catalog_artists: artistsCell!.trim(),
            key: kind === "f" ? "full" : "base",
            file: path,
            line,
          };
          byName.set(key, { features, name });
        }
      }
    }
    if (onRow) {
      onRow({
        id,
        title: c.title >= 0 ? record[c.title]! : null,
        artists: c.artists >= 0 ? record[c.artists]! : null,
        features: features ?? toFeatures(),
        line,
      });
    }
  };

  await streamCsv(path, {
    signal,
    onRecord,
    onBytes: (n) => stats.bytes += n,
  });
  if (header === null) {
    throw new ConfigError(
      `Cannot read audio features from "${path}": the file is empty (no header row)`,
      { hint: "Point AUDIO_FEATURES_CSV at an audio-features CSV (see README, enrich)." },
    );
  }
  return { stats, byId, byName };
}

interface StreamCsvOptions {
  signal?: AbortSignal;
  onRecord: (record: string[], line: number) => void;
  onBytes: (n: number) => void;
}

/** Feeds the file through csv-parse chunk by chunk, calling `onRecord` synchronously per row. */
async function streamCsv(path: string, options: StreamCsvOptions): Promise<void> {
  const { signal, onRecord, onBytes } = options;
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
    throw error;
  }
  if (!info.isFile) {
    throw new ConfigError(`Cannot read audio features from "${path}": not a file`);
  }

  let failure: unknown;
  let lastLine = 1;
  const parser = new Parser({
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    // An unclosed quote would otherwise swallow the rest of the file into one field.
    max_record_size: 1 << 20,
    on_record: (record: string[], context) => {
      lastLine = context.lines;
      onRecord(record, context.lines);
      return null;
    },
  });
  const finished = new Promise<void>((resolve) => {
    parser.once("finish", () => resolve());
    parser.once("error", (error) => {
      failure ??= error;
      resolve();
    });
  });
  const file = await Deno.open(path, { read: true });
  try {
    for await (const chunk of file.readable) {
      if (failure !== undefined) break;
      signal?.throwIfAborted();
      onBytes(chunk.byteLength);
      if (!parser.write(chunk) && failure === undefined) {
        await new Promise<void>((resolve) => {
          parser.once("drain", resolve);
          parser.once("error", () => resolve());
        });
      }
    }
    if (failure === undefined) {
      parser.end();
      await finished;
    }
  } finally {
    parser.destroy();
    try {
      file.close();
    } catch (error) {
      // The readable stream closes the file when it ends or is cancelled.
      if (!(error instanceof Deno.errors.BadResource)) failure ??= error;
    }
  }
  if (failure !== undefined) {
    if (failure instanceof ConfigError) throw failure;
    if (failure instanceof CsvError) {
      throw new ConfigError(
        `Cannot read audio features from "${path}": malformed CSV near line ${lastLine} (${failure.message})`,
      );
    }
    throw failure;
  }
}
