/**
 * Every setting the toolkit reads, documented once: the list drives `--help`, the settings table
 * of `docs/settings.md` (`deno task docs`, checked by a test) and the secrets never logged.
 * @module
 */

/** A documented setting (drives `docs/settings.md` and `--help`). */
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
