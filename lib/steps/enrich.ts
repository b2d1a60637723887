/**
 * The enrich step: reads `fetch/tracks.json`, adds audio features from the configured providers
 * (Spotify's API, ReccoBeats, CSV catalogs — `FEATURES_PROVIDERS`), writes `enrich/tracks.json`
 * (`EnrichOutput`) and `enrich/coverage.json`, and reports the coverage.
 * @module
 */

import { isAbsolute, relative } from "node:path";
import type { Config } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { createCsvProvider } from "../features/csv_provider.ts";
import {
  coverageCounts,
  enrichRows,
  formatCoverage,
  type ProviderSlot,
} from "../features/enrich.ts";
import { createReccoBeatsProvider } from "../features/reccobeats.ts";
import { SpotifyFeaturesProvider } from "../features/spotify_provider.ts";
import type { Logger } from "../log.ts";
import type { StepContext, StepOutcome } from "../steps.ts";
import type { EnrichOutput, FetchOutput } from "../types.ts";

/** Runs the enrich step. */
export async function enrichStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, signal } = ctx;
  const input = await run.readJson<FetchOutput>("fetch", "tracks.json");
  checkFetchOutput(input, run.path("fetch", "tracks.json"));

  const providers = await providersFromConfig(config, { log });
  const { rows, coverage } = await enrichRows(input.rows, { providers, log, signal });

  const output: EnrichOutput = {
    run_id: run.id,
    snapshot_date: input.snapshot_date ?? run.snapshotDate,
    rows,
  };
  const outputs = [
    await run.writeJson("enrich", "tracks.json", output),
    await run.writeJson("enrich", "coverage.json", {
      run_id: run.id,
      snapshot_date: output.snapshot_date,
      ...coverage,
    }),
  ];
  for (const p of coverage.providers) {
    if (p.status === "disabled" || p.status === "failed") run.warn(`enrich: ${p.note}`);
  }
  const text = formatCoverage(coverage, { displayPath });
  log.info(`Audio features for ${coverage.matched} of ${coverage.rows} rows`, {
    by_id: coverage.by_id,
    by_name: coverage.by_name,
    unmatched: coverage.unmatched,
  });
  return {
    counts: coverageCounts(coverage),
    summary: {
      text,
      coverage: {
        rows: coverage.rows,
        tracks: coverage.tracks,
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
      },
    },
    outputs,
  };
}

/** Options of {@link providersFromConfig}. */
export interface ProvidersFromConfigOptions {
  log: Logger;
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
      const { openSpotifyClient } = await import("../spotify/client.ts");
      const client = await openSpotifyClient(config, { log: options.log });
      slots.push(new SpotifyFeaturesProvider(client));
    } else if (name === "reccobeats") {
      slots.push(
        createReccoBeatsProvider({ baseUrl: config.features.reccobeatsUrl, http: config.http }),
      );
    } else {
      slots.push(
        createCsvProvider({ paths: config.features.csvPaths, cacheDir: config.features.cacheDir }),
      );
    }
  }
  return slots;
}

function checkFetchOutput(input: FetchOutput, file: string): void {
  const rows = (input as Partial<FetchOutput> | null)?.rows;
  const bad = !Array.isArray(rows)
    ? "no rows array"
    : rows.findIndex((r) =>
      typeof r?.track_id !== "string" || typeof r.track_name !== "string" ||
      !Array.isArray(r.artist_names)
    );
  if (bad === -1) return;
  throw new ConfigError(
    `${file} is not a fetch output: ${
      typeof bad === "string" ? bad : `row ${bad} lacks track_id, track_name or artist_names`
    }`,
    { hint: "Re-run `deno task fetch`, or `deno task pipeline --from fetch`." },
  );
}

function displayPath(path: string): string {
  if (!isAbsolute(path)) return path;
  const rel = relative(Deno.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}
