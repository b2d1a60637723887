/**
 * The fetch step: each stream of the run from the Spotify Web API (source `api`) or from the
 * bundled samples (source `sample`, local profile only). Writes the raw pages to `fetch/raw/` and
 * each stream's rows to `fetch/<stream file>` ({@link StreamRows}), every row with the user's id.
 *
 * A stream Spotify refuses for a missing scope, or any stream once the app's daily quota is used
 * up, is stopped for the run with a warning (its file says why and has no rows); the others go
 * on. When every stream of the run is stopped, the step fails with the first cause.
 * @module
 */

import { SourceError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Config } from "../config.ts";
import { openSpotifyClient, type SpotifyClient } from "../spotify/client.ts";
import { MissingScopeError, QuotaExceededError } from "../spotify/top_tracks.ts";
import { advanceCursor, readCursor } from "../state.ts";
import { type StreamRows, writeStreamRows } from "../streams/handoff.ts";
import { SAMPLE_USER } from "../streams/names.ts";
import { streamDefs } from "../streams/registry.ts";
import type { StreamDef, StreamFetchResult } from "../streams/stream.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

export { SAMPLE_USER };

/** Runs the fetch step. */
export async function fetchStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, signal } = ctx;
  const source = config.spotify.source;
  let client: SpotifyClient | undefined;
  let userId = SAMPLE_USER;
  if (source === "api") {
    client = await openSpotifyClient(config, { log });
    userId = await client.userId({ signal });
  } else {
    log.warn(
      `Using the bundled sample data (data/), not your Spotify data: no token store at ${config.spotify.tokensFile} (run \`deno task auth\`) or SPOTIFY_SOURCE=sample`,
    );
    run.warn("fetch used the bundled sample data, not Spotify data");
  }

  const outputs: string[] = [];
  const counts: Record<string, number> = { rows: 0 };
  const texts: string[] = [];
  const stopped: SourceError[] = [];
  const streams = streamDefs(run.streams);
  let quota: QuotaExceededError | undefined;
  for (const stream of streams) {
    const streamLog = log.child({ stream: stream.name });
    let result: StreamFetchResult;
    let skipped: string | undefined;
    try {
      if (quota) throw quota;
      const cursor = stream.cursor
        ? await cursorOf(config, stream, userId, { log: streamLog, runId: run.id })
        : undefined;
      const fetcher = await stream.fetcher();
      result = await fetcher({
        config,
        run,
        log: streamLog,
        signal,
        source,
        client,
        userId,
        cursor,
        saveRaw: async (name, page) => {
          outputs.push(await run.writeJson("fetch", `raw/${name}`, page));
        },
        now: () => new Date(),
      });
    } catch (error) {
      if (!(error instanceof MissingScopeError || error instanceof QuotaExceededError)) throw error;
      if (error instanceof QuotaExceededError) quota = error;
      stopped.push(error);
      skipped = error.message;
      const message = `${stream.name} stopped for this run: ${error.message}`;
      streamLog.warn(message);
      run.warn(message);
      result = {
        rows: [],
        counts: { stopped: 1 },
        text: `${stream.name}: ${message}`,
        warnings: [],
      };
    }
    for (const w of result.warnings) run.warn(w);
    const file: StreamRows = {
      stream: stream.name,
      run_id: run.id,
      snapshot_date: run.snapshotDate,
      source,
      user_id: userId,
      ...(skipped === undefined ? {} : { skipped }),
      rows: result.rows,
    };
    outputs.push(await writeStreamRows(run, "fetch", stream, file));
    counts.rows! += result.rows.length;
    counts[`${stream.name}_rows`] = result.rows.length;
    for (const [k, v] of Object.entries(result.counts)) {
      counts[`${stream.name}_${k}`] = v;
      if (k === "possible_gap") counts.possible_gap = (counts.possible_gap ?? 0) + v;
    }
    texts.push(result.text);
  }
  if (stopped.length === streams.length && stopped[0]) throw stopped[0];
  return {
    counts,
    summary: { text: texts.join("\n"), source, user_id: userId, streams: run.streams },
    outputs,
  };
}

/**
 * The stream's cursor for the user: from the pipeline state, else (state lost, or the first poll
 * after an upgrade) the newest one in the lake's keys, which is then saved as the state.
 */
async function cursorOf(
  config: Config,
  stream: StreamDef,
  userId: string,
  options: { log: Logger; runId: string },
): Promise<string | undefined> {
  const { log } = options;
  const stored = await readCursor(config, stream.name, userId, { log });
  if (stored !== undefined || !stream.cursor) return stored;
  const { openObjectStore } = await import("../store/open.ts");
  let keys: string[];
  try {
    const store = await openObjectStore(config, { log });
    try {
      keys = (await store.list(stream.cursor.lakePrefix(userId))).map((o) => o.key);
    } finally {
      await store.close();
    }
  } catch (error) {
    log.warn(
      `No ${stream.name} cursor in the pipeline state and the lake cannot be listed (${
        (error as Error).message.split("\n")[0]
      }): fetching without one (plays already stored are dropped again by dbt)`,
    );
    return undefined;
  }
  let newest: string | undefined;
  for (const key of keys) {
    const value = stream.cursor.fromKey(key);
    if (value !== undefined && (newest === undefined || value > newest)) newest = value;
  }
  if (newest !== undefined) {
    log.info(`${stream.name}: cursor recovered from the lake (${keys.length} file(s)): ${newest}`);
    await advanceCursor(config, stream.name, userId, newest, options);
  }
  return newest;
}
