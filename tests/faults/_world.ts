/**
 * The fault suite's shared state (private to `tests/faults/`): the mock Spotify and audio-features
 * servers, a data folder where each case collects its own snapshot day (like a year of bad days
 * in one warehouse), the known fake secrets, the transcripts of everything produced, and the
 * result of every case for the figures table.
 * @module
 */

import { join } from "node:path";
import { configSecrets, loadConfig } from "../../lib/config.ts";
import { ExitCode } from "../../lib/errors.ts";
import type { Manifest, StepName } from "../../lib/run.ts";
import { type FeaturesMock, fixtureAudioFeatures, startFeaturesMock } from "../mock_features.ts";
import {
  makeTrackItems,
  type MockSpotify,
  startMockSpotify,
  writeMockTokens,
} from "../mock_spotify.ts";
import { generateKeyPair } from "../stand_ins.ts";
import {
  type ChildResult,
  duckCounts,
  finalError,
  logLines,
  readManifest,
  ROOT,
  runIds,
  runScript,
  type ScriptOptions,
  type Transcript,
} from "./_harness.ts";

/** How a case ended. */
export type Outcome =
  /** The fault was absorbed by the retries: the run succeeded first time. */
  | "retried"
  /** The run stopped with its documented exit code and a one-line cause. */
  | "clean failure"
  /** The run succeeded without the failing part, with a warning in the manifest. */
  | "degraded"
  /** Nothing to recover from (e.g. an empty list): the run succeeded. */
  | "succeeded";

/** One case's result (a row of `results.json`). */
export interface CaseResult {
  id: string;
  category: string;
  fault: string;
  /** How the fault was injected (which real boundary). */
  injected: string;
  outcome: Outcome;
  exit_code: number;
  /** One-line cause printed (failures). */
  cause?: string;
  /** The run was resumed (or re-run) to the clean final state, checked against the baseline. */
  resumed: boolean | null;
  /** How it was brought back (`--resume`, `--run <id> --from upload`, a re-run of the day...). */
  recovery?: string;
  snapshot_date?: string;
  seconds: number;
  notes?: string;
}

/** What names a case (a case's spec has these, and more). */
export type CaseInfo = Pick<CaseResult, "id" | "category" | "fault" | "injected">;

/** The known fake secrets configured everywhere (the suite asserts none appears anywhere). */
export interface Secrets {
  clientSecret: string;
  triggerToken: string;
  awsAccessKeyId: string;
  awsSecretAccessKey: string;
  privateKeyPem: string;
  /** Its public key (for the Snowflake stand-in), not a secret. */
  publicKeyPem: string;
  passphrase: string;
  /** Tokens the mock Spotify issued (filled as it issues them). */
  issued: Set<string>;
  /** Other secrets found along the way (e.g. IAM keys moto generated). */
  extra: Set<string>;
}

/** Every string that must never appear (PEM: each line of its body, so partial leaks count). */
export function secretNeedles(s: Secrets): { name: string; value: string }[] {
  const pemLines = s.privateKeyPem.split("\n").filter((l) => l && !l.startsWith("-----"));
  return [
    { name: "SPOTIFY_CLIENT_SECRET", value: s.clientSecret },
    { name: "PIPELINE_TRIGGER_TOKEN", value: s.triggerToken },
    { name: "AWS_ACCESS_KEY_ID", value: s.awsAccessKeyId },
    { name: "AWS_SECRET_ACCESS_KEY", value: s.awsSecretAccessKey },
    { name: "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", value: s.passphrase },
    ...pemLines.map((value, i) => ({ name: `SNOWFLAKE_PRIVATE_KEY (line ${i + 1})`, value })),
    ...[...s.issued].map((value) => ({
      name: value.startsWith("BQ") ? "Spotify access token" : "Spotify refresh token",
      value,
    })),
    ...[...s.extra].map((value) => ({ name: "stand-in credential", value })),
  ];
}

/** Makes the fake secrets (random each run, recognizable by their prefix). */
export async function makeSecrets(): Promise<Secrets> {
  const rand = () => crypto.randomUUID().replaceAll("-", "");
  const passphrase = `fake-passphrase-${rand()}`;
  const pair = await generateKeyPair(passphrase);
  return {
    clientSecret: `fake-client-secret-${rand()}`,
    triggerToken: `fake-trigger-token-${rand()}`,
    awsAccessKeyId: `AKIAFAKE${rand().slice(0, 12).toUpperCase()}`,
    awsSecretAccessKey: `fake/aws+secret${rand()}`,
    privateKeyPem: pair.privateKeyPem,
    publicKeyPem: pair.publicKeyPem,
    passphrase,
    issued: new Set(),
    extra: new Set(),
  };
}

/** Records every token the mock issues (its maps are where it keeps them). */
export function recordIssuedTokens(mock: MockSpotify, into: Set<string>): void {
  for (const map of [mock.state.accessTokens, mock.state.refreshTokens] as Map<string, unknown>[]) {
    for (const key of map.keys()) into.add(key);
    const set = map.set.bind(map);
    map.set = (key: string, value: unknown) => {
      into.add(key);
      return set(key, value);
    };
  }
}

/** The data of a snapshot day (baseline runs replay it without the fault). */
export type DayVariant = "default" | "empty" | "tempo320";

/** Tracks per time range in the mock (two pages of 50 + 10). */
export const TRACKS = 60;
const RANGES = ["short_term", "long_term"] as const;

/** A mock Spotify + features mock pair and the env pointing a data dir at them. */
export class Sources {
  readonly spotify: MockSpotify;
  readonly features: FeaturesMock;
  readonly secrets: Secrets;
  readonly catalog: string;
  #tempo: unknown;

  private constructor(
    spotify: MockSpotify,
    features: FeaturesMock,
    secrets: Secrets,
    catalog: string,
  ) {
    this.spotify = spotify;
    this.features = features;
    this.secrets = secrets;
    this.catalog = catalog;
  }

  static async start(secrets: Secrets, catalogDir: string): Promise<Sources> {
    const spotify = startMockSpotify({
      clientId: "fault-suite-client",
      clientSecret: secrets.clientSecret,
    });
    recordIssuedTokens(spotify, secrets.issued);
    // ReccoBeats knows features for some of the generated tracks (Spotify's mock knows the five
    // recorded ones; the CSV catalog knows none of them): every provider fills some rows.
    const items = [...makeTrackItems(TRACKS), ...makeTrackItems(TRACKS, { prefix: "LongTerm" })];
    const t = await fixtureAudioFeatures();
    const reccobeatsOnly: Record<string, Record<string, number | null>> = {};
    items.forEach((item, i) => {
      if (i % 3 !== 0 || i < 5) return;
      reccobeatsOnly[item.id as string] = {
        danceability: 0.5,
        energy: (i % 10) / 10,
        key: i % 12,
        loudness: -5 - (i % 7),
        mode: i % 2,
        speechiness: 0.05,
        acousticness: 0.2,
        instrumentalness: 0,
        liveness: 0.1,
        valence: 0.4,
        tempo: 90 + i,
        time_signature: typeof t.time_signature === "number" ? t.time_signature : 4,
      };
    });
    // Spotify's audio features know the first two tracks (the recorded item's values)
    const spotifyFeatures = Object.fromEntries(
      items.slice(0, 2).map((item) => [item.id as string, { ...t, id: item.id }]),
    );
    const features = await startFeaturesMock({
      reccobeatsOnly: reccobeatsOnly as Record<string, never>,
    });
    await Deno.mkdir(catalogDir, { recursive: true });
    const catalog = join(catalogDir, "features.csv");
    await Deno.copyFile(join(ROOT, "data", "audio_features_sample.csv"), catalog);
    spotify.state.audioFeatures = spotifyFeatures;
    const sources = new Sources(spotify, features, secrets, catalog);
    sources.setDay("default");
    return sources;
  }

  /** Puts the mock in the state of a day's data. */
  setDay(variant: DayVariant): void {
    const s = this.spotify.state;
    s.faults.length = 0;
    s.invalidGrant = false;
    s.topTracks = variant === "empty" ? { short_term: [], long_term: [] } : {
      short_term: makeTrackItems(TRACKS),
      long_term: makeTrackItems(TRACKS, { prefix: "LongTerm" }),
    };
    // tempo320: Spotify's audio features give one track a tempo above the warehouse's range
    const first = Object.keys(s.audioFeatures)[0];
    if (first) {
      const f = s.audioFeatures[first] as Record<string, unknown>;
      this.#tempo ??= f.tempo;
      f.tempo = variant === "tempo320" ? 320.5 : this.#tempo;
    }
    this.features.faults.reccobeats429 = 0;
    this.features.faults.reccobeats500 = 0;
    this.features.faults.reccobeatsFaultAfter = 0;
  }

  /** Rows a clean run loads for a day's data. */
  rowsOf(variant: DayVariant): number {
    return variant === "empty" ? 0 : TRACKS * RANGES.length;
  }

  /** Env of a data dir pointed at the mocks, with every fake secret configured. */
  env(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
    const s = this.secrets;
    return {
      PIPELINE_DATA_DIR: dataDir,
      PIPELINE_LOG_LEVEL: "debug",
      // The suite's faults and day-by-day baselines are those of the daily top-tracks path;
      // the listening streams' own faults (gap, scope, quota, lost state) are in
      // tests/streams_test.ts.
      PIPELINE_STREAMS: "top_tracks",
      // the enrichment faults need the providers asked on every run (the features cache would
      // answer a day's known tracks); the cache has its own tests (tests/features_cache_test.ts)
      FEATURES_CACHE: "off",
      SPOTIFY_SOURCE: "api",
      SPOTIFY_API_URL: this.spotify.url,
      SPOTIFY_ACCOUNTS_URL: this.spotify.url,
      SPOTIFY_CLIENT_ID: this.spotify.state.clientId,
      SPOTIFY_CLIENT_SECRET: s.clientSecret,
      SPOTIFY_TIME_RANGES: RANGES.join(","),
      SPOTIFY_MAX_TRACKS: String(TRACKS),
      HTTP_TIMEOUT_MS: "1500",
      HTTP_MAX_RETRIES: "3",
      HTTP_MAX_RETRY_SECONDS: "6",
      FEATURES_PROVIDERS: "spotify,reccobeats,csv",
      RECCOBEATS_API_URL: this.features.reccobeatsUrl,
      AUDIO_FEATURES_CSV: this.catalog,
      PIPELINE_TRIGGER_TOKEN: s.triggerToken,
      AWS_ACCESS_KEY_ID: s.awsAccessKeyId,
      AWS_SECRET_ACCESS_KEY: s.awsSecretAccessKey,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: "/nonexistent/aws-config",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
      SNOWFLAKE_PRIVATE_KEY: s.privateKeyPem,
      SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: s.passphrase,
      ...extra,
    };
  }

  /** Writes a token store the mock honours (expired, so the first run refreshes it). */
  async writeTokens(dataDir: string, options: { expired?: boolean } = {}): Promise<void> {
    await Deno.mkdir(dataDir, { recursive: true });
    await writeMockTokens(this.spotify, join(dataDir, "spotify_tokens.json"), {
      expiresAt: options.expired ? new Date(Date.now() - 60_000) : undefined,
    });
  }

  async close(): Promise<void> {
    await this.spotify.close();
    await this.features.close();
  }
}

/** A snapshot day of the fault warehouse, replayed cleanly for the baseline. */
export interface DayPlan {
  date: string;
  caseId: string;
  variant: DayVariant;
}

/** Checks a child's failure: documented exit code, one-line cause, no stack trace. */
export function checkFailure(
  r: ChildResult,
  expected: { exit: number; cause: RegExp },
): { cause: string; problems: string[] } {
  const problems: string[] = [];
  const err = finalError(r.stderr);
  if (r.timedOut) problems.push(`timed out after ${r.ms} ms`);
  if (r.code !== expected.exit) problems.push(`exit ${r.code}, expected ${expected.exit}`);
  if (!err) problems.push("no final error line");
  else {
    if (err.exit_code !== r.code) problems.push(`error line says exit ${err.exit_code}`);
    if (err.msg.includes("\n")) problems.push(`cause spans lines: ${err.msg}`);
    if (!expected.cause.test(err.msg)) {
      problems.push(`cause ${JSON.stringify(err.msg)} !~ ${expected.cause}`);
    }
  }
  if (
    logLines(r.stderr).some((l) => l.stack !== undefined) || /\n\s+at .+:\d+:\d+/.test(r.stderr)
  ) {
    problems.push("a stack trace was printed");
  }
  return { cause: err?.msg ?? "", problems };
}

/** Checks a child succeeded; returns problems. */
export function checkSuccess(r: ChildResult): string[] {
  if (r.code === 0 && !r.timedOut) return [];
  const err = finalError(r.stderr);
  return [
    `exit ${r.code}${r.timedOut ? " (timed out)" : ""}: ${err?.msg ?? r.stderr.slice(-2000)}`,
  ];
}

/** Lines a child logged at warn level about retrying (fetchWithRetry's "Retrying ..."). */
export function retries(r: ChildResult): number {
  return logLines(r.stderr).filter((l) => l.level === "warn" && l.msg.startsWith("Retrying "))
    .length;
}

/** The latest run's manifest in a data dir. */
export async function latestManifest(dataDir: string): Promise<Manifest | undefined> {
  const id = (await runIds(dataDir)).at(-1);
  return id ? await readManifest(join(dataDir, "runs", id)) : undefined;
}

/** Steps a resume skipped after verifying their outputs (from its log). */
export function verifiedSkips(r: ChildResult): StepName[] {
  return logLines(r.stderr).filter((l) => l.msg.endsWith("outputs verified, skipped"))
    .map((l) => l.step as StepName);
}

/** Convenience: the pipeline script with options. */
export function pipeline(
  args: string[],
  env: Record<string, string>,
  options: ScriptOptions,
): Promise<ChildResult> {
  return runScript("pipeline.ts", args, env, options);
}

/** Whether every configured secret of a config is among the needles (sanity of the scan). */
export function configSecretsCovered(env: Record<string, string>, needles: string[]): string[] {
  const config = loadConfig({ env: { ...env, PIPELINE_PROFILE: "local" }, envFile: false });
  return configSecrets(config).filter((s) => !needles.some((n) => s.includes(n)));
}

/** Exit codes by name, for readable expectations. */
export const EXIT = ExitCode;

/** Appends transcripts of every file under `dir` (except `skip`) for the secrets scan. */
export async function collectFiles(
  dir: string,
  into: Transcript[],
  skip: (path: string) => boolean,
): Promise<number> {
  let n = 0;
  const walk = async (d: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (skip(path)) continue;
      if (e.isDirectory) await walk(path);
      else if (e.isFile) {
        const bytes = await Deno.readFile(path).catch(() => new Uint8Array());
        into.push({ label: path, text: new TextDecoder("latin1").decode(bytes) });
        n++;
      }
    }
  };
  await walk(dir);
  return n;
}

/** Shared by the steps of the suite. */
export class Suite {
  readonly results: CaseResult[] = [];
  readonly transcripts: Transcript[] = [];
  readonly days: DayPlan[] = [];
  /** Faults that could not be injected here, and why. */
  readonly notInjected: string[] = [];
  readonly secrets: Secrets;
  readonly root: string;
  /** The local profile's data folder (one warehouse for every local case). */
  readonly local: string;
  readonly sources: Sources;
  /** Rows missing from a final state, compared with a clean run (local and prod). */
  rowsLost = 0;
  /** Rows more than a clean run has (raw rows loaded twice, duplicate keys in a model). */
  rowsDuplicated = 0;
  #day = 0;

  constructor(root: string, secrets: Secrets, sources: Sources) {
    this.root = root;
    this.secrets = secrets;
    this.sources = sources;
    this.local = join(root, "local");
  }

  /** A new snapshot date for a case (consecutive days from Monday 2026-03-02). */
  nextDate(): string {
    const d = new Date(Date.UTC(2026, 2, 2 + this.#day++));
    return d.toISOString().slice(0, 10);
  }

  localEnv(extra: Record<string, string> = {}): Record<string, string> {
    return this.sources.env(this.local, extra);
  }

  /** Runs the pipeline in a child process on the local data folder. */
  pipeline(
    args: string[],
    extra: Record<string, string> = {},
    options: { label: string; timeoutMs?: number; wrap?: string[] },
  ): Promise<ChildResult> {
    return runScript("pipeline.ts", args, this.localEnv(extra), {
      cwd: this.root,
      transcripts: this.transcripts,
      ...options,
    });
  }

  /** Problems with a day's rows in the local warehouse (raw table, latest load of the day). */
  async checkDay(date: string, variant: DayVariant): Promise<string[]> {
    const c = await duckCounts(join(this.local, "warehouse.duckdb"), { models: false });
    const problems: string[] = [];
    const want = this.sources.rowsOf(variant);
    const got = c.rawLatestByDay[date] ?? 0;
    if (got !== want) problems.push(`raw rows of ${date}: ${got}, a clean run loads ${want}`);
    if (c.rawDuplicates) problems.push(`${c.rawDuplicates} duplicated raw rows`);
    if (c.rawUnaccounted) problems.push(`raw rows ≠ load history (${c.rawUnaccounted})`);
    if (c.filesLoadedTwice) problems.push(`${c.filesLoadedTwice} files loaded twice`);
    return problems;
  }

  /**
   * Records fault `c` that failed the run cleanly and was brought back: resumed when there are no
   * problems, timed from `started` (`performance.now()`); throws like {@link record}.
   */
  recordFailure(
    c: CaseInfo,
    result: Omit<CaseResult, keyof CaseInfo | "outcome" | "resumed" | "seconds">,
    started: number,
    problems: string[],
  ): void {
    this.record({
      id: c.id,
      category: c.category,
      fault: c.fault,
      injected: c.injected,
      ...result,
      outcome: "clean failure",
      resumed: problems.length === 0,
      seconds: round((performance.now() - started) / 1000),
    }, problems);
  }

  /** Records a case; throws (failing the step) when it has problems. */
  record(result: CaseResult, problems: string[]): void {
    this.results.push(result);
    if (problems.length) {
      throw new Error(`${result.id}: ${problems.join("; ")}`);
    }
  }
}

/** Seconds, one decimal. */
export function round(n: number): number {
  return Math.round(n * 10) / 10;
}
