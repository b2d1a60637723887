/**
 * Every stream's definition, by name, and the streams of a run.
 * @module
 */

import { ConfigError } from "../errors.ts";
import { type Schedule, STREAM_NAMES, type StreamName } from "./names.ts";
import { RECENTLY_PLAYED } from "./recently_played.ts";
import type { StreamDef } from "./stream.ts";
import { STREAMING_HISTORY } from "./streaming_history.ts";
import { TOP_ARTISTS } from "./top_artists.ts";
import { TOP_TRACKS } from "./top_tracks.ts";

export { STREAM_NAMES, type StreamName };

/** The definitions, by name. */
export const STREAMS: Readonly<Record<StreamName, StreamDef>> = {
  top_tracks: TOP_TRACKS,
  recently_played: RECENTLY_PLAYED,
  top_artists: TOP_ARTISTS,
  streaming_history: STREAMING_HISTORY,
};

/** The definitions of `names`, in the registry's order. */
export function streamDefs(names: readonly StreamName[]): StreamDef[] {
  return STREAM_NAMES.filter((n) => names.includes(n)).map((n) => STREAMS[n]);
}

/** The streams of `selected` that `schedule` runs. */
export function streamsFor(schedule: Schedule, selected: readonly StreamName[]): StreamName[] {
  return STREAM_NAMES.filter((n) =>
    selected.includes(n) && STREAMS[n].schedules.includes(schedule)
  );
}

/**
 * Parses `--streams a,b` (names from {@link STREAM_NAMES}).
 * @throws {ConfigError} naming the flag and the names it accepts.
 */
export function parseStreamsFlag(value: string, flag = "--streams"): StreamName[] {
  const names = value.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(STREAM_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || bad.length) {
    throw new ConfigError(
      `${flag} "${value}": ${
        bad.length ? `unknown stream(s) ${bad.join(", ")}` : "no stream named"
      }; expected a comma-separated list of ${STREAM_NAMES.join(", ")}`,
    );
  }
  return STREAM_NAMES.filter((n) => names.includes(n));
}
