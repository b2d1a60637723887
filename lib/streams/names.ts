/**
 * The names of the pipeline's streams (light: the config reads them; the definitions live in
 * `lib/streams/registry.ts`).
 * @module
 */

/** Every stream, in the order the steps process them. */
export const STREAM_NAMES = ["top_tracks", "recently_played", "top_artists"] as const;
/** A stream's name. */
export type StreamName = typeof STREAM_NAMES[number];

/** Which schedule runs a stream: the daily pipeline runs every stream, `poll` the poll streams. */
export type Schedule = "daily" | "poll";

/** The user id of the bundled sample data. */
export const SAMPLE_USER = "sample";
