/**
 * What an import of the history fixtures must store, computed straight from their JSON without
 * the importer: distinct streams (end time and what was played) per content type.
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The privacy-export fixtures (../shared/fixtures/spotify/history). */
export const HISTORY: string = fileURLToPath(
  new URL("../../shared/fixtures/spotify/history/", import.meta.url),
);

/** A row of an export file. */
export type Raw = Record<string, unknown>;

/** Distinct streams per content type of `files`, computed from the JSON without the importer. */
export function expectedStreams(files: string[]): Record<string, number> {
  const set = (r: Raw, k: string) => r[k] !== null && r[k] !== undefined && r[k] !== "";
  const kinds = new Map<string, string>();
  for (const name of files) {
    const raw = JSON.parse(Deno.readTextFileSync(join(HISTORY, name))) as Raw[];
    for (const r of raw) {
      let kind: string;
      let when: string;
      let what: string;
      if ("ts" in r) {
        when = new Date(String(r.ts)).toISOString();
        const uri = r.spotify_track_uri ?? r.spotify_episode_uri ?? r.audiobook_chapter_uri;
        kind = set(r, "spotify_track_uri")
          ? "track"
          : set(r, "spotify_episode_uri")
          ? "episode"
          : set(r, "audiobook_uri") || set(r, "audiobook_chapter_uri")
          ? "audiobook"
          : set(r, "master_metadata_track_name")
          ? "track"
          : set(r, "episode_name")
          ? "episode"
          : "unknown";
        what = set(r, "spotify_track_uri") || set(r, "spotify_episode_uri") ||
            set(r, "audiobook_chapter_uri")
          ? String(uri)
          : `${kind}:${r.master_metadata_album_artist_name ?? r.episode_show_name ?? ""}:${
            r.master_metadata_track_name ?? r.episode_name ?? r.audiobook_chapter_title ?? ""
          }`;
      } else {
        when = new Date(`${String(r.endTime).replace(" ", "T")}:00Z`).toISOString();
        kind = set(r, "audiobookName") || set(r, "chapterName")
          ? "audiobook"
          : set(r, "episodeName") || set(r, "podcastName")
          ? "episode"
          : set(r, "trackName") || set(r, "artistName")
          ? "track"
          : "unknown";
        what = `${kind}:${r.artistName ?? r.podcastName ?? r.authorName ?? ""}:${
          r.trackName ?? r.episodeName ?? r.chapterName ?? ""
        }`;
      }
      kinds.set(`${when}|${what}`, kind);
    }
  }
  const out: Record<string, number> = {};
  for (const kind of kinds.values()) out[kind] = (out[kind] ?? 0) + 1;
  return out;
}
