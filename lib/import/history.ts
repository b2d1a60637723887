/**
 * Spotify's privacy-export streaming history, read and normalised: the two export kinds, told
 * apart by their content (not their names), become one row shape.
 *
 * - **extended** (`Streaming_History_Audio_*.json`, `Streaming_History_Video_*.json`, the older
 *   `endsong_*.json`): `ts` (UTC end of the stream), `ms_played`, track / episode / audiobook
 *   fields, `platform`, `conn_country`, `reason_*`, `shuffle`, `skipped`, `offline`,
 *   `offline_timestamp` (seconds in newer files, milliseconds or 0 in older ones),
 *   `incognito_mode`;
 * - **account** (`StreamingHistory*.json`, `_music_`, `_podcast_`, `_audiobook_`): `endTime`
 *   (`YYYY-MM-DD HH:MM`, UTC without a zone), names only, no ids.
 *
 * Never read, so never stored: `ip_addr`, `ip_addr_decrypted`, `user_agent_decrypted`,
 * `username`. Rows repeating a natural key (user, `ts`, uri — or the names where there is no uri)
 * are one stream: the one with the longest `ms_played` is kept.
 * @module
 */

import { ConfigError } from "../errors.ts";
import { streamKeyOf } from "../streams/streaming_history.ts";

/** Which export a file belongs to. */
export type HistoryFormat = "extended" | "account";

/** What a stream was of. */
export type ContentType = "track" | "episode" | "audiobook" | "unknown";

/** One normalised stream of the export (the `streaming_history` row before run columns). */
export interface HistoryRow {
  user_id: string;
  /** UTC end of the stream (ISO 8601, seconds precision as Spotify gives it). */
  ts: string;
  ms_played: number;
  content_type: ContentType;
  track_uri: string | null;
  track_id: string | null;
  track_name: string | null;
  artist_name: string | null;
  album_name: string | null;
  episode_uri: string | null;
  episode_name: string | null;
  show_name: string | null;
  audiobook_uri: string | null;
  audiobook_title: string | null;
  audiobook_chapter_uri: string | null;
  audiobook_chapter_title: string | null;
  platform: string | null;
  conn_country: string | null;
  reason_start: string | null;
  reason_end: string | null;
  shuffle: boolean | null;
  skipped: boolean | null;
  offline: boolean | null;
  /** When an offline stream started playing (ISO 8601), or null (0 / absent in the file). */
  offline_timestamp: string | null;
  incognito_mode: boolean | null;
  /** The file the row came from (its name, or `zip!path` inside a zip). */
  source_file: string;
}

/** Counts of one file. */
export interface HistoryCounts {
  /** Rows in the file. */
  rows: number;
  tracks: number;
  episodes: number;
  audiobooks: number;
  /** Rows with every metadata field null (kept as `unknown`). */
  unknown: number;
}

/** A file read: its format, rows and counts. */
export interface HistoryFile {
  format: HistoryFormat;
  rows: HistoryRow[];
  counts: HistoryCounts;
}

/** Why a file cannot be read as a streaming history. */
export type HistoryProblem = "not_json" | "not_history" | "bad_value" | "unreadable";

/** The error of a file that is not a readable export: names the file (and the row). */
export class HistoryFileError extends ConfigError {
  override name = "HistoryFileError";
  readonly problem: HistoryProblem;
  constructor(message: string, problem: HistoryProblem = "unreadable") {
    super(message);
    this.problem = problem;
  }
}

const EXTENDED_MARKERS = ["ts", "ms_played"];
const ACCOUNT_MARKERS = ["endTime", "msPlayed"];

/**
 * The export a parsed JSON value is, from its content: an array whose objects carry `ts` and
 * `ms_played` (extended) or `endTime` and `msPlayed` (account data); `undefined` for anything else
 * (playlists, the user's profile, ...). An empty array is neither.
 */
export function detectHistoryFormat(value: unknown): HistoryFormat | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const sample = value.slice(0, 20);
  const all = (keys: string[]) =>
    sample.every((r) => r !== null && typeof r === "object" && keys.every((k) => k in r));
  if (all(EXTENDED_MARKERS)) return "extended";
  if (all(ACCOUNT_MARKERS)) return "account";
  return undefined;
}

/** Options of {@link parseHistoryFile}. */
export interface ParseHistoryOptions {
  /** The file's name in messages (and in `source_file` unless `sourceFile` is given). */
  file: string;
  /** What `source_file` says (e.g. the name without the local folders). */
  sourceFile?: string;
  /** Whose history it is. */
  userId: string;
}

/**
 * Reads one export file's text. Throws a {@link HistoryFileError} naming the file for text that
 * is not JSON or not an export, and naming the row and field for a bad value (nothing of the file
 * is returned then).
 */
export function parseHistoryFile(text: string, options: ParseHistoryOptions): HistoryFile {
  const { file } = options;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const what = text.trim() === "" ? "it is empty" : (error as Error).message;
    throw new HistoryFileError(`Cannot read ${file}: not JSON (${what})`, "not_json");
  }
  const format = detectHistoryFormat(value);
  if (!format) {
    throw new HistoryFileError(
      `Cannot read ${file}: not a Spotify streaming history (expected a JSON array of streams with ${
        EXTENDED_MARKERS.join(" and ")
      }, or ${ACCOUNT_MARKERS.join(" and ")})`,
      "not_history",
    );
  }
  const counts: HistoryCounts = { rows: 0, tracks: 0, episodes: 0, audiobooks: 0, unknown: 0 };
  const rows = (value as unknown[]).map((raw, i) => {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new HistoryFileError(`Cannot read ${file}: row ${i + 1} is not an object`, "bad_value");
    }
    const at = new FieldReader(raw as Record<string, unknown>, file, i + 1);
    const row = format === "extended" ? extendedRow(at, options) : accountRow(at, options);
    counts.rows++;
    if (row.content_type === "track") counts.tracks++;
    else if (row.content_type === "episode") counts.episodes++;
    else if (row.content_type === "audiobook") counts.audiobooks++;
    else counts.unknown++;
    return row;
  });
  return { format, rows, counts };
}

function extendedRow(
  at: FieldReader,
  { file, userId, sourceFile = file }: ParseHistoryOptions,
): HistoryRow {
  const trackUri = at.uri("spotify_track_uri", "track");
  const episodeUri = at.uri("spotify_episode_uri", "episode");
  const audiobookUri = at.uri("audiobook_uri", "audiobook");
  const chapterUri = at.uri("audiobook_chapter_uri", "episode", "chapter");
  const row: HistoryRow = {
    user_id: userId,
    ts: at.timestamp("ts"),
    ms_played: at.msPlayed("ms_played"),
    content_type: trackUri
      ? "track"
      : episodeUri
      ? "episode"
      : audiobookUri || chapterUri
      ? "audiobook"
      : "unknown",
    track_uri: trackUri,
    track_id: trackUri ? trackUri.slice("spotify:track:".length) : null,
    track_name: at.text("master_metadata_track_name"),
    artist_name: at.text("master_metadata_album_artist_name"),
    album_name: at.text("master_metadata_album_album_name"),
    episode_uri: episodeUri,
    episode_name: at.text("episode_name"),
    show_name: at.text("episode_show_name"),
    audiobook_uri: audiobookUri,
    audiobook_title: at.text("audiobook_title"),
    audiobook_chapter_uri: chapterUri,
    audiobook_chapter_title: at.text("audiobook_chapter_title"),
    platform: at.text("platform"),
    conn_country: at.text("conn_country"),
    reason_start: at.text("reason_start"),
    reason_end: at.text("reason_end"),
    shuffle: at.bool("shuffle"),
    skipped: at.bool("skipped"),
    offline: at.bool("offline"),
    offline_timestamp: at.offlineTimestamp("offline_timestamp"),
    incognito_mode: at.bool("incognito_mode"),
    source_file: sourceFile,
  };
  if (row.content_type === "unknown" && (row.track_name || row.episode_name)) {
    // names without a uri: still a track or an episode
    row.content_type = row.track_name ? "track" : "episode";
  }
  return row;
}

function accountRow(
  at: FieldReader,
  { file, userId, sourceFile = file }: ParseHistoryOptions,
): HistoryRow {
  const track = at.text("trackName");
  const artist = at.text("artistName");
  const episode = at.text("episodeName");
  const show = at.text("podcastName");
  const audiobook = at.text("audiobookName");
  const chapter = at.text("chapterName");
  return {
    user_id: userId,
    ts: at.endTime("endTime"),
    ms_played: at.msPlayed("msPlayed"),
    content_type: audiobook || chapter
      ? "audiobook"
      : episode || show
      ? "episode"
      : track || artist
      ? "track"
      : "unknown",
    track_uri: null,
    track_id: null,
    track_name: track,
    artist_name: artist ?? (audiobook || chapter ? at.text("authorName") : null),
    album_name: null,
    episode_uri: null,
    episode_name: episode,
    show_name: show,
    audiobook_uri: null,
    audiobook_title: audiobook,
    audiobook_chapter_uri: null,
    audiobook_chapter_title: chapter,
    platform: null,
    conn_country: null,
    reason_start: null,
    reason_end: null,
    shuffle: null,
    skipped: null,
    offline: null,
    offline_timestamp: null,
    incognito_mode: null,
    source_file: sourceFile,
  };
}

const URI_PATTERNS = new Map<string, RegExp>();

/** `spotify:<kind>:<id>`, compiled once per kind. */
function uriPattern(kind: string): RegExp {
  let re = URI_PATTERNS.get(kind);
  if (!re) URI_PATTERNS.set(kind, re = new RegExp(`^spotify:${kind}:[0-9A-Za-z]{1,64}$`));
  return re;
}

/** Reads the fields of one row, with errors naming the file, the row and the field. */
class FieldReader {
  #raw: Record<string, unknown>;
  #file: string;
  #row: number;

  constructor(raw: Record<string, unknown>, file: string, row: number) {
    this.#raw = raw;
    this.#file = file;
    this.#row = row;
  }

  #fail(field: string, expected: string): never {
    const value = JSON.stringify(this.#raw[field]) ?? "undefined";
    throw new HistoryFileError(
      `Cannot read ${this.#file}: row ${this.#row}, "${field}" is ${
        value.slice(0, 60)
      }: expected ${expected}`,
      "bad_value",
    );
  }

  text(field: string): string | null {
    const v = this.#raw[field];
    if (v === null || v === undefined || v === "") return null;
    if (typeof v !== "string") this.#fail(field, "a string or null");
    return v.length > 1000 ? this.#fail(field, "at most 1000 characters") : v;
  }

  bool(field: string): boolean | null {
    const v = this.#raw[field];
    if (v === null || v === undefined) return null;
    if (typeof v !== "boolean") this.#fail(field, "true, false or null");
    return v;
  }

  uri(field: string, kind: string, alias?: string): string | null {
    const v = this.text(field);
    if (v === null) return null;
    const kinds = alias ? [kind, alias] : [kind];
    if (!kinds.some((k) => uriPattern(k).test(v))) {
      this.#fail(field, `a spotify:${kind}:<id> URI or null`);
    }
    return v;
  }

  msPlayed(field: string): number {
    const v = this.#raw[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      this.#fail(field, "a whole number of milliseconds ≥ 0");
    }
    return v;
  }

  timestamp(field: string): string {
    const v = this.#raw[field];
    if (typeof v !== "string" || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(v)) {
      this.#fail(field, "a UTC time such as 2023-02-25T11:20:37Z");
    }
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) this.#fail(field, "a real date and time");
    return new Date(ms).toISOString();
  }

  endTime(field: string): string {
    const v = this.#raw[field];
    if (typeof v !== "string" || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/.test(v)) {
      this.#fail(field, 'a UTC time such as "2021-08-03 22:14"');
    }
    const ms = Date.parse(`${v.replace(" ", "T")}:00Z`);
    if (Number.isNaN(ms)) this.#fail(field, "a real date and time");
    return new Date(ms).toISOString();
  }

  /** Seconds (newer files), milliseconds (older) or 0 / null (none). */
  offlineTimestamp(field: string): string | null {
    const v = this.#raw[field];
    if (v === null || v === undefined || v === 0) return null;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      this.#fail(field, "seconds or milliseconds since 1970, 0 or null");
    }
    const ms = v < 1e11 ? v * 1000 : v; // 1e11 s is the year 5138; 1e11 ms is 1973
    return new Date(Math.round(ms)).toISOString();
  }
}

/** What identifies one stream: the user, its end time and what was played. */
export function historyKey(row: HistoryRow): string {
  return `${row.user_id}\u0000${streamKeyOf({ ...row, uri: playedUri(row) })}`;
}

/** The URI of what was played: the track, episode or audiobook chapter (null for names only). */
export function playedUri(row: HistoryRow): string | null {
  return row.track_uri ?? row.episode_uri ?? row.audiobook_chapter_uri ?? null;
}

/**
 * One row per key: the one with the longest `ms_played`; among equals the smallest as JSON, so the
 * result does not depend on the order the rows (or their files) came in.
 */
export function longestPerKey<R extends { ms_played?: unknown }>(
  rows: Iterable<R>,
  keyOf: (row: R) => string,
): Map<string, R> {
  const best = new Map<string, R>();
  for (const row of rows) {
    const key = keyOf(row);
    const kept = best.get(key);
    if (
      !kept || (row.ms_played as number) > (kept.ms_played as number) ||
      (row.ms_played === kept.ms_played && JSON.stringify(row) < JSON.stringify(kept))
    ) {
      best.set(key, row);
    }
  }
  return best;
}

/**
 * One row per {@link historyKey} ({@link longestPerKey}).
 * @returns the kept rows sorted by key, and how many were dropped
 */
export function dedupeHistory(rows: readonly HistoryRow[]): {
  rows: HistoryRow[];
  duplicates: number;
} {
  const best = longestPerKey(rows, historyKey);
  const out = [...best].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  return { rows: out, duplicates: rows.length - out.length };
}
