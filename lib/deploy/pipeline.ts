/**
 * The pipeline as it runs on Deno Deploy: fetch → enrich → write → upload → load, in memory, for
 * every stream of `PIPELINE_STREAMS` (the daily schedule). Deploy has no writable file system,
 * no subprocesses and no native addons, so:
 *
 * - no run folder: each step's counts go into a run summary kept in Deno KV (`["runs", id]`);
 * - tokens come from Deno KV (seeded from `SPOTIFY_TOKENS_JSON`), refreshed in memory;
 * - the recently-played cursor is kept in Deno KV (`["state", <stream>, <user>]`), moved on only
 *   after the load, and recovered from the S3 keys when KV has none;
 * - the Parquet files are built in memory (`encodeParquet`) and put to S3;
 * - the warehouse is Snowflake (`COPY INTO` from the external stage) — the `prod` profile only,
 *   since the local profile's folder store and DuckDB need a file system and a native addon;
 * - no dbt (a Python subprocess): run `dbt build` elsewhere after the load (a dbt Cloud job, or
 *   `deno task transform` on a server) — see docs/scheduling.md.
 *
 * Every step reuses the library functions the `deno task` steps use (the same stream fetchers,
 * enrichment, partitions and loaders).
 * @module
 */

import type { Config } from "../config.ts";
import { ConfigError, exitCodeOf } from "../errors.ts";
import { createCsvProvider } from "../features/csv_provider.ts";
import {
  type CoverageReport,
  coverageShare,
  enrichRows,
  type ProviderSlot,
  sumCoverageCounts,
  type TrackRef,
} from "../features/enrich.ts";
import { createReccoBeatsProvider } from "../features/reccobeats.ts";
import { SpotifyFeaturesProvider } from "../features/spotify_provider.ts";
import type { Logger } from "../log.ts";
import { encodeParquet } from "../parquet/writer.ts";
import { newRunId, validateDate } from "../run.ts";
import type { SpotifyClient } from "../spotify/client.ts";
import type { PutReceipt } from "../store/object_store.ts";
import { newestCursorInKeys, partitionCursor } from "../streams/cursor.ts";
import { fetchStreams } from "../streams/fetch_streams.ts";
import type { FileCursor } from "../streams/handoff.ts";
import type { Schedule, StreamName } from "../streams/names.ts";
import { streamDefs, streamsFor } from "../streams/registry.ts";
import { keySafeUser, keyUser, type Row, type StreamDef } from "../streams/stream.ts";
import { type FileToLoad, type LoadReport, loadReport } from "../warehouse/warehouse.ts";
import { DEFAULT_ACCOUNT } from "../spotify/accounts.ts";
import { RequestBudget } from "../spotify/budget.ts";
import { type KvLike, openDeploySpotifyClient, type TokenSource } from "./tokens.ts";

/**
 * The Deno version Deno Deploy documents it runs (docs.deno.com/deploy/reference/runtime): the
 * Deploy test runs the entry under it too, so no newer API slips in.
 */
export const DEPLOY_DENO_VERSION = "2.5.0";

/** The steps that run on Deploy (no transform: dbt runs elsewhere). */
export const DEPLOY_STEPS = ["fetch", "enrich", "write", "upload", "load"] as const;
/** A step that runs on Deploy. */
export type DeployStep = typeof DEPLOY_STEPS[number];

/** One file put to S3 by a Deploy run. */
export type DeployUpload = Pick<PutReceipt, "uri" | "bytes" | "sha256" | "skipped"> & {
  stream: StreamName;
};

/** What a Deploy run records (in Deno KV) and returns. */
export interface DeployRunSummary {
  run_id: string;
  snapshot_date: string;
  /** `partial`: some accounts failed while the others' data landed (see `users`). */
  status: "running" | "succeeded" | "partial" | "failed";
  started_at: string;
  finished_at?: string;
  /** The streams the run carries. */
  streams: StreamName[];
  steps: Partial<
    Record<
      DeployStep,
      { status: "succeeded" | "failed"; duration_ms: number; counts?: Record<string, number> }
    >
  >;
  /** Share of rows with audio features (over the streams that carry them). */
  coverage?: number;
  /** Where each Parquet file went (`s3://...`), and whether it was already there. */
  uploads?: DeployUpload[];
  load?: Pick<LoadReport, "table" | "files_loaded" | "files_skipped" | "rows_loaded">;
  /** One-line cause of a failure (redacted) and its exit code. */
  error?: string;
  exit_code?: number;
  warnings: string[];
  /** Each account: its user, what each step carried of it, or why it failed (and the fix). */
  users?: Record<string, DeployUser>;
}

/** One account in a Deploy run's record. */
export interface DeployUser {
  user_id?: string;
  status: "succeeded" | "failed";
  error?: string;
  /** Rows and files of this user per step (fetch: rows; write, load: rows and files). */
  steps?: Partial<Record<DeployStep, { rows?: number; files?: number }>>;
}

/** An account on Deploy: a name and where its tokens are (Deno KV). */
export interface DeployAccount {
  name: string;
  tokens: TokenSource;
}

/** Options of {@link runOnDeploy}. */
export interface RunOnDeployOptions {
  log: Logger;
  /** Where the `default` account's Spotify tokens are (Deno KV); none: other accounts only. */
  tokens?: TokenSource;
  /** The household's other accounts (`SPOTIFY_TOKENS_JSON_<NAME>`), each with its tokens. */
  otherAccounts?: readonly DeployAccount[];
  /** Where the cursors are (Deno KV); without it each run starts from the S3 keys. */
  kv?: KvLike;
  /** Snapshot date (default: today, UTC). */
  date?: string;
  signal?: AbortSignal;
  /** Clock (tests). */
  now?: () => Date;
  /** Called with the summary when the run starts and when it ends (e.g. {@link kvRunRecorder}). */
  record?: (summary: DeployRunSummary) => Promise<void>;
  /** The run's id (default: a new one). */
  runId?: string;
  /** `poll`: the poll streams only (the poll cron); default the daily run. */
  schedule?: Schedule;
}

/** KV key of a stream's cursor for a user. */
export function cursorKey(stream: StreamName, userId: string): readonly unknown[] {
  return ["state", stream, userId];
}

interface Encoded {
  stream: StreamDef;
  key: string;
  data: Uint8Array;
  sha256: string;
  contentSha256: string;
  cursor?: FileCursor;
}

/**
 * Runs fetch → enrich → write → upload → load without touching the file system.
 * @returns the run summary; on failure the summary is recorded and the error rethrown.
 */
export async function runOnDeploy(
  config: Config,
  options: RunOnDeployOptions,
): Promise<DeployRunSummary> {
  const { tokens, signal, record, kv, now = () => new Date() } = options;
  if (config.store.kind !== "s3" || config.warehouse.kind !== "snowflake") {
    throw new ConfigError(
      "The Deno Deploy entry runs the prod profile only (PIPELINE_PROFILE=prod: S3 and Snowflake): Deploy has no file system for the local folder store and no native addons for DuckDB",
    );
  }
  const store = config.store;
  const warehouse = config.warehouse;
  const started = now();
  const runId = options.runId ?? newRunId(started);
  const date = options.date !== undefined
    ? validateDate(options.date, "--date", started)
    : started.toISOString().slice(0, 10);
  const log = options.log.child({ run_id: runId });
  const streams = streamDefs(streamsFor(options.schedule ?? "daily", config.streams));
  const summary: DeployRunSummary = {
    run_id: runId,
    snapshot_date: date,
    status: "running",
    started_at: started.toISOString(),
    streams: streams.map((s) => s.name),
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

  /** Adds what a step carried of the user a lake key names to that account's record. */
  const credit = (step: DeployStep, key: string, add: { rows?: number; files?: number }) => {
    const user = keyUser(key);
    const entry = Object.values(summary.users ?? {}).find((u) =>
      u.user_id !== undefined && keySafeUser(u.user_id) === user
    );
    if (!entry) return;
    const counts = ((entry.steps ??= {})[step] ??= {});
    if (add.rows !== undefined) counts.rows = (counts.rows ?? 0) + add.rows;
    if (add.files !== undefined) counts.files = (counts.files ?? 0) + add.files;
  };

  log.info(`Deploy run ${runId} (snapshot ${date}): ${DEPLOY_STEPS.join(" → ")}`);
  await record?.(summary);
  try {
    let client!: SpotifyClient;
    let userId = "";
    const accounts: DeployAccount[] = [
      ...(tokens ? [{ name: DEFAULT_ACCOUNT, tokens }] : []),
      ...(options.otherAccounts ?? []),
    ];
    if (accounts.length === 0) {
      throw new ConfigError(
        "No Spotify account on Deploy: set SPOTIFY_TOKENS_JSON (and SPOTIFY_TOKENS_JSON_<NAME> for each other account) to the token files `deno task auth` wrote",
      );
    }
    const fetched = await step("fetch", async () => {
      // the accounts share the app's rate limit and quota: one budget for all
      const budget = new RequestBudget({ concurrency: config.spotify.concurrency });
      const results = await Promise.all(accounts.map(async (account) => {
        const userLog = accounts.length > 1 ? log.child({ user: account.name }) : log;
        try {
          const c = await openDeploySpotifyClient(config, account.tokens, {
            log: userLog,
            signal,
            now,
            gate: budget,
          });
          // No token file here: the user comes from the tokens in KV, or GET /v1/me (not saved).
          const id = c.tokens.user?.id ?? (await c.me({ signal })).id ?? "unknown";
          const streamsOf = await fetchStreams({
            config,
            log: userLog,
            signal,
            source: "api",
            client: c,
            userId: id,
            shared: budget,
            runId,
            snapshotDate: date,
            streams,
            cursorOf: (stream, streamLog) => kvCursor(stream, id, { kv, store, log: streamLog }),
            saveRaw: () => Promise.resolve(),
          });
          return { account, client: c, userId: id, streams: streamsOf };
        } catch (error) {
          if (signal?.aborted) throw error;
          return { account, error };
        }
      }));
      const ok = results.filter((r) => r.error === undefined);
      if (ok.length === 0) throw results[0]!.error;
      client = ok[0]!.client!;
      userId = ok[0]!.userId!;
      summary.users = {};
      for (const r of results) {
        const again = r.account.name === DEFAULT_ACCOUNT
          ? "SPOTIFY_TOKENS_JSON"
          : `SPOTIFY_TOKENS_JSON_${r.account.name.toUpperCase().replaceAll("-", "_")}`;
        if (r.error !== undefined) {
          const message = log.redact(
            r.error instanceof Error ? r.error.message : String(r.error),
          ).split("\n")[0]!;
          summary.users[r.account.name] = {
            status: "failed",
            error: `${message} (authorize it again and update ${again})`,
          };
          summary.warnings.push(`user ${r.account.name}: ${message}`);
          summary.exit_code = Math.max(summary.exit_code ?? 0, exitCodeOf(r.error));
          log.error(`user ${r.account.name}: ${message} (the other accounts go on)`);
          continue;
        }
        summary.users[r.account.name] = {
          user_id: r.userId,
          status: "succeeded",
          steps: { fetch: { rows: r.streams!.reduce((n, s) => n + s.rows.length, 0) } },
        };
      }
      // one entry per stream, every account's rows together (each row names its user)
      const value = streams.map((stream) => {
        const parts = ok.map((r) => r.streams!.find((s) => s.stream === stream)!);
        const stopped = parts.filter((p) => p.skipped !== undefined);
        return {
          stream,
          rows: parts.flatMap((p) => p.rows),
          warnings: parts.flatMap((p) => p.warnings),
          counts: { possible_gap: parts.reduce((n, p) => n + (p.counts.possible_gap ?? 0), 0) },
          ...(stopped.length === parts.length ? { skipped: stopped[0]!.skipped } : {}),
        };
      });
      const counts: Record<string, number> = { rows: 0 };
      for (const r of value) {
        summary.warnings.push(...r.warnings);
        counts.rows! += r.rows.length;
        counts[`${r.stream.name}_rows`] = r.rows.length;
        if (r.counts.possible_gap) counts.possible_gap = r.counts.possible_gap;
      }
      return { value, counts };
    });

    const enriched = await step("enrich", async () => {
      const providers = providerSlots(config, client);
      const coverages: CoverageReport[] = [];
      const value: { stream: StreamDef; rows: Row[]; skipped?: string }[] = [];
      for (const r of fetched) {
        if (!r.stream.features || r.rows.length === 0) {
          value.push(r);
          continue;
        }
        const result = await enrichRows(r.rows as unknown as (TrackRef & Row)[], {
          providers,
          log,
          signal,
        });
        for (const p of result.coverage.providers) {
          if (p.status === "disabled" || p.status === "failed") {
            summary.warnings.push(`enrich: ${p.note}`);
          }
        }
        coverages.push(result.coverage);
        value.push({ ...r, rows: result.rows });
      }
      const counts = sumCoverageCounts(coverages);
      summary.coverage = coverageShare(counts.matched!, counts.rows!);
      return { value, counts };
    });

    const encoded = await step("write", async () => {
      const value: Encoded[] = [];
      let rows = 0;
      let bytes = 0;
      for (const r of enriched) {
        if (r.skipped !== undefined) continue;
        for (const part of r.stream.partition(r.rows, { snapshotDate: date })) {
          const parquet = await encodeParquet(r.stream, part.rows);
          value.push({
            stream: r.stream,
            key: part.key,
            data: parquet.data,
            sha256: parquet.sha256,
            contentSha256: parquet.contentSha256,
            cursor: partitionCursor(r.stream, part.rows),
          });
          rows += parquet.rows;
          bytes += parquet.bytes;
          credit("write", part.key, { rows: parquet.rows, files: 1 });
        }
      }
      return { value, counts: { rows, files: value.length, bytes } };
    });

    const receipts = await step("upload", async () => {
      const value: (PutReceipt & { file: Encoded })[] = [];
      if (encoded.length) {
        const { openS3Store } = await import("../store/s3.ts");
        const s3 = await openS3Store(store, { log });
        try {
          for (const file of encoded) {
            const receipt = await s3.put(file.key, file.data, {
              sha256: file.sha256,
              contentSha256: file.contentSha256,
              contentType: "application/vnd.apache.parquet",
            });
            value.push({ ...receipt, file });
          }
        } finally {
          await s3.close();
        }
      }
      for (const r of value) credit("upload", r.file.key, { files: 1 });
      summary.uploads = value.map((r) => ({
        stream: r.file.stream.name,
        uri: r.uri,
        bytes: r.bytes,
        sha256: r.sha256,
        skipped: r.skipped,
      }));
      const skipped = value.filter((r) => r.skipped).length;
      return {
        value,
        counts: {
          files: value.length,
          bytes: value.reduce((n, r) => n + (r.skipped ? 0 : r.bytes), 0),
          skipped,
        },
      };
    });

    await step("load", async () => {
      let report = loadReport("snowflake");
      if (receipts.length) {
        const { openSnowflakeWarehouse } = await import("../warehouse/snowflake.ts");
        const wh = await openSnowflakeWarehouse(warehouse, { log, store });
        try {
          const files: FileToLoad[] = receipts.map((r) => ({
            stream: r.file.stream.name,
            uri: r.uri,
            key: r.key,
            sha256: r.sha256,
            bytes: r.bytes,
            run_id: runId,
          }));
          report = await wh.load(files, { migrationUser: userId });
        } finally {
          await wh.close();
        }
      }
      // the plays are in the warehouse: the cursor moves on (in KV: it outlives the instance)
      for (const r of receipts) {
        const c = r.file.cursor;
        if (c && kv) {
          const key = cursorKey(r.file.stream.name, c.user_id);
          const held = (await kv.get<{ value: string }>(key)).value?.value;
          if (held === undefined || Date.parse(held) < Date.parse(c.value)) {
            await kv.set(key, { value: c.value, updated_at: now().toISOString(), run_id: runId });
          }
        }
      }
      for (const f of report.files) {
        if (f.status === "LOADED") credit("load", f.file, { rows: f.rows_loaded, files: 1 });
      }
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
    });
    summary.status = summary.exit_code ? "partial" : "succeeded";
    log.info(
      `Deploy run ${runId} ${summary.status}: ${
        fetched.reduce((n, r) => n + r.rows.length, 0)
      } rows, coverage ${((summary.coverage ?? 0) * 100).toFixed(0)}%, ${
        summary.load?.rows_loaded ?? 0
      } rows loaded into ${summary.load?.table || "nothing"}; ` +
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

/**
 * A stream's cursor on Deploy: from Deno KV, else the newest one in the S3 keys (the state of a
 * first run, or of a database that was reset).
 */
async function kvCursor(
  stream: StreamDef,
  userId: string,
  options: { kv?: KvLike; store: Extract<Config["store"], { kind: "s3" }>; log: Logger },
): Promise<string | undefined> {
  const { kv, store, log } = options;
  const held = kv ? (await kv.get<{ value: string }>(cursorKey(stream.name, userId))).value : null;
  if (held?.value) return held.value;
  if (!stream.cursor) return undefined;
  const { openS3Store } = await import("../store/s3.ts");
  const s3 = await openS3Store(store, { log });
  try {
    const keys = (await s3.list(stream.cursor.lakePrefix(userId))).map((o) => o.key);
    return newestCursorInKeys(stream, keys);
  } finally {
    await s3.close();
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
    return createCsvProvider({
      paths: config.features.csvPaths,
      columnMap: config.features.csvColumns,
    });
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
  // run ids order by the second; two runs of one second are ordered by their start
  return out.sort((a, b) => b.started_at.localeCompare(a.started_at));
}
