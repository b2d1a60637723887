/**
 * The fetch step: each stream of the run from the Spotify Web API (source `api`) or from the
 * bundled samples (source `sample`, local profile only). Writes the raw pages to `fetch/raw/` and
 * each stream's rows to `fetch/<stream file>` ({@link StreamRows}), every row with the user's id.
 *
 * A stream Spotify refuses for a missing scope, or any stream once the app's daily quota is used
 * up, is stopped for the run with a warning (its file says why and has no rows; see
 * `lib/streams/fetch_streams.ts`); the others go on.
 * @module
 */

import type { Logger } from "../log.ts";
import type { Config } from "../config.ts";
import { openSpotifyClient, type SpotifyClient } from "../spotify/client.ts";
import { advanceCursor, readCursor } from "../state.ts";
import { newestCursorInKeys } from "../streams/cursor.ts";
import { fetchStreams } from "../streams/fetch_streams.ts";
import { type StreamRows, writeStreamRows } from "../streams/handoff.ts";
import { SAMPLE_USER } from "../streams/names.ts";
import { streamDefs } from "../streams/registry.ts";
import type { StreamDef } from "../streams/stream.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

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
  const fetched = await fetchStreams({
    config,
    log,
    signal,
    source,
    client,
    userId,
    runId: run.id,
    snapshotDate: run.snapshotDate,
    streams: streamDefs(run.streams),
    cursorOf: (stream, streamLog) =>
      cursorOf(config, stream, userId, { log: streamLog, runId: run.id }),
    saveRaw: async (name, page) => {
      outputs.push(await run.writeJson("fetch", `raw/${name}`, page));
    },
  });
  for (const result of fetched) {
    const { stream } = result;
    for (const w of result.warnings) run.warn(w);
    const file: StreamRows = {
      stream: stream.name,
      run_id: run.id,
      snapshot_date: run.snapshotDate,
      source,
      user_id: userId,
      ...(result.skipped === undefined ? {} : { skipped: result.skipped }),
      rows: result.rows,
    };
    outputs.push(await writeStreamRows(run, "fetch", stream, file));
    counts.rows! += result.rows.length;
    counts[`${stream.name}_rows`] = result.rows.length;
    for (const [k, v] of Object.entries(result.counts)) {
      counts[`${stream.name}_${k}`] = v;
      if (k === "possible_gap") counts.possible_gap = (counts.possible_gap ?? 0) + v;
    }
  }
  const texts = fetched.map((r) => r.text);
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
  const newest = newestCursorInKeys(stream, keys);
  if (newest !== undefined) {
    log.info(`${stream.name}: cursor recovered from the lake (${keys.length} file(s)): ${newest}`);
    await advanceCursor(config, stream.name, userId, newest, options);
  }
  return newest;
}
