/**
 * The enrich step: reads each stream's fetch output, adds audio features to the rows of the
 * streams that carry them from the configured providers (Spotify's API, ReccoBeats, CSV catalogs
 * — `FEATURES_PROVIDERS`) through the features cache (each track looked up once, ever), writes
 * each stream's `enrich/<stream file>` and coverage report, and reports the coverage. Streams
 * without features are handed on as they are.
 * @module
 */

import { isAbsolute, relative } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { FeaturesCache, featuresCachePath } from "../features/cache.ts";
import { createCsvProvider } from "../features/csv_provider.ts";
import {
  coverageCounts,
  type CoverageReport,
  coverageShare,
  enrichRows,
  formatCoverage,
  type ProviderSlot,
  sumCoverageCounts,
  type TrackRef,
} from "../features/enrich.ts";
import { createReccoBeatsProvider } from "../features/reccobeats.ts";
import { SpotifyFeaturesProvider } from "../features/spotify_provider.ts";
import type { Logger } from "../log.ts";
import { listAccounts } from "../spotify/accounts.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import { readStreamRows, type StreamRows, writeStreamRows } from "../streams/handoff.ts";
import { streamDefs } from "../streams/registry.ts";
import type { Row, StreamDef } from "../streams/stream.ts";

/** Runs the enrich step. */
export async function enrichStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, signal } = ctx;
  const streams = streamDefs(run.streams);
  const inputs = new Map<StreamDef, StreamRows>();
  for (const stream of streams) inputs.set(stream, await readStreamRows(run, "fetch", stream));

  const needFeatures = streams.filter((s) => s.features && inputs.get(s)!.rows.length > 0);
  // the accounts that fetched this run first (a failed one's tokens are likely refused)
  const fetchedBy = Object.entries(run.manifest.users ?? {});
  const accounts = [
    ...fetchedBy.filter(([, u]) => u.status !== "failed").map(([name]) => name),
    ...fetchedBy.filter(([, u]) => u.status === "failed").map(([name]) => name),
  ];
  const providers = needFeatures.length ? await providersFromConfig(config, { log, accounts }) : [];
  // read only when some stream has rows to enrich (a poll with nothing new reads nothing)
  const cache = config.features.cache && needFeatures.length
    ? await FeaturesCache.open(featuresCachePath(config), { log })
    : FeaturesCache.disabled();
  const outputs: string[] = [];
  const coverages: CoverageReport[] = [];
  const perStreamCounts: Record<string, number> = {};
  const bySource: Record<string, number> = { spotify: 0, reccobeats: 0, csv: 0, none: 0 };
  const texts: string[] = [];
  const perStream: Record<string, unknown> = {};
  const users: Record<string, { rows?: number }> = {};
  const labelled = streams.filter((s) => s.features).length > 1;
  for (const stream of streams) {
    const input = inputs.get(stream)!;
    let rows: Row[] = input.rows;
    let coverageOut: { file: string; value: unknown } | undefined;
    if (stream.features) {
      const trackRows = input.rows as unknown as (TrackRef & Row)[];
      const known = cache.known(trackRows.map((r) => r.track_id));
      const result = await enrichRows(trackRows, {
        providers,
        log: log.child({ stream: stream.name }),
        signal,
        known,
        position: (row) =>
          (input.users.length > 1 ? `${String(row.user_id)} ` : "") +
          (typeof row.played_at === "string"
            ? `played ${row.played_at}`
            : `${String(row.time_range)} #${String(row.rank)}`),
      });
      // Kept as each stream finishes: a later stream (or run) asks nothing known already.
      cache.record(result.decided, result.complete);
      await saveCache(cache, log);
      rows = result.rows;
      const coverage = result.coverage;
      const coverageFile = stream.files.coverage ?? `${stream.name}_coverage.json`;
      coverageOut = {
        file: coverageFile,
        value: {
          run_id: run.id,
          snapshot_date: input.snapshot_date,
          stream: stream.name,
          ...coverage,
        },
      };
      for (const p of coverage.providers) {
        if (p.status === "disabled" || p.status === "failed") run.warn(`enrich: ${p.note}`);
      }
      for (const [k, v] of Object.entries(coverage.by_source)) bySource[k] = (bySource[k] ?? 0) + v;
      coverages.push(coverage);
      for (const [k, v] of Object.entries(coverageCounts(coverage))) {
        perStreamCounts[`${stream.name}_${k}`] = v;
      }
      if (coverage.rows > 0 || !labelled) {
        texts.push(formatCoverage(coverage, {
          displayPath,
          label: labelled ? stream.name : undefined,
          file: `enrich/${coverageFile}`,
        }));
      }
      perStream[stream.name] = coverageSummary(coverage);
      log.info(`Audio features for ${coverage.matched} of ${coverage.rows} ${stream.name} rows`, {
        stream: stream.name,
        by_id: coverage.by_id,
        by_name: coverage.by_name,
        unmatched: coverage.unmatched,
        cached: coverage.cached,
      });
    }
    // the rows first, then the coverage report (a resume verifies both)
    outputs.push(
      await writeStreamRows(run, "enrich", stream, { ...input, run_id: run.id, rows }),
    );
    for (const row of rows) {
      const u = (users[String(row.user_id)] ??= { rows: 0 });
      u.rows!++;
    }
    if (coverageOut) {
      outputs.push(await run.writeJson("enrich", coverageOut.file, coverageOut.value));
    }
  }
  const totals = sumCoverageCounts(coverages);
  const counts = { ...totals, ...perStreamCounts };
  const share = coverageShare(totals.matched!, totals.rows!);
  return {
    counts,
    summary: {
      text: texts.join("\n"),
      coverage: {
        rows: counts.rows,
        matched: counts.matched,
        by_id: counts.by_id,
        by_name: counts.by_name,
        unmatched: counts.unmatched,
        share,
        by_source: bySource,
      },
      streams: perStream,
    },
    outputs,
    users,
  };
}

function coverageSummary(coverage: CoverageReport): Record<string, unknown> {
  return {
    rows: coverage.rows,
    tracks: coverage.tracks,
    cached: coverage.cached ?? 0,
    matched: coverage.matched,
    by_id: coverage.by_id,
    by_name: coverage.by_name,
    unmatched: coverage.unmatched,
    share: coverage.share,
    by_source: coverage.by_source,
    providers: coverage.providers.map((p) => ({
      provider: p.provider,
      status: p.status,
      filled: p.filled,
    })),
  };
}

/** Saves the features cache; a cache that cannot be written is a warning, never a failure. */
export async function saveCache(cache: FeaturesCache, log: Logger): Promise<void> {
  try {
    await cache.save();
  } catch (error) {
    log.warn(`Cannot save the features cache ${cache.path}: ${(error as Error).message}`);
  }
}

/** Options of {@link providersFromConfig}. */
export interface ProvidersFromConfigOptions {
  log: Logger;
  /**
   * The accounts to ask Spotify for features with first (then every other authorized one); the
   * first whose token store reads is used (the accounts share one app).
   */
  accounts?: readonly string[];
}

/**
 * The providers of `FEATURES_PROVIDERS`, in order. Spotify is used only when the run talks to
 * the API (`config.spotify.source === "api"`); its client module is loaded only then.
 */
export async function providersFromConfig(
  config: Config,
  options: ProvidersFromConfigOptions,
): Promise<ProviderSlot[]> {
  const slots: ProviderSlot[] = [];
  for (const name of config.features.providers) {
    if (name === "spotify") {
      if (config.spotify.source !== "api") {
        slots.push({
          name,
          skipped:
            "the run uses the bundled sample, not the Spotify API (no token store, or SPOTIFY_SOURCE=sample)",
        });
        continue;
      }
      const client = await firstUsableClient(config, options);
      if (!client) {
        slots.push({
          name,
          skipped: "no account's token store can be read (see `deno task auth --status`)",
        });
        continue;
      }
      slots.push(new SpotifyFeaturesProvider(client));
    } else if (name === "reccobeats") {
      slots.push(
        createReccoBeatsProvider({ baseUrl: config.features.reccobeatsUrl, http: config.http }),
      );
    } else {
      slots.push(
        createCsvProvider({
          paths: config.features.csvPaths,
          cacheDir: config.features.cacheDir,
          columnMap: config.features.csvColumns,
        }),
      );
    }
  }
  return slots;
}

/**
 * A Spotify client on the first of the accounts (audio features are the app's, not a user's:
 * any account will do) whose token store reads; undefined when none does.
 */
async function firstUsableClient(config: Config, options: ProvidersFromConfigOptions) {
  const { openSpotifyClient } = await import("../spotify/client.ts");
  const all = await listAccounts(config);
  // the preferred ones first, then every other (any account's tokens will do)
  const preferred = options.accounts ?? [];
  const names = [...preferred, ...all.map((a) => a.name).filter((n) => !preferred.includes(n))];
  for (const name of names) {
    const account = all.find((a) => a.name === name);
    if (!account?.tokensFile) continue;
    try {
      return await openSpotifyClient(config, { log: options.log, tokensFile: account.tokensFile });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      options.log.warn(`enrich: account ${name}'s token store: ${error.message}`);
    }
  }
  return undefined;
}

function displayPath(path: string): string {
  if (!isAbsolute(path)) return path;
  const rel = relative(Deno.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}
