/**
 * Fetching the streams of a run, one after the other — shared by the fetch step (which keeps
 * the rows in the run folder) and the Deno Deploy entry (which keeps them in memory).
 *
 * A stream Spotify refuses for a missing scope, or any stream once the app's daily quota is used
 * up, is stopped for the run with a warning (its rows empty, `skipped` saying why); the others go
 * on. When every stream is stopped, the first cause is thrown.
 * @module
 */

import type { SourceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { MissingScopeError, QuotaExceededError } from "../spotify/top_tracks.ts";
import type { Row, StreamDef, StreamFetchContext, StreamFetchResult } from "./stream.ts";

/** Options of {@link fetchStreams}: what each stream's fetcher gets, and the run's streams. */
export interface FetchStreamsOptions extends Omit<StreamFetchContext, "cursor" | "now"> {
  /**
   * Shared by every account of the run: once one meets the app's daily quota, the others'
   * streams stop too (the quota is the app's, not the user's).
   */
  shared?: { quota?: QuotaExceededError };
  streams: readonly StreamDef[];
  /** The stream's cursor for the user (streams with a cursor only). */
  cursorOf(stream: StreamDef, log: Logger): Promise<string | undefined>;
}

/** One stream's fetch. */
export interface FetchedStream extends StreamFetchResult {
  stream: StreamDef;
  rows: Row[];
  /** Why the stream was stopped for the run (missing scope, daily quota), if it was. */
  skipped?: string;
}

/**
 * Fetches each stream; warnings (and stopped streams) are in the results.
 * @throws the first stop's error when every stream was stopped; any other error as it is.
 */
export async function fetchStreams(options: FetchStreamsOptions): Promise<FetchedStream[]> {
  const { streams, log } = options;
  const out: FetchedStream[] = [];
  const stopped: SourceError[] = [];
  const shared = options.shared ?? {};
  for (const stream of streams) {
    const streamLog = log.child({ stream: stream.name });
    try {
      if (shared.quota) throw shared.quota;
      const cursor = stream.cursor ? await options.cursorOf(stream, streamLog) : undefined;
      const fetcher = await stream.fetcher();
      // the fetcher's context is these options (what it does not read is ignored)
      const result = await fetcher({ ...options, log: streamLog, cursor, now: () => new Date() });
      out.push({ stream, ...result });
    } catch (error) {
      if (!(error instanceof MissingScopeError || error instanceof QuotaExceededError)) throw error;
      if (error instanceof QuotaExceededError) shared.quota ??= error;
      stopped.push(error);
      const message = `${stream.name} stopped for this run: ${error.message}`;
      streamLog.warn(message);
      out.push({
        stream,
        rows: [],
        counts: { stopped: 1 },
        text: message,
        warnings: [message],
        skipped: error.message,
      });
    }
  }
  if (stopped.length === streams.length && stopped[0]) throw stopped[0];
  return out;
}
