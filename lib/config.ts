/**
 * Configuration: read once from the environment (plus an optional `.env` file), validated up
 * front, returned as one typed object that every step receives. Library code never reads
 * `Deno.env` itself.
 *
 * Every problem is collected and reported together in one {@link ConfigError}, each line naming
 * the variable and what it is for.
 * @module
 */

// node:util's parseEnv reads .env files as npm:dotenv does, without loading an npm package at
// start-up (~25 ms: issue 7, start-up). Imported as a namespace: Deno before 2.7 (Deno Deploy's
// 2.5) has no parseEnv, and a named import would fail every module that loads the config.
import * as nodeUtil from "node:util";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCron } from "./cron_expr.ts";
import { type ColumnMap, parseColumnMap } from "./features/column_map.ts";
import { ConfigError } from "./errors.ts";
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

/** A documented setting (drives README's table and `--help`). */
export interface SettingDoc {
  name: string;
  description: string;
  default?: string;
  /** Required in the `prod` profile. */
  prod?: boolean;
  secret?: boolean;
}

/** Every environment variable the toolkit reads. */
export const SETTINGS: readonly SettingDoc[] = [
  { name: "PIPELINE_PROFILE", description: "`local` or `prod`", default: "local" },
  {
    name: "PIPELINE_DATA_DIR",
    description: "root of runs, lake folder and DuckDB warehouse",
    default: ".data",
  },
  {
    name: "PIPELINE_STREAMS",
    description: "comma-separated streams to collect: top_tracks, recently_played, top_artists",
    default: "all of them",
  },
  { name: "PIPELINE_LOG_LEVEL", description: "debug, info, warn, error", default: "info" },
  {
    name: "PIPELINE_LOG_FORMAT",
    description: "`pretty` or `json` (default: pretty on a terminal, JSON lines otherwise)",
  },
  { name: "SPOTIFY_CLIENT_ID", description: "Spotify app client id (auth, refresh)", prod: true },
  {
    name: "SPOTIFY_CLIENT_SECRET",
    description: "client secret for confidential apps (sent as HTTP Basic); optional with PKCE",
    secret: true,
  },
  {
    name: "SPOTIFY_TOKENS_FILE",
    description: "token store written by `auth` (mode 0600)",
    default: "$PIPELINE_DATA_DIR/spotify_tokens.json",
  },
  {
    name: "SPOTIFY_USERS_DIR",
    description:
      "token stores of the other accounts, `<name>.json` each (`auth --user <name>`, mode 0600)",
    default: "$PIPELINE_DATA_DIR/spotify_users",
  },
  {
    name: "SPOTIFY_CONCURRENCY",
    description: "Spotify requests in flight at once, over every account (1..10)",
    default: "2",
  },
  { name: "SPOTIFY_API_URL", description: "Web API base URL", default: "https://api.spotify.com" },
  {
    name: "SPOTIFY_ACCOUNTS_URL",
    description: "Accounts service base URL",
    default: "https://accounts.spotify.com",
  },
  {
    name: "SPOTIFY_REDIRECT_PORT",
    description: "loopback port of the auth callback",
    default: "8888",
  },
  {
    name: "SPOTIFY_TIME_RANGES",
    description: "comma-separated: short_term, medium_term, long_term",
    default: "short_term",
  },
  {
    name: "SPOTIFY_MAX_TRACKS",
    description: "most tracks per time range (1..1000)",
    default: "50",
  },
  {
    name: "SPOTIFY_SOURCE",
    description:
      "`auto` (API when any account has tokens, else the bundled sample; local only), `api`, `sample`",
    default: "auto",
  },
  { name: "HTTP_TIMEOUT_MS", description: "per-request timeout", default: "10000" },
  { name: "HTTP_MAX_RETRIES", description: "retries on 429/5xx/network errors", default: "5" },
  {
    name: "HTTP_MAX_RETRY_SECONDS",
    description: "cap on total retry wait per request",
    default: "60",
  },
  {
    name: "FEATURES_PROVIDERS",
    description: "audio-features providers in order: spotify, reccobeats, csv",
    default: "local: spotify,csv; prod: spotify,reccobeats,csv",
  },
  {
    name: "AUDIO_FEATURES_CSV",
    description: "audio-features CSV catalog(s), comma-separated",
    default: "data/audio_features_sample.csv",
  },
  {
    name: "AUDIO_FEATURES_CSV_COLUMNS",
    description:
      "column map for the catalog(s): `name=Column[:scale]`, comma-separated (names: track_id, track_name, artists and each feature; scales: unit, percent, note, mode), e.g. `tempo=Beats Per Minute (BPM),energy=Energy:percent`",
    default: "(none: the header decides)",
  },
  {
    name: "FEATURES_CACHE",
    description:
      "`on`: keep each track's features (cache/audio_features.json), never ask again for a known track (a miss: after 7 days); `off`: ask every run",
    default: "on",
  },
  {
    name: "RECCOBEATS_API_URL",
    description: "ReccoBeats API base URL",
    default: "https://api.reccobeats.com",
  },
  {
    name: "PIPELINE_LAKE_DIR",
    description: "object-store folder (local profile)",
    default: "$PIPELINE_DATA_DIR/lake",
  },
  {
    name: "DUCKDB_PATH",
    description: "DuckDB warehouse file (local profile)",
    default: "$PIPELINE_DATA_DIR/warehouse.duckdb",
  },
  { name: "S3_BUCKET", description: "bucket for the Parquet files", prod: true },
  { name: "S3_PREFIX", description: "key prefix inside the bucket", default: "(none)" },
  { name: "AWS_REGION", description: "bucket region", prod: true },
  { name: "S3_ENDPOINT", description: "S3-compatible endpoint (MinIO, R2, LocalStack)" },
  {
    name: "S3_FORCE_PATH_STYLE",
    description: "path-style addressing (true/false)",
    default: "false",
  },
  {
    name: "S3_MULTIPART_THRESHOLD_MB",
    description: "multipart upload above this size",
    default: "16",
  },
  { name: "SNOWFLAKE_ACCOUNT", description: "account identifier (orgname-account)", prod: true },
  { name: "SNOWFLAKE_USER", description: "service user", prod: true },
  {
    name: "SNOWFLAKE_AUTHENTICATOR",
    description: "SNOWFLAKE_JWT (key pair), SNOWFLAKE (password), PROGRAMMATIC_ACCESS_TOKEN, OAUTH",
    default: "SNOWFLAKE_JWT",
  },
  { name: "SNOWFLAKE_PRIVATE_KEY_PATH", description: "PKCS#8 private key file (key-pair auth)" },
  {
    name: "SNOWFLAKE_PRIVATE_KEY",
    description: "PKCS#8 private key PEM, instead of a file",
    secret: true,
  },
  {
    name: "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
    description: "passphrase of an encrypted key",
    secret: true,
  },
  { name: "SNOWFLAKE_PASSWORD", description: "password (SNOWFLAKE authenticator)", secret: true },
  {
    name: "SNOWFLAKE_TOKEN",
    description: "programmatic access token or OAuth token",
    secret: true,
  },
  { name: "SNOWFLAKE_ROLE", description: "role to use", default: "SPOTIFY_PIPELINE" },
  { name: "SNOWFLAKE_WAREHOUSE", description: "virtual warehouse", default: "SPOTIFY_WH" },
  { name: "SNOWFLAKE_DATABASE", description: "database", default: "SPOTIFY" },
  {
    name: "SNOWFLAKE_SCHEMA",
    description: "schema of the raw tables and the stage",
    default: "RAW",
  },
  { name: "SNOWFLAKE_STAGE", description: "external stage name", default: "SPOTIFY_S3_STAGE" },
  { name: "SNOWFLAKE_FILE_FORMAT", description: "file format name", default: "SPOTIFY_PARQUET" },
  {
    name: "SNOWFLAKE_STORAGE_INTEGRATION",
    description: "storage integration name",
    default: "SPOTIFY_S3_INTEGRATION",
  },
  {
    name: "SNOWFLAKE_AWS_ROLE_ARN",
    description: "IAM role the integration assumes (load --setup)",
  },
  { name: "SNOWFLAKE_HOST", description: "host override (stand-ins, private link)" },
  { name: "SNOWFLAKE_PORT", description: "port override" },
  { name: "SNOWFLAKE_PROTOCOL", description: "http or https", default: "https" },
  {
    name: "SNOWFLAKE_TIMEOUT_SECONDS",
    description: "connect and statement timeout",
    default: "60",
  },
  { name: "DBT_PYTHON", description: "python used to create the dbt venv", default: "python3" },
  { name: "DBT_VENV_DIR", description: "dbt virtualenv", default: ".venv" },
  {
    name: "DBT_SCHEMA",
    description: "schema dbt builds the models in (the raw tables stay in raw / SNOWFLAKE_SCHEMA)",
    default: "local: main; prod: ANALYTICS",
  },
  {
    name: "DBT_COVERAGE_FLOOR",
    description: "share of tracks with features below which dbt warns (0..1)",
    default: "0.5",
  },
  { name: "PIPELINE_HOST", description: "serve: listen address", default: "127.0.0.1" },
  { name: "PIPELINE_PORT", description: "serve: listen port", default: "8000" },
  {
    name: "PIPELINE_TRIGGER_TOKEN",
    description: "serve: bearer token required on every endpoint but /healthz",
    secret: true,
  },
  {
    name: "PIPELINE_SCHEDULE",
    description: "cron schedule (UTC) of the daily pipeline",
    default: "0 0 * * *",
  },
  {
    name: "PIPELINE_POLL_SCHEDULE",
    description: "cron schedule (UTC) of the poll (recently played); `off` to not register it",
    default: "*/30 * * * *",
  },
];

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

function readProcessEnv(envFile: string | false | undefined): Record<string, string> {
  const fromFile: Record<string, string> = {};
  if (envFile !== false) {
    const path = envFile ?? ".env";
    let text: string | undefined;
    try {
      text = Deno.readTextFileSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (text !== undefined) {
      const parseEnv = (nodeUtil as { parseEnv?: (text: string) => Record<string, string> })
        .parseEnv;
      if (typeof parseEnv !== "function") {
        throw new ConfigError(
          `Cannot read ${path}: reading a .env file needs Deno 2.7 or newer (node:util parseEnv), this is Deno ${Deno.version.deno}; set the variables in the environment instead, or upgrade Deno`,
        );
      }
      Object.assign(fromFile, parseEnv(text));
    }
  }
  return { ...fromFile, ...Deno.env.toObject() };
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
/** A key prefix segment (what lake keys and Snowflake stage paths accept). */
const KEY_SEGMENT = /^[A-Za-z0-9_=.-]+$/;
const SNOWFLAKE_ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
/** Any login name Snowflake can hold (quoted identifiers allow spaces, `@`, `.`), but one line. */
const SNOWFLAKE_USER_NAME = /^(?=\S)(?=[^]*\S$)[^\p{Cc}]{1,255}$/u;
const IAM_ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]{1,512}$/;
const PEM_PRIVATE_KEY = /-----BEGIN (ENCRYPTED |RSA )?PRIVATE KEY-----/;
/** A host name or IP literal (no scheme, port or path). */
const HOST_NAME =
  /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*)$/;

/** Collects problems while reading variables, so all are reported at once. */
class Parser {
  #env: Record<string, string | undefined>;
  #problems: string[] = [];

  constructor(env: Record<string, string | undefined>) {
    this.#env = env;
  }

  problem(message: string): void {
    this.#problems.push(message);
  }

  throwIfProblems(): void {
    if (this.#problems.length) {
      throw new ConfigError(this.#problems, {
        hint: 'Set them in the environment or in .env (see README, "Settings").',
      });
    }
  }

  str(name: string): string | undefined {
    const v = this.#env[name]?.trim();
    return v ? v : undefined;
  }

  required(name: string, purpose: string): string {
    const v = this.str(name);
    if (v === undefined) {
      this.problem(`${name} is required in the prod profile: ${purpose}`);
      return "";
    }
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.str(name);
    if (v === undefined) return fallback;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problem(`${name}="${v}" is not valid: expected one of ${allowed.join(", ")}`);
    return fallback;
  }

  list<T extends string>(name: string, allowed: readonly T[], fallback: T[]): T[] {
    const v = this.str(name);
    if (v === undefined) return fallback;
    const items = v.split(",").map((s) => s.trim()).filter(Boolean);
    const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
    if (bad.length || items.length === 0) {
      this.problem(
        `${name}="${v}" is not valid: expected a comma-separated list of ${allowed.join(", ")}`,
      );
      return fallback;
    }
    return [...new Set(items)] as T[];
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.str(name);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      this.problem(`${name}="${v}" is not valid: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return Number(v);
  }

  float(name: string, fallback: number, min: number, max: number): number {
    const v = this.str(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) {
      this.problem(`${name}="${v}" is not valid: expected a number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  columnMap(name: string): ColumnMap {
    const v = this.str(name);
    if (v === undefined) return {};
    const { map, problems } = parseColumnMap(v);
    for (const problem of problems) this.problem(`${name}: ${problem}`);
    return map;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.str(name)?.toLowerCase();
    if (v === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off"].includes(v)) return false;
    this.problem(`${name}="${v}" is not valid: expected true or false`);
    return fallback;
  }

  url(name: string, fallback: string): string {
    return this.optionalUrl(name) ?? fallback;
  }

  optionalUrl(name: string): string | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    try {
      const u = new URL(v);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError("scheme");
      return v.replace(/\/+$/, "");
    } catch {
      this.problem(`${name}="${v}" is not valid: expected an http(s) URL`);
      return undefined;
    }
  }

  ident(name: string, fallback: string): string {
    const v = this.str(name) ?? fallback;
    if (!/^[A-Za-z_][A-Za-z0-9_$]{0,254}$/.test(v)) {
      this.problem(
        `${name}="${v}" is not valid: expected a Snowflake identifier (letters, digits, _ and $, not starting with a digit)`,
      );
    }
    return v;
  }

  cron(name: string, fallback: string): string {
    const v = this.str(name) ?? fallback;
    if (parseCron(v) === undefined) {
      this.problem(
        `${name}="${v}" is not valid: expected a 5-field cron expression such as "0 0 * * *" (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)`,
      );
    }
    return v;
  }

  /** `value` if it matches `pattern`, else a problem naming the variable (value echoed). */
  matching(value: string, name: string, pattern: RegExp, expected: string): string {
    if (value !== "" && !pattern.test(value)) {
      // JSON quoting: the same as "value" for plain text, escaped for control characters
      this.problem(`${name}=${JSON.stringify(value)} is not valid: expected ${expected}`);
    }
    return value;
  }

  host(name: string, fallback: string): string {
    const v = this.str(name) ?? fallback;
    return this.matching(v, name, HOST_NAME, "a host name or IP address (no scheme, port or path)");
  }

  /** A key prefix: `/`-separated segments of letters, digits and `_=.-`, none `.` or `..`. */
  keyPrefix(name: string): string {
    const v = (this.str(name) ?? "").replace(/^\/+|\/+$/g, "");
    if (v && !v.split("/").every((seg) => KEY_SEGMENT.test(seg) && seg !== "." && seg !== "..")) {
      this.problem(
        `${name}="${v}" is not valid: expected key segments of letters, digits and _ = . - separated by /, none "." or ".."`,
      );
    }
    return v;
  }

  /** A problem when `path` is (inside) one of `areas`. */
  notInside(name: string, path: string, areas: [string, string][]): void {
    for (const [what, area] of areas) {
      const rel = relative(area, path);
      if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))) {
        this.problem(`${name}="${path}" is not valid: it is inside ${what} (${area})`);
      }
    }
  }
}
