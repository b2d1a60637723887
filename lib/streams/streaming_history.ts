/**
 * `streaming_history`: every stream of Spotify's privacy export (`deno task import`), one row per
 * (user_id, ts, what was played), with the export's fields as Spotify documents them — except the
 * ones never read (`ip_addr`, `ip_addr_decrypted`, `user_agent_decrypted`, `username`).
 *
 * Lake key `streaming_history/user_id=<user>/month=YYYY-MM/<oldest>_<newest>_<digest>.parquet`,
 * one file per user and UTC month of `ts` per import (the digest, of the rows' keys, tells two
 * imports' files of one month apart; the same rows always give the same key). Raw table
 * `raw.streaming_history`. Only the import schedule runs it.
 * @module
 */

import { sha256HexSync } from "../sha256.ts";
import { FEATURE_SPECS, USER_ID } from "./_shared_columns.ts";
import type { ColumnSpec } from "./columns.ts";
import { compactStamp } from "./recently_played.ts";
import { keySafeUser, type Row, type StreamDef } from "./stream.ts";

const text = (name: string, description: string): ColumnSpec => ({
  name,
  kind: "utf8",
  nullable: true,
  description,
});
const flag = (name: string, description: string): ColumnSpec => ({
  name,
  kind: "bool",
  nullable: true,
  description,
});

/** The streaming-history columns, in file order. */
export const STREAMING_HISTORY_COLUMNS: readonly ColumnSpec[] = [
  USER_ID,
  {
    name: "ts",
    kind: "timestamp",
    nullable: false,
    description:
      "When the stream ended (UTC), as Spotify documents the export's `ts`; account-data files give it to the minute (`endTime`).",
  },
  {
    name: "ms_played",
    kind: "int32",
    nullable: false,
    description: "How long the stream played, in milliseconds.",
  },
  {
    name: "content_type",
    kind: "utf8",
    nullable: false,
    description:
      "track, episode, audiobook, or unknown (a row whose every metadata field is null).",
  },
  text(
    "uri",
    "What was played: the track, episode or audiobook chapter URI (null in account-data files, which have names only).",
  ),
  text("track_id", "Spotify track id: from the track URI, or resolved by name (see track_match)."),
  text(
    "track_match",
    "How track_id was found: uri (the export's URI), name (account data: an unambiguous title and primary-artist match against known tracks), or null.",
  ),
  text("track_name", "Track name."),
  text("artist_name", "The track's (primary) artist name, as the export gives it."),
  text("album_name", "Album name."),
  text("episode_name", "Podcast episode name."),
  text("show_name", "Podcast show name."),
  text("audiobook_uri", "Audiobook URI."),
  text("audiobook_title", "Audiobook title."),
  text("audiobook_chapter_title", "Audiobook chapter title."),
  text("platform", "The platform Spotify reports (e.g. android, ios, web_player)."),
  text("conn_country", "Country code of the connection."),
  text("reason_start", "Why the stream started (trackdone, clickrow, ...)."),
  text("reason_end", "Why the stream ended (trackdone, endplay, fwdbtn, ...)."),
  flag("shuffle", "Whether shuffle was on."),
  flag("skipped", "Whether the user skipped to the next item."),
  flag("offline", "Whether the stream played offline."),
  {
    name: "offline_timestamp",
    kind: "timestamp",
    nullable: true,
    description:
      "When an offline stream started (UTC; the files mix seconds and milliseconds, normalised), null when none.",
  },
  flag("incognito_mode", "Whether the stream played in a private session."),
  text(
    "export_file",
    "The export file the row came from (its name, or `<zip>!<entry>` inside a zip; no local folders).",
  ),
  {
    name: "run_id",
    kind: "utf8",
    nullable: false,
    description: "The import run that produced the row.",
  },
  ...FEATURE_SPECS,
];

const CANONICAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A timestamp as `Date.toISOString()` gives it (returned as it is when it already is). */
function canonical(value: unknown): string {
  const s = String(value);
  return s.length === 24 && CANONICAL.test(s) ? s : new Date(s).toISOString();
}

/** The UTC month (`YYYY-MM`) of a timestamp. */
export function monthOf(iso: string): string {
  return canonical(iso).slice(0, 7);
}

/**
 * What identifies one stream within a user's history: its end and what was played (the URI — the
 * audiobook's when there is no chapter — or for name-only rows the content type and names). dbt's
 * `stream_key` (stg_spotify__streaming_history) is the same in SQL.
 */
export function streamKeyOf(row: Row): string {
  return `${canonical(row.ts)}\u0000${
    row.uri ?? row.audiobook_uri ??
      `names:${row.content_type}:${row.artist_name ?? row.show_name ?? row.audiobook_title ?? ""}:${
        row.track_name ?? row.episode_name ?? row.audiobook_chapter_title ?? ""
      }`
  }`;
}

/** The `streaming_history` stream. */
export const STREAMING_HISTORY: StreamDef = {
  name: "streaming_history",
  description: "One row per stream of the privacy export (user_id, ts, uri or names).",
  columns: STREAMING_HISTORY_COLUMNS,
  key: ["user_id", "ts", "uri", "track_name", "artist_name"],
  schemaVersion: "streaming_history/1",
  runMetadata: ["run_id"],
  features: true,
  schedules: ["import"],
  files: { rows: "streaming_history.json", coverage: "streaming_history_coverage.json" },
  rawTable: "streaming_history",
  partition(rows) {
    const groups = new Map<string, Row[]>();
    for (const row of rows) {
      const id = `${keySafeUser(String(row.user_id))}\n${monthOf(String(row.ts))}`;
      let list = groups.get(id);
      if (!list) groups.set(id, list = []);
      list.push(row);
    }
    return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, list]) => {
      const [user, month] = id.split("\n") as [string, string];
      const keys = list.map(streamKeyOf).sort();
      const digest = sha256HexSync(keys.join("\n")).slice(0, 12);
      const times = list.map((r) => canonical(r.ts)).sort();
      return {
        key: `streaming_history/user_id=${user}/month=${month}/${compactStamp(times[0]!)}_${
          compactStamp(times.at(-1)!)
        }_${digest}.parquet`,
        rows: list,
      };
    });
  },
  fetcher: () =>
    Promise.reject(
      new Error("streaming_history is imported from a privacy export (`deno task import`)"),
    ),
};
