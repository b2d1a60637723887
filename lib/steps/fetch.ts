/**
 * The fetch step: the user's top tracks for each configured time range, from the Spotify Web API
 * (source `api`) or from the bundled sample page (source `sample`, local profile only). Writes the
 * raw pages to `fetch/raw/<time_range>_<offset>.json` and the rows to `fetch/tracks.json`
 * ({@link FetchOutput}).
 * @module
 */

import type { TimeRange } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { openSpotifyClient } from "../spotify/client.ts";
import {
  fetchTopTracks,
  findDuplicates,
  normalizeTopTracks,
  validateTopTracksPage,
} from "../spotify/top_tracks.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import type { FetchOutput, TopTrackRow } from "../types.ts";

/** Runs the fetch step. */
export async function fetchStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run } = ctx;
  const outputs: string[] = [];
  const counts: Record<string, number> = { rows: 0, pages: 0, duplicates: 0 };
  const perRange: Partial<Record<TimeRange, number>> = {};
  const source = config.spotify.source;
  const rows = source === "sample"
    ? await fromSample(ctx, { outputs, counts, perRange })
    : await fromApi(ctx, { outputs, counts, perRange });

  const output: FetchOutput = {
    run_id: run.id,
    snapshot_date: run.snapshotDate,
    source,
    rows,
  };
  outputs.push(await run.writeJson("fetch", "tracks.json", output));
  counts.rows = rows.length;
  for (const [range, n] of Object.entries(perRange)) counts[`rows_${range}`] = n;

  const ranges = Object.entries(perRange).map(([r, n]) => `${r} ${n}`).join(", ");
  const dup = counts.duplicates ? `; ${counts.duplicates} duplicate listing(s) kept` : "";
  const text = source === "sample"
    ? `Fetched ${rows.length} tracks from the bundled SAMPLE (${ranges}), not your Spotify data${dup}.\n` +
      "Run `deno task auth` to fetch your own top tracks."
    : `Fetched ${rows.length} top tracks from the Spotify API for ${run.snapshotDate} (${ranges}) in ${counts.pages} page(s)${dup}.`;
  return {
    counts,
    summary: { text, source, time_ranges: Object.keys(perRange) },
    outputs,
  };
}

interface Acc {
  outputs: string[];
  counts: Record<string, number>;
  perRange: Partial<Record<TimeRange, number>>;
}

async function fromApi(ctx: StepContext, acc: Acc): Promise<TopTrackRow[]> {
  const { config, run, log, signal } = ctx;
  const client = await openSpotifyClient(config, { log });
  const rows: TopTrackRow[] = [];
  for (const timeRange of config.spotify.timeRanges) {
    const result = await fetchTopTracks(client, {
      timeRange,
      maxTracks: config.spotify.maxTracks,
      snapshotDate: run.snapshotDate,
      runId: run.id,
      log,
      signal,
      onPage: async (page, offset) => {
        acc.outputs.push(await run.writeJson("fetch", `raw/${timeRange}_${offset}.json`, page));
      },
    });
    rows.push(...result.rows);
    acc.perRange[timeRange] = result.rows.length;
    acc.counts.pages! += result.pages;
    acc.counts.duplicates! += result.duplicates;
    if (result.rows.length === 0) {
      log.warn(`${timeRange}: Spotify returned no top tracks (a new or little-used account?)`);
    }
  }
  return rows;
}

async function fromSample(ctx: StepContext, acc: Acc): Promise<TopTrackRow[]> {
  const { config, run, log } = ctx;
  if (config.profile === "prod") {
    // loadConfig already refuses this; never serve sample data in prod.
    throw new ConfigError("The bundled sample cannot be used in the prod profile");
  }
  const file = config.spotify.sampleFile;
  const timeRange: TimeRange = "short_term";
  const message =
    `Using the bundled sample top tracks (${file}), not your Spotify data: no token store at ${config.spotify.tokensFile} (run \`deno task auth\`) or SPOTIFY_SOURCE=sample`;
  log.warn(message);
  run.warn("fetch used the bundled sample top tracks, not Spotify data");
  const others = config.spotify.timeRanges.filter((r) => r !== timeRange);
  if (others.length) log.warn(`The sample has short_term only; skipping ${others.join(", ")}`);

  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(file));
  } catch (error) {
    throw new ConfigError(`Cannot read the bundled sample "${file}": ${(error as Error).message}`);
  }
  acc.outputs.push(await run.writeJson("fetch", `raw/${timeRange}_0.json`, raw));
  const page = validateTopTracksPage(raw, file);
  page.items = page.items.slice(0, config.spotify.maxTracks);
  const rows = normalizeTopTracks(page, {
    timeRange,
    snapshotDate: run.snapshotDate,
    runId: run.id,
    fetchedAt: new Date().toISOString(),
    source: file,
  });
  const duplicates = findDuplicates(rows).reduce((n, d) => n + d.ranks.length - 1, 0);
  acc.perRange[timeRange] = rows.length;
  acc.counts.pages = 1;
  acc.counts.duplicates = duplicates;
  return rows;
}
