/**
 * The names of the pipeline's streams (light: the config reads them; the definitions live in
 * `lib/streams/registry.ts`).
 * @module
 */

/** Every stream, in the order the steps process them. */
export const STREAM_NAMES = [
  "top_tracks",
  "recently_played",
  "top_artists",
  "streaming_history",
] as const;
/** A stream's name. */
export type StreamName = typeof STREAM_NAMES[number];

/**
 * Which schedule runs a stream: the daily pipeline runs the collected streams, `poll` the poll
 * streams, `import` the privacy-export history (`deno task import`).
 */
export type Schedule = "daily" | "poll" | "import";

/** Every schedule. */
export const SCHEDULES: readonly Schedule[] = ["daily", "poll", "import"];

/** The user id of the bundled sample data. */
export const SAMPLE_USER = "sample";
