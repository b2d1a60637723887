/**
 * Configuration: read once from the environment (plus an optional `.env` file), validated up
 * front, returned as one typed object that every step receives. Library code never reads
 * `Deno.env` itself.
 *
 * Every problem is collected and reported together in one {@link ConfigError}, each line naming
 * the variable and what it is for.
 * @module
 */

import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ColumnMap } from "./features/column_map.ts";
import { Parser, readProcessEnv } from "./_env_parser.ts";
import type { LogLevel } from "./log.ts";
import { STREAM_NAMES, type StreamName } from "./streams/names.ts";

/** `local` needs no account; `prod` uses Spotify, S3, Snowflake and requires every credential. */
export type Profile = "local" | "prod";
/** Spotify's top-items time ranges. */
export type TimeRange = "short_term" | "medium_term" | "long_term";
/** Audio-features providers, tried in the configured order. */
export type FeaturesProvider = "spotify" | "reccobeats" | "csv";
/** Snowflake authenticators supported by the load step. */
export type SnowflakeAuthenticator =
  | "SNOWFLAKE_JWT"
  | "SNOWFLAKE"
  | "PROGRAMMATIC_ACCESS_TOKEN"
  | "OAUTH";

/** The time ranges Spotify accepts. */
export const TIME_RANGES: readonly TimeRange[] = ["short_term", "medium_term", "long_term"];
const PROVIDERS: readonly FeaturesProvider[] = ["spotify", "reccobeats", "csv"];
const AUTHENTICATORS: readonly SnowflakeAuthenticator[] = [
  "SNOWFLAKE_JWT",
  "SNOWFLAKE",
  "PROGRAMMATIC_ACCESS_TOKEN",
  "OAUTH",
];

/** Root of the project (where `deno.json`, `data/` and `dbt/` live), from this module's URL. */
export const PROJECT_ROOT: string = fileURLToPath(new URL("..", import.meta.url)).replace(
  /\/$/,
  "",
);

/** Spotify settings. */
export interface SpotifyConfig {
  clientId?: string;
  clientSecret?: string;
  /** The first account's token store (`default`): what a single-user setup has always used. */
  tokensFile: string;
  /** The other accounts' token stores, one `<name>.json` each (`deno task auth --user <name>`). */
  usersDir: string;
  apiUrl: string;
  accountsUrl: string;
  /** Loopback port of the auth callback (`http://127.0.0.1:<port>/callback`). */
  redirectPort: number;
  timeRanges: TimeRange[];
  /** Most tracks fetched per time range (offset paging, 50 a page). */
  maxTracks: number;
  /** `api` when tokens exist (always in prod), `sample` for the bundled sample (local only). */
  source: "api" | "sample";
  /** Requests in flight to Spotify at once, over every account (one budget for the app). */
  concurrency: number;
}

/** HTTP client settings shared by Spotify and the providers. */
export interface HttpConfig {
  timeoutMs: number;
  maxRetries: number;
  maxRetryMs: number;
}

/** Audio-features enrichment settings. */
export interface FeaturesConfig {
  providers: FeaturesProvider[];
  csvPaths: string[];
  /** `AUDIO_FEATURES_CSV_COLUMNS`: the catalogs' columns the reader does not recognise itself. */
  csvColumns: ColumnMap;
  reccobeatsUrl: string;
  /** Folder for the parsed-catalog cache and the features cache. */
  cacheDir: string;
  /** Keep each track's decided features and ask no provider again for a known track. */
  cache: boolean;
}

/** Object store: a local folder, or S3. */
export type StoreConfig =
  | { kind: "folder"; dir: string }
  | {
    kind: "s3";
    bucket: string;
    prefix: string;
    region: string;
    endpoint?: string;
    forcePathStyle: boolean;
    multipartThresholdBytes: number;
  };

/** Snowflake connection and object names. */
export interface SnowflakeConfig {
  account: string;
  user: string;
  authenticator: SnowflakeAuthenticator;
  privateKeyPath?: string;
  privateKey?: string;
  privateKeyPassphrase?: string;
  password?: string;
  token?: string;
  role?: string;
  warehouse: string;
  database: string;
  /** Schema of the raw table, the stage and the file format. */
  schema: string;
  stage: string;
  fileFormat: string;
  storageIntegration: string;
  /** IAM role Snowflake assumes to read the bucket (for `load --setup`). */
  awsRoleArn?: string;
  /** Host/port/protocol overrides (S3-compatible-style stand-ins such as fakesnow in tests). */
  host?: string;
  port?: number;
  protocol?: "http" | "https";
  timeoutSeconds: number;
}

/** Warehouse: an embedded DuckDB file, or Snowflake. */
export type WarehouseConfig =
  | { kind: "duckdb"; path: string }
  | ({ kind: "snowflake" } & SnowflakeConfig);

/** dbt settings. */
export interface DbtConfig {
  projectDir: string;
  target: "duckdb" | "snowflake";
  venvDir: string;
  /** The Python used to create the venv. */
  python: string;
  /** Coverage floor (share of top tracks with features) below which a dbt test warns. */
  coverageFloor: number;
  /** Schema the models are built in (duckdb: `main`; snowflake: `ANALYTICS`). */
  schema: string;
}

/** HTTP trigger and schedule settings. */
export interface ServeConfig {
  host: string;
  port: number;
  triggerToken?: string;
  /** The daily pipeline's cron schedule (UTC). */
  schedule: string;
  /** The poll's cron schedule (UTC). */
  pollSchedule: string;
}

/** The whole configuration. */
export interface Config {
  profile: Profile;
  /** Root of runs, lake and warehouse (absolute). */
  dataDir: string;
  runsDir: string;
  projectRoot: string;
  logLevel: LogLevel;
  logFormat?: "pretty" | "json";
  /** The streams runs carry (`PIPELINE_STREAMS`). */
  streams: StreamName[];
  spotify: SpotifyConfig;
  http: HttpConfig;
  features: FeaturesConfig;
  store: StoreConfig;
  warehouse: WarehouseConfig;
  dbt: DbtConfig;
  serve: ServeConfig;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Environment to read (default: `Deno.env.toObject()` merged over `.env`). */
  env?: Record<string, string | undefined>;
  /** `.env` file to merge under the environment (default `<cwd>/.env`; missing is fine). */
  envFile?: string | false;
  /**
   * The caller supplies the Spotify tokens itself (the Deno Deploy entry: env or Deno KV), so
   * `prod` does not require a token file.
   */
  tokensElsewhere?: boolean;
}

/** Reads the environment (and optional `.env`), validates it, returns the typed config. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? readProcessEnv(options.envFile);
  const p = new Parser(env);
  const profile = p.oneOf("PIPELINE_PROFILE", ["local", "prod"] as const, "local");
  const prod = profile === "prod";
  const dataDir = resolve(p.str("PIPELINE_DATA_DIR") ?? ".data");
  const fromData = (value: string | undefined, fallback: string) =>
    value ? resolve(value) : join(dataDir, fallback);

  const logLevel = p.oneOf(
    "PIPELINE_LOG_LEVEL",
    ["debug", "info", "warn", "error"] as const,
    "info",
  );
  const logFormatRaw = p.str("PIPELINE_LOG_FORMAT");
  const logFormat = logFormatRaw === undefined
    ? undefined
    : p.oneOf("PIPELINE_LOG_FORMAT", ["pretty", "json"] as const, "json");

  // Spotify
  const tokensFile = fromData(p.str("SPOTIFY_TOKENS_FILE"), "spotify_tokens.json");
  const usersDir = fromData(p.str("SPOTIFY_USERS_DIR"), "spotify_users");
  const anyTokens = fileExists(tokensFile) || hasTokenStores(usersDir);
  const sourceSetting = p.oneOf("SPOTIFY_SOURCE", ["auto", "api", "sample"] as const, "auto");
  let source: "api" | "sample";
  if (prod) {
    if (sourceSetting === "sample") {
      p.problem("SPOTIFY_SOURCE: `sample` is not allowed in the prod profile (real data only)");
    }
    source = "api";
  } else if (sourceSetting === "auto") {
    source = anyTokens ? "api" : "sample";
  } else {
    source = sourceSetting;
  }
  const clientId = p.str("SPOTIFY_CLIENT_ID");
  if (prod && !clientId) {
    p.problem(
      "SPOTIFY_CLIENT_ID is required in prod: the Spotify app's client id, to refresh tokens",
    );
  }
  if (prod && !options.tokensElsewhere && !anyTokens) {
    p.problem(
      `SPOTIFY_TOKENS_FILE: no token store at "${tokensFile}" nor in SPOTIFY_USERS_DIR "${usersDir}" (prod never falls back to sample data); run \`deno task auth\` first`,
    );
  }
  const spotify: SpotifyConfig = {
    clientId,
    clientSecret: p.str("SPOTIFY_CLIENT_SECRET"),
    tokensFile,
    usersDir,
    apiUrl: p.url("SPOTIFY_API_URL", "https://api.spotify.com"),
    accountsUrl: p.url("SPOTIFY_ACCOUNTS_URL", "https://accounts.spotify.com"),
    redirectPort: p.int("SPOTIFY_REDIRECT_PORT", 8888, 1, 65535),
    timeRanges: p.list("SPOTIFY_TIME_RANGES", TIME_RANGES, ["short_term"]),
    maxTracks: p.int("SPOTIFY_MAX_TRACKS", 50, 1, 1000),
    source,
    concurrency: p.int("SPOTIFY_CONCURRENCY", 2, 1, 10),
  };

  const http: HttpConfig = {
    timeoutMs: p.int("HTTP_TIMEOUT_MS", 10_000, 1, 600_000),
    maxRetries: p.int("HTTP_MAX_RETRIES", 5, 0, 20),
    maxRetryMs: p.int("HTTP_MAX_RETRY_SECONDS", 60, 0, 3600) * 1000,
  };

  const csvRaw = p.str("AUDIO_FEATURES_CSV");
  const features: FeaturesConfig = {
    providers: p.list(
      "FEATURES_PROVIDERS",
      PROVIDERS,
      prod ? ["spotify", "reccobeats", "csv"] : ["spotify", "csv"],
    ),
    csvPaths: csvRaw
      ? csvRaw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => resolve(s))
      : [join(PROJECT_ROOT, "data", "audio_features_sample.csv")],
    csvColumns: p.columnMap("AUDIO_FEATURES_CSV_COLUMNS"),
    reccobeatsUrl: p.url("RECCOBEATS_API_URL", "https://api.reccobeats.com"),
    cacheDir: join(dataDir, "cache"),
    cache: p.oneOf("FEATURES_CACHE", ["on", "off"] as const, "on") === "on",
  };

  let store: StoreConfig;
  let warehouse: WarehouseConfig;
  if (prod) {
    store = {
      kind: "s3",
      bucket: p.matching(
        p.required("S3_BUCKET", "the S3 bucket the Parquet files are uploaded to"),
        "S3_BUCKET",
        S3_BUCKET_NAME,
        "an S3 bucket name (lower-case letters, digits, dots and hyphens, at most 63)",
      ),
      prefix: p.keyPrefix("S3_PREFIX"),
      region: p.matching(
        p.required("AWS_REGION", "the bucket's AWS region"),
        "AWS_REGION",
        AWS_REGION_NAME,
        "an AWS region such as us-east-1",
      ),
      endpoint: p.optionalUrl("S3_ENDPOINT"),
      forcePathStyle: p.bool("S3_FORCE_PATH_STYLE", false),
      multipartThresholdBytes: p.int("S3_MULTIPART_THRESHOLD_MB", 16, 5, 5000) * 1024 * 1024,
    };
    warehouse = { kind: "snowflake", ...readSnowflake(p) };
  } else {
    store = { kind: "folder", dir: fromData(p.str("PIPELINE_LAKE_DIR"), "lake") };
    warehouse = { kind: "duckdb", path: fromData(p.str("DUCKDB_PATH"), "warehouse.duckdb") };
    // Each place keeps to its own area: runs are per-run scratch, the lake holds only objects.
    const runsDir = join(dataDir, "runs");
    p.notInside("PIPELINE_LAKE_DIR", store.dir, [["the runs folder", runsDir]]);
    p.notInside("DUCKDB_PATH", warehouse.path, [
      ["the runs folder", runsDir],
      ["the lake folder (PIPELINE_LAKE_DIR)", store.dir],
    ]);
    for (
      const [name, path] of [["SPOTIFY_TOKENS_FILE", tokensFile], ["SPOTIFY_USERS_DIR", usersDir]]
    ) {
      p.notInside(name!, path!, [
        ["the runs folder", runsDir],
        ["the lake folder (PIPELINE_LAKE_DIR)", store.dir],
      ]);
    }
  }

  const dbt: DbtConfig = {
    projectDir: join(PROJECT_ROOT, "dbt"),
    target: prod ? "snowflake" : "duckdb",
    venvDir: resolve(PROJECT_ROOT, p.str("DBT_VENV_DIR") ?? ".venv"),
    python: p.str("DBT_PYTHON") ?? "python3",
    coverageFloor: p.float("DBT_COVERAGE_FLOOR", 0.5, 0, 1),
    schema: p.ident("DBT_SCHEMA", prod ? "ANALYTICS" : "main"),
  };

  const serve: ServeConfig = {
    host: p.host("PIPELINE_HOST", "127.0.0.1"),
    port: p.int("PIPELINE_PORT", 8000, 0, 65535),
    triggerToken: p.str("PIPELINE_TRIGGER_TOKEN"),
    schedule: p.cron("PIPELINE_SCHEDULE", "0 0 * * *"),
    pollSchedule: env.PIPELINE_POLL_SCHEDULE?.trim() === "off"
      ? "off"
      : p.cron("PIPELINE_POLL_SCHEDULE", "*/30 * * * *"),
  };

  const streams = p.list("PIPELINE_STREAMS", STREAM_NAMES, [...STREAM_NAMES]);
  p.throwIfProblems();
  return {
    profile,
    dataDir,
    runsDir: join(dataDir, "runs"),
    projectRoot: PROJECT_ROOT,
    logLevel,
    logFormat,
    streams,
    spotify,
    http,
    features,
    store,
    warehouse,
    dbt,
    serve,
  };
}

/**
 * The forms the Spotify client credentials take in an `Authorization: Basic` header — base64 of
 * `id:secret`, raw and form-urlencoded (RFC 6749 §2.3.1, as oauth4webapi sends them) — so a
 * token endpoint that echoes the header is redacted too.
 */
export function basicCredentialForms(
  clientId: string | undefined,
  secret: string | undefined,
): string[] {
  if (!clientId || !secret) return [];
  const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
  const form = (s: string) =>
    encodeURIComponent(s).replace(
      /[-_.!~*'()]|%20/g,
      (c) => c === "%20" ? "+" : `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  return [
    ...new Set([
      b64(`${clientId}:${secret}`),
      b64(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`),
      b64(`${form(clientId)}:${form(secret)}`),
    ]),
  ];
}

/** Every secret value present in the config (for log redaction). */
export function configSecrets(config: Config): string[] {
  const out = [
    config.spotify.clientSecret,
    config.serve.triggerToken,
    ...basicCredentialForms(config.spotify.clientId, config.spotify.clientSecret),
  ];
  if (config.warehouse.kind === "snowflake") {
    const w = config.warehouse;
    out.push(w.password, w.token, w.privateKey, w.privateKeyPassphrase);
  }
  return out.filter((s): s is string => typeof s === "string" && s.length > 0);
}

function readSnowflake(p: Parser): SnowflakeConfig {
  const authenticator = p.oneOf("SNOWFLAKE_AUTHENTICATOR", AUTHENTICATORS, "SNOWFLAKE_JWT");
  const cfg: SnowflakeConfig = {
    account: p.matching(
      p.required("SNOWFLAKE_ACCOUNT", "the Snowflake account identifier"),
      "SNOWFLAKE_ACCOUNT",
      SNOWFLAKE_ACCOUNT_NAME,
      "an account identifier such as myorg-myaccount (letters, digits, _ - .)",
    ),
    user: p.matching(
      p.required("SNOWFLAKE_USER", "the Snowflake user the pipeline connects as"),
      "SNOWFLAKE_USER",
      SNOWFLAKE_USER_NAME,
      "a Snowflake login name such as PIPELINE_USER (1 to 255 characters, no control " +
        "characters, no leading or trailing spaces)",
    ),
    authenticator,
    privateKeyPath: p.str("SNOWFLAKE_PRIVATE_KEY_PATH"),
    privateKey: p.str("SNOWFLAKE_PRIVATE_KEY"),
    privateKeyPassphrase: p.str("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
    password: p.str("SNOWFLAKE_PASSWORD"),
    token: p.str("SNOWFLAKE_TOKEN"),
    role: p.ident("SNOWFLAKE_ROLE", "SPOTIFY_PIPELINE"),
    warehouse: p.ident("SNOWFLAKE_WAREHOUSE", "SPOTIFY_WH"),
    database: p.ident("SNOWFLAKE_DATABASE", "SPOTIFY"),
    schema: p.ident("SNOWFLAKE_SCHEMA", "RAW"),
    stage: p.ident("SNOWFLAKE_STAGE", "SPOTIFY_S3_STAGE"),
    fileFormat: p.ident("SNOWFLAKE_FILE_FORMAT", "SPOTIFY_PARQUET"),
    storageIntegration: p.ident("SNOWFLAKE_STORAGE_INTEGRATION", "SPOTIFY_S3_INTEGRATION"),
    awsRoleArn: p.str("SNOWFLAKE_AWS_ROLE_ARN") === undefined ? undefined : p.matching(
      p.str("SNOWFLAKE_AWS_ROLE_ARN")!,
      "SNOWFLAKE_AWS_ROLE_ARN",
      IAM_ROLE_ARN,
      "an IAM role ARN such as arn:aws:iam::123456789012:role/snowflake-reader",
    ),
    host: p.str("SNOWFLAKE_HOST") === undefined ? undefined : p.host("SNOWFLAKE_HOST", ""),
    port: p.str("SNOWFLAKE_PORT") === undefined
      ? undefined
      : p.int("SNOWFLAKE_PORT", 443, 1, 65535),
    protocol: p.oneOf("SNOWFLAKE_PROTOCOL", ["http", "https"] as const, "https"),
    timeoutSeconds: p.int("SNOWFLAKE_TIMEOUT_SECONDS", 60, 1, 3600),
  };
  if (authenticator === "SNOWFLAKE_JWT" && !cfg.privateKeyPath && !cfg.privateKey) {
    p.problem(
      "SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY is required for key-pair auth (SNOWFLAKE_AUTHENTICATOR=SNOWFLAKE_JWT)",
    );
  }
  if (cfg.privateKey && !PEM_PRIVATE_KEY.test(cfg.privateKey)) {
    // never echo the value: it is a secret
    p.problem(
      "SNOWFLAKE_PRIVATE_KEY is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----); to name a key file, use SNOWFLAKE_PRIVATE_KEY_PATH",
    );
  }
  if (cfg.privateKeyPath && !fileExists(cfg.privateKeyPath)) {
    p.problem(`SNOWFLAKE_PRIVATE_KEY_PATH: no file at "${cfg.privateKeyPath}"`);
  }
  if (authenticator === "SNOWFLAKE" && !cfg.password) {
    p.problem("SNOWFLAKE_PASSWORD is required for SNOWFLAKE_AUTHENTICATOR=SNOWFLAKE");
  }
  if (
    (authenticator === "PROGRAMMATIC_ACCESS_TOKEN" || authenticator === "OAUTH") && !cfg.token
  ) {
    p.problem(`SNOWFLAKE_TOKEN is required for SNOWFLAKE_AUTHENTICATOR=${authenticator}`);
  }
  return cfg;
}

/** Whether `dir` holds a token store (`<name>.json`) of an account. */
function hasTokenStores(dir: string): boolean {
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.name.endsWith(".json") && !entry.name.startsWith(".")) return true;
    }
  } catch {
    // no folder: no accounts there
  }
  return false;
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const S3_BUCKET_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const AWS_REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const SNOWFLAKE_ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
/** Any login name Snowflake can hold (quoted identifiers allow spaces, `@`, `.`), but one line. */
const SNOWFLAKE_USER_NAME = /^(?=\S)(?=[^]*\S$)[^\p{Cc}]{1,255}$/u;
const IAM_ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]{1,512}$/;
const PEM_PRIVATE_KEY = /-----BEGIN (ENCRYPTED |RSA )?PRIVATE KEY-----/;
