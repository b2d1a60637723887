/**
 * The pipeline as it runs on Deno Deploy: fetch → enrich → write → upload → load, in memory, for
 * the `top_tracks` stream (the listening streams need the poll cursor, which Deploy keeps
 * nowhere yet: run `deno task poll` on a server's cron).
 * Deploy has no writable file system, no subprocesses and no native addons, so:
 *
 * - no run folder: each step's counts go into a run summary kept in Deno KV (`["runs", id]`);
 * - tokens come from Deno KV (seeded from `SPOTIFY_TOKENS_JSON`), refreshed in memory;
 * - the Parquet file is built in memory (`encodeTopTracksParquet`) and put to S3;
 * - the warehouse is Snowflake (`COPY INTO` from the external stage) — the `prod` profile only,
 *   since the local profile's folder store and DuckDB need a file system and a native addon;
 * - no dbt (a Python subprocess): run `dbt build` elsewhere after the load (a dbt Cloud job, or
 *   `deno task transform` on a server) — see README.
 *
 * Every step reuses the library functions the `deno task` steps use.
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError, exitCodeOf } from "../errors.ts";
import { createCsvProvider } from "../features/csv_provider.ts";
import { coverageCounts, enrichRows, type ProviderSlot } from "../features/enrich.ts";
import { createReccoBeatsProvider } from "../features/reccobeats.ts";
import { SpotifyFeaturesProvider } from "../features/spotify_provider.ts";
import type { Logger } from "../log.ts";
import { topTracksKey } from "../parquet/schema.ts";
import { encodeTopTracksParquet } from "../parquet/writer.ts";
import { newRunId, validateDate } from "../run.ts";
import type { SpotifyClient } from "../spotify/client.ts";
import { fetchTopTracks } from "../spotify/top_tracks.ts";
import type { PutReceipt } from "../store/object_store.ts";
import type { TopTrackRow } from "../types.ts";
import type { LoadReport } from "../warehouse/warehouse.ts";
import { type KvLike, openDeploySpotifyClient, type TokenSource } from "./tokens.ts";

/** The steps that run on Deploy (no transform: dbt runs elsewhere). */
export const DEPLOY_STEPS = ["fetch", "enrich", "write", "upload", "load"] as const;
/** A step that runs on Deploy. */
export type DeployStep = typeof DEPLOY_STEPS[number];

/** What a Deploy run records (in Deno KV) and returns. */
export interface DeployRunSummary {
  run_id: string;
  snapshot_date: string;
  status: "running" | "succeeded" | "failed";
  started_at: string;
  finished_at?: string;
  steps: Partial<
    Record<
      DeployStep,
      { status: "succeeded" | "failed"; duration_ms: number; counts?: Record<string, number> }
    >
  >;
  /** Share of rows with audio features. */
  coverage?: number;
  /** Where the Parquet file went (`s3://...`), and whether it was already there. */
  upload?: Pick<PutReceipt, "uri" | "bytes" | "sha256" | "skipped">;
  load?: Pick<LoadReport, "table" | "files_loaded" | "files_skipped" | "rows_loaded">;
  /** One-line cause of a failure (redacted) and its exit code. */
  error?: string;
  exit_code?: number;
  warnings: string[];
}

/** Options of {@link runOnDeploy}. */
export interface RunOnDeployOptions {
  log: Logger;
  /** Where the Spotify tokens are (Deno KV). */
  tokens: TokenSource;
  /** Snapshot date (default: today, UTC). */
  date?: string;
  signal?: AbortSignal;
  /** Clock (tests). */
  now?: () => Date;
  /** Called with the summary when the run starts and when it ends (e.g. {@link kvRunRecorder}). */
  record?: (summary: DeployRunSummary) => Promise<void>;
}

/**
 * Runs fetch → enrich → write → upload → load without touching the file system.
 * @returns the run summary; on failure the summary is recorded and the error rethrown.
 */
export async function runOnDeploy(
  config: Config,
  options: RunOnDeployOptions,
): Promise<DeployRunSummary> {
  const { tokens, signal, record, now = () => new Date() } = options;
  if (config.store.kind !== "s3" || config.warehouse.kind !== "snowflake") {
    throw new ConfigError(
      "The Deno Deploy entry runs the prod profile only (PIPELINE_PROFILE=prod: S3 and Snowflake): Deploy has no file system for the local folder store and no native addons for DuckDB",
    );
  }
  const store = config.store;
  const warehouse = config.warehouse;
  const started = now();
  const runId = newRunId(started);
  const date = options.date ? validateDate(options.date) : started.toISOString().slice(0, 10);
  const log = options.log.child({ run_id: runId });
  const summary: DeployRunSummary = {
    run_id: runId,
    snapshot_date: date,
    status: "running",
    started_at: started.toISOString(),
    steps: {},
    warnings: [],
  };
  const step = async <T>(
    name: DeployStep,
    body: () => Promise<{ value: T; counts?: Record<string, number> }>,
  ): Promise<T> => {
    const t0 = performance.now();
    const stepLog = log.child({ step: name });
    try {
      const { value, counts } = await body();
      const duration_ms = Math.round(performance.now() - t0);
      summary.steps[name] = { status: "succeeded", duration_ms, ...(counts ? { counts } : {}) };
      stepLog.info(`${name} done`, { duration_ms, ...counts });
      return value;
    } catch (error) {
      summary.steps[name] = {
        status: "failed",
        duration_ms: Math.round(performance.now() - t0),
      };
      throw error;
    }
  };

  log.info(`Deploy run ${runId} (snapshot ${date}): ${DEPLOY_STEPS.join(" → ")}`);
  await record?.(summary);
  try {
    let client!: SpotifyClient;
    const rows = await step("fetch", async () => {
      client = await openDeploySpotifyClient(config, tokens, { log, signal, now });
      // No token file here: the user comes from the tokens in KV, or GET /v1/me (not saved).
      const userId = client.tokens.user?.id ??
        String((await client.getJson<{ id?: unknown }>("/v1/me", { signal })).id ?? "unknown");
      const out: TopTrackRow[] = [];
      let pages = 0;
      for (const timeRange of config.spotify.timeRanges) {
        const result = await fetchTopTracks(client, {
          timeRange,
          maxTracks: config.spotify.maxTracks,
          snapshotDate: date,
          runId,
          log,
          signal,
          now,
          userId,
        });
        out.push(...result.rows);
        pages += result.pages;
      }
      return { value: out, counts: { rows: out.length, pages } };
    });

    const enriched = await step("enrich", async () => {
      const providers = providerSlots(config, client);
      const { rows: value, coverage } = await enrichRows(rows, { providers, log, signal });
      summary.coverage = coverage.share;
      for (const p of coverage.providers) {
        if (p.status === "disabled" || p.status === "failed") {
          summary.warnings.push(`enrich: ${p.note}`);
        }
      }
      return {
        value,
        counts: coverageCounts(coverage),
      };
    });

    const parquet = await step("write", async () => {
      const value = await encodeTopTracksParquet(enriched);
      return { value, counts: { rows: value.rows, bytes: value.bytes } };
    });

    const receipt = await step("upload", async () => {
      const { openS3Store } = await import("../store/s3.ts");
      const s3 = await openS3Store(store, { log });
      try {
        const value = await s3.put(topTracksKey(date), parquet.data, {
          sha256: parquet.sha256,
          contentSha256: parquet.contentSha256,
          contentType: "application/vnd.apache.parquet",
        });
        summary.upload = {
          uri: value.uri,
          bytes: value.bytes,
          sha256: value.sha256,
          skipped: value.skipped,
        };
        return { value, counts: { files: 1, bytes: value.bytes, skipped: value.skipped ? 1 : 0 } };
      } finally {
        await s3.close();
      }
    });

    await step("load", async () => {
      const { openSnowflakeWarehouse } = await import("../warehouse/snowflake.ts");
      const wh = await openSnowflakeWarehouse(warehouse, { log, store });
      try {
        const report = await wh.load([{
          stream: "top_tracks",
          uri: receipt.uri,
          key: receipt.key,
          sha256: receipt.sha256,
          bytes: receipt.bytes,
          run_id: runId,
        }], { migrationUser: rows[0]?.user_id ?? "unknown" });
        summary.load = {
          table: report.table,
          files_loaded: report.files_loaded,
          files_skipped: report.files_skipped,
          rows_loaded: report.rows_loaded,
        };
        return {
          value: report,
          counts: {
            files_loaded: report.files_loaded,
            files_skipped: report.files_skipped,
            rows_loaded: report.rows_loaded,
          },
        };
      } finally {
        await wh.close();
      }
    });
    summary.status = "succeeded";
    log.info(
      `Deploy run ${runId} succeeded: ${rows.length} rows, coverage ${
        ((summary.coverage ?? 0) * 100).toFixed(0)
      }%, ${summary.load?.rows_loaded ?? 0} rows loaded into ${summary.load?.table}; ` +
        "run dbt (transform) where it is scheduled",
    );
    return summary;
  } catch (error) {
    summary.status = "failed";
    summary.exit_code = exitCodeOf(error);
    summary.error = log.redact(error instanceof Error ? error.message : String(error))
      .split("\n")[0];
    throw error;
  } finally {
    summary.finished_at = now().toISOString();
    await record?.(summary);
  }
}

/** The configured audio-features providers, in order (as `providersFromConfig`, with `client`). */
function providerSlots(config: Config, client: SpotifyClient): ProviderSlot[] {
  return config.features.providers.map((name) => {
    if (name === "spotify") return new SpotifyFeaturesProvider(client);
    if (name === "reccobeats") {
      return createReccoBeatsProvider({
        baseUrl: config.features.reccobeatsUrl,
        http: config.http,
      });
    }
    return createCsvProvider({ paths: config.features.csvPaths });
  });
}

/** KV key prefix of the Deploy run summaries. */
export const RUNS_PREFIX: readonly unknown[] = ["runs"];

/** Keeps each run's summary in Deno KV under `["runs", <run id>]` for 90 days. */
export function kvRunRecorder(kv: KvLike): (summary: DeployRunSummary) => Promise<void> {
  return async (summary) => {
    await kv.set([...RUNS_PREFIX, summary.run_id], summary, { expireIn: 90 * 86_400_000 });
  };
}

/** The most recent Deploy run summaries from Deno KV, newest first. */
export async function recentDeployRuns(kv: KvLike, limit = 20): Promise<DeployRunSummary[]> {
  const out: DeployRunSummary[] = [];
  for await (
    const entry of kv.list<DeployRunSummary>({ prefix: RUNS_PREFIX }, { reverse: true, limit })
  ) {
    out.push(entry.value);
  }
  return out;
}
