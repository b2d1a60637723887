/**
 * Bad input: every setting with an invalid value is a config error naming it (exit 2, secrets
 * never echoed); malformed Spotify payloads (missing fields, wrong types, nulls where Spotify
 * documents objects) are SourceErrors naming the URL and the field; malformed audio-features
 * answers never crash enrich; enrich never passes on a value the warehouse's dbt tests reject;
 * dbt's multi-line errors end as one line. (The HTTP trigger's bad input — oversized body, wrong
 * content type, bad JSON, path traversal in /runs/:id — is covered by tests/serve_test.ts.)
 */

import { featuresCachePath } from "../../lib/features/cache.ts";
import { join } from "node:path";
import { type Config, loadConfig } from "../../lib/config.ts";
import { SETTINGS } from "../../lib/settings.ts";
import { dbtErrorOf, type DbtSummary } from "../../lib/dbt/runner.ts";
import { ConfigError, ExitCode, exitCodeOf, SourceError } from "../../lib/errors.ts";
import { checkFeature } from "../../lib/features/provider.ts";
import { createRun } from "../../lib/run.ts";
import { runStep } from "../../lib/steps.ts";
import { FEATURE_COLUMNS, type FeatureName } from "../../lib/types.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  runTask,
  testLog,
} from "../_spotify_test_util.ts";
import {
  makeTrackItems,
  mockEnv,
  recordedTopTracks,
  startMockSpotify,
  writeMockTokens,
} from "../mock_spotify.ts";

const PEM =
  "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----";

/** A valid environment of each profile (prod: every required setting present). */
function baseEnv(profile: "local" | "prod", dir: string): Record<string, string> {
  const common = { PIPELINE_DATA_DIR: dir };
  if (profile === "local") return common;
  return {
    ...common,
    PIPELINE_PROFILE: "prod",
    SPOTIFY_CLIENT_ID: "abc123",
    S3_BUCKET: "my-lake",
    AWS_REGION: "eu-west-1",
    SNOWFLAKE_ACCOUNT: "myorg-myaccount",
    SNOWFLAKE_USER: "PIPELINE",
    SNOWFLAKE_PRIVATE_KEY: PEM,
  };
}

function load(env: Record<string, string>): Config {
  // prod: the token file's presence is checked at run time here (tokensElsewhere)
  return loadConfig({ env, envFile: false, tokensElsewhere: true });
}

/**
 * Invalid values of every setting, and the profile where the setting is read. Settings not here
 * take any value and are listed in {@link FREE_FORM} with the reason.
 */
function invalidValues(
  dir: string,
): Record<string, { profile: "local" | "prod"; values: string[] }> {
  const local = (...values: string[]) => ({ profile: "local" as const, values });
  const prod = (...values: string[]) => ({ profile: "prod" as const, values });
  return {
    PIPELINE_PROFILE: local("staging", "PROD"),
    PIPELINE_LOG_LEVEL: local("verbose"),
    PIPELINE_LOG_FORMAT: local("xml"),
    // paths that would put one area inside another
    SPOTIFY_TOKENS_FILE: local(join(dir, "lake", "tokens.json"), join(dir, "runs", "t.json")),
    PIPELINE_LAKE_DIR: local(join(dir, "runs"), join(dir, "runs", "lake")),
    DUCKDB_PATH: local(join(dir, "lake", "w.duckdb"), join(dir, "runs", "w.duckdb")),
    SPOTIFY_API_URL: local("ftp://api.spotify.com", "not a url", "api.spotify.com"),
    SPOTIFY_ACCOUNTS_URL: local("accounts.spotify.com", "file:///etc/passwd"),
    SPOTIFY_REDIRECT_PORT: local("0", "70000", "88a"),
    SPOTIFY_TIME_RANGES: local("weekly", "short_term,yearly", ",,"),
    SPOTIFY_MAX_TRACKS: local("0", "1001", "ten"),
    SPOTIFY_USERS_DIR: local(join(dir, "lake", "users"), join(dir, "runs", "users")),
    SPOTIFY_CONCURRENCY: local("0", "11", "two"),
    SPOTIFY_SOURCE: local("file"),
    HTTP_TIMEOUT_MS: local("0", "-5", "1e3"),
    HTTP_MAX_RETRIES: local("21", "x"),
    HTTP_MAX_RETRY_SECONDS: local("-1", "3601"),
    FEATURES_PROVIDERS: local("lastfm", "csv,musicbrainz"),
    RECCOBEATS_API_URL: local("javascript:alert(1)"),
    S3_BUCKET: prod("My_Bucket", "bucket/with/slash", "a".repeat(64)),
    S3_PREFIX: prod("../up", "a/../b", "a/./b", "pré", "a b"),
    AWS_REGION: prod("US-EAST-1", "us_east_1", "mars"),
    S3_ENDPOINT: prod("localhost:9000"),
    S3_FORCE_PATH_STYLE: prod("maybe"),
    S3_MULTIPART_THRESHOLD_MB: prod("1", "5001"),
    SNOWFLAKE_ACCOUNT: prod("evil.example.com/x#", "acct name", "-leading"),
    SNOWFLAKE_AUTHENTICATOR: prod("KERBEROS"),
    SNOWFLAKE_PRIVATE_KEY_PATH: prod("/nonexistent/rsa_key.p8"),
    SNOWFLAKE_PRIVATE_KEY: prod(
      "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-pem-secret",
      "/path/to/key.p8",
    ),
    SNOWFLAKE_ROLE: prod('PIPELINE"; DROP TABLE x; --'),
    SNOWFLAKE_USER: prod("PIPE\nLINE", "U".repeat(256), "a\u0000b"),
    SNOWFLAKE_WAREHOUSE: prod("WH-1"),
    SNOWFLAKE_DATABASE: prod("1DB"),
    SNOWFLAKE_SCHEMA: prod("RAW.X"),
    SNOWFLAKE_STAGE: prod("stage name"),
    SNOWFLAKE_FILE_FORMAT: prod("fmt;"),
    SNOWFLAKE_STORAGE_INTEGRATION: prod("int'x"),
    SNOWFLAKE_AWS_ROLE_ARN: prod("arn:aws:iam::123:user/x", "my-role"),
    SNOWFLAKE_HOST: prod("http://sf.local", "sf.local:443", "sf/local"),
    SNOWFLAKE_PORT: prod("0", "99999"),
    SNOWFLAKE_PROTOCOL: prod("ftp"),
    SNOWFLAKE_TIMEOUT_SECONDS: prod("0", "3601"),
    DBT_SCHEMA: local("main; drop", "1main"),
    DBT_COVERAGE_FLOOR: local("1.5", "half", "-0.1"),
    PIPELINE_HOST: local("http://0.0.0.0", "my host", "127.0.0.1:8000"),
    PIPELINE_PORT: local("80000", "-1", "port"),
    PIPELINE_STREAMS: local("plays", "top_tracks,recently", ",,"),
    FEATURES_CACHE: local("yes", "1"),
    AUDIO_FEATURES_CSV_COLUMNS: local(
      "tempo",
      "bpm=BPM",
      "key=Key:percent",
      "tempo=A,tempo=B",
      "artists=Artist:note",
      "track_id=:unit",
    ),
    PIPELINE_POLL_SCHEDULE: local("every 30 minutes", "61 * * * *", "0 0 * *"),
    PIPELINE_SCHEDULE: local(
      "every day",
      "61 * * * *",
      "0 24 * * *",
      "0 0 0 * *",
      "0 0 * 13 *",
      "0 0 * * 8",
      "*/0 * * * *",
      "5-1 * * * *",
      "0 0 * *",
    ),
  };
}

/** Settings that take any value, and why (their failures show at run time, named there). */
const FREE_FORM: Record<string, string> = {
  PIPELINE_DATA_DIR: "any folder (created when missing)",
  SPOTIFY_CLIENT_ID: "Spotify's format is not documented as fixed; a wrong one fails at refresh",
  SPOTIFY_CLIENT_SECRET: "a secret: checked by Spotify (invalid_client), never echoed",
  AUDIO_FEATURES_CSV: "paths anywhere; a missing or bad file fails enrich naming it (exit 2)",
  SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: "a secret: a wrong one fails the login naming the key",
  SNOWFLAKE_PASSWORD: "a secret",
  SNOWFLAKE_TOKEN: "a secret",
  DBT_PYTHON: "any command; transform says when it is missing or too old",
  DBT_VENV_DIR: "any folder (created when missing)",
  PIPELINE_TRIGGER_TOKEN: "a secret: serve refuses one shorter than it accepts, never echoing it",
};

Deno.test("every setting with an invalid value is a config error naming it; secrets are never echoed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bad_config_" });
  try {
    const table = invalidValues(dir);
    const secret = new Set(SETTINGS.filter((s) => s.secret).map((s) => s.name));
    // every documented setting is either checked here or declared free-form
    for (const s of SETTINGS) {
      assert(
        s.name in table || s.name in FREE_FORM,
        `${s.name}: add its invalid values to the table, or to FREE_FORM with the reason`,
      );
    }
    for (const profile of ["local", "prod"] as const) load(baseEnv(profile, dir)); // valid
    for (const [name, { profile, values }] of Object.entries(table)) {
      for (const value of values) {
        const error = await assertRejects(
          () => Promise.resolve().then(() => load({ ...baseEnv(profile, dir), [name]: value })),
          ConfigError,
        );
        const where = `${name}=${JSON.stringify(value)}: ${error.message}`;
        assertEquals(error.problems.length, 1, where);
        assertStringIncludes(error.problems[0]!, name, where);
        assertEquals(exitCodeOf(error), ExitCode.config);
        if (secret.has(name)) assert(!error.message.includes(value), `echoed a secret: ${where}`);
      }
    }
    // the sample is never a prod source
    const prodSample = await assertRejects(
      () =>
        Promise.resolve().then(() => load({ ...baseEnv("prod", dir), SPOTIFY_SOURCE: "sample" })),
      ConfigError,
    );
    assertStringIncludes(prodSample.message, "SPOTIFY_SOURCE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLI reports every bad setting at once (exit 2), and bad flags by name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bad_config_cli_" });
  try {
    const errorsOf = (stderr: string) =>
      stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
        .filter((r) => r.level === "error" && r.exit_code !== undefined);
    const r = await runTask("pipeline.ts", [], {
      PIPELINE_DATA_DIR: dir,
      SPOTIFY_TIME_RANGES: "weekly",
      PIPELINE_SCHEDULE: "61 * * * *",
      PIPELINE_LAKE_DIR: join(dir, "runs", "lake"),
    }, dir);
    assertEquals(r.code, ExitCode.config, r.stderr);
    const msg = errorsOf(r.stderr)[0]!.msg as string;
    for (const name of ["SPOTIFY_TIME_RANGES", "PIPELINE_SCHEDULE", "PIPELINE_LAKE_DIR"]) {
      assertStringIncludes(msg, name);
    }
    for (
      const [args, what] of [
        [["--date", "2026-02-30"], '--date "2026-02-30" is not valid'],
        [["--date", "yesterday"], '--date "yesterday" is not valid'],
        [["--from", "nowhere"], '--from "nowhere" is not a step'],
        [["--to", "fetch", "--from", "load"], "--from load comes after --to fetch"],
        [["--run", "../x"], '--run "../x" is not a run id'],
        [["--resume", "--date", "2026-01-01"], "--date only applies to a new run"],
      ] as const
    ) {
      const bad = await runTask("pipeline.ts", [...args], { PIPELINE_DATA_DIR: dir }, dir);
      assertEquals(bad.code, ExitCode.config, `${args.join(" ")}: ${bad.stderr}`);
      assertStringIncludes(errorsOf(bad.stderr)[0]!.msg, what);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const TOP = "/v1/me/top/tracks";
const PAGE0 = `${TOP}?time_range=short_term&limit=50&offset=0`;

Deno.test("malformed top-tracks payloads are SourceErrors naming the URL and the field (exit 3)", async () => {
  const mock = startMockSpotify({ topTracks: makeTrackItems(3) });
  const dir = await Deno.makeTempDir({ prefix: "bad_payload_" });
  try {
    const config = loadConfig({
      env: mockEnv(mock, dir, { HTTP_TIMEOUT_MS: "5000", HTTP_MAX_RETRIES: "0" }),
      envFile: false,
    });
    await writeMockTokens(mock, config.spotify.tokensFile);
    const track = recordedTopTracks()[0]!;
    const id = track.id as string;
    const page = (items: unknown[], extra: Record<string, unknown> = {}) => ({
      href: "x",
      items,
      limit: 50,
      offset: 0,
      next: null,
      previous: null,
      total: items.length,
      ...extra,
    });
    const withTrack = (patch: Record<string, unknown>) => page([{ ...track, ...patch }]);
    const cases: [unknown, string][] = [
      [null, "expected a JSON object, found null"],
      [[track], "expected a JSON object, found an array"],
      [page([null]), "items[0] is null, expected a track object"],
      [page([5]), "items[0] is number 5, expected a track object"],
      [withTrack({ id: undefined }), "items[0] has no track id (found nothing)"],
      [withTrack({ id: 42 }), "items[0] has no track id (found number 42)"],
      [withTrack({ name: null }), `items[0] (${id}) has no "name"`],
      [
        withTrack({ name: "x".repeat(5_000_000) }),
        `items[0] (${id}) "name" is 5000000 characters long (at most 1000)`,
      ],
      [
        withTrack({ artists: [{ id: "a", name: "y".repeat(1001) }] }),
        `"artists[0].name" is 1001 characters long`,
      ],
      [withTrack({ artists: null }), `items[0] (${id}) "artists" is not an array (found null)`],
      [withTrack({ artists: [null] }), `items[0] (${id}) artists[0] has no "name"`],
      [withTrack({ artists: [{ name: "A", id: null }] }), `artists[0] has no "id" (found null)`],
      [withTrack({ duration_ms: null }), `"duration_ms" is not a number (found null)`],
      [withTrack({ explicit: "false" }), `"explicit" is not a boolean (found string "false")`],
      [withTrack({ popularity: "high" }), `"popularity" is not a number (found string "high")`],
      [withTrack({ album: null }), `"album" is not an object (found null)`],
      [withTrack({ album: "Abbey Road" }), `"album" is not an object (found string "Abbey Road")`],
      [withTrack({ external_ids: null }), `"external_ids" is not an object (found null)`],
      [page([track], { limit: "50" }), `"limit" is not a non-negative integer (found string "50")`],
      [page([track], { total: -1 }), `"total" is not a non-negative integer (found number -1)`],
      [page([track], { next: 5 }), `"next" is not a URL or null (found number 5)`],
      [page([track], { offset: 50 }), `"offset" is 50, requested 0`],
      [page(Array.from({ length: 51 }, () => track)), "51 items, requested at most 50"],
    ];
    const { log } = testLog();
    for (const [body, what] of cases) {
      mock.fault(TOP, { kind: "body", body });
      const run = await createRun(config, { date: "2026-03-01" });
      const error = await assertRejects(
        () => runStep("fetch", { config, run, log, flags: {} }),
        SourceError,
      );
      const where = `${JSON.stringify(body).slice(0, 120)} → ${error.message}`;
      assertStringIncludes(error.message, PAGE0, where);
      assertStringIncludes(error.message, what, where);
      assert(!error.message.includes("\n"), where);
      assertEquals(exitCodeOf(error), ExitCode.source);
    }
  } finally {
    await mock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("malformed audio-features answers (Spotify, ReccoBeats) never crash enrich: the provider stops with a warning or the values are rejected and counted", async () => {
  const items = makeTrackItems(3);
  const mock = startMockSpotify({ topTracks: items });
  let recco: unknown = {};
  const reccoServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      typeof recco === "string"
        ? new Response(recco, { headers: { "content-type": "application/json" } })
        : Response.json(recco),
  );
  const dir = await Deno.makeTempDir({ prefix: "bad_features_" });
  try {
    const config = loadConfig({
      env: mockEnv(mock, dir, {
        HTTP_TIMEOUT_MS: "5000",
        HTTP_MAX_RETRIES: "0",
        FEATURES_PROVIDERS: "spotify,reccobeats,csv",
        RECCOBEATS_API_URL: `http://127.0.0.1:${reccoServer.addr.port}`,
        PIPELINE_STREAMS: "top_tracks",
      }),
      envFile: false,
    });
    await writeMockTokens(mock, config.spotify.tokensFile);
    const id = items[0]!.id as string;
    const cases: [unknown, unknown, string][] = [
      [{}, { content: null }, "failed"],
      [{ audio_features: null }, "{not json", "failed"],
      [{ audio_features: [null, 5, "x"] }, { content: [null, 5, { href: 7 }] }, "ok"],
      [
        { audio_features: [{ id, tempo: "fast", danceability: 2 }] },
        { content: [{ href: `https://open.spotify.com/track/${id}`, energy: "loud" }] },
        "ok",
      ],
    ];
    for (const [spotifyBody, reccoBody, status] of cases) {
      mock.fault("/v1/audio-features", { kind: "body", body: spotifyBody });
      recco = reccoBody;
      // each case asks the providers afresh (the features cache would answer what was found)
      await Deno.remove(featuresCachePath(config)).catch(() => {});
      const { log } = testLog();
      const run = await createRun(config, { date: "2026-03-01" });
      await runStep("fetch", { config, run, log, flags: {} });
      const outcome = await runStep("enrich", { config, run, log, flags: {} });
      const where = `${JSON.stringify(spotifyBody)} / ${JSON.stringify(reccoBody)}`;
      const coverage = (outcome.summary!.streams as Record<string, unknown>).top_tracks as {
        by_source: Record<string, number>;
        providers: { provider: string; status: string }[];
      };
      assertEquals(coverage.by_source.spotify, 0, where);
      assertEquals(coverage.by_source.reccobeats, 0, where);
      const statuses = coverage.providers.filter((p) => p.provider !== "csv").map((p) => p.status);
      if (status === "failed") {
        assertEquals(statuses, ["failed", "failed"], where);
        assert(run.manifest.warnings.some((w) => /audio-features/.test(w)), where);
      }
    }
  } finally {
    await mock.close();
    await reccoServer.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("enrich never passes a feature value the warehouse's dbt tests reject", async () => {
  const yml = await Deno.readTextFile(
    new URL("../../dbt/models/staging/spotify/_spotify__models.yml", import.meta.url),
  );
  // `- name: <column>` ... `accepted_range: arguments: {min_value: a, max_value: b}`
  const ranges = new Map<string, { min?: number; max?: number }>();
  for (const block of yml.split(/\n\s+- name: /).slice(1)) {
    const name = block.split("\n")[0]!.trim();
    const m = /accepted_range:\s*\n\s*arguments:\s*\{([^}]*)\}/.exec(block);
    if (!m) continue;
    const arg = (k: string) => {
      const v = new RegExp(`${k}:\\s*(-?[\\d.]+)`).exec(m[1]!)?.[1];
      return v === undefined ? undefined : Number(v);
    };
    ranges.set(name, { min: arg("min_value"), max: arg("max_value") });
  }
  const checked = FEATURE_COLUMNS.filter((f) => ranges.has(f));
  assertEquals(checked.length, FEATURE_COLUMNS.length, `features with a dbt range: ${checked}`);
  for (const name of checked as FeatureName[]) {
    const { min, max } = ranges.get(name)!;
    for (
      const outside of [
        min === undefined ? undefined : min - 0.5,
        max === undefined ? undefined : max + 0.5,
      ]
    ) {
      if (outside === undefined) continue;
      assert(
        checkFeature(name, outside) !== undefined,
        `${name} = ${outside} passes enrich but fails dbt's accepted_range [${min}, ${max}]`,
      );
    }
  }
});

Deno.test("dbt's multi-line errors end as one line; a held warehouse file says to let the holder finish", () => {
  const summary: DbtSummary = {
    command: "build",
    target: "duckdb",
    schema: "main",
    full_refresh: false,
    exit_code: 2,
    wall_s: 1,
    models: { built: 0, failed: 0, skipped: 0 },
    tests: { passed: 0, warned: 0, failed: 0, skipped: 0 },
    failed: [],
    warned: [],
    nodes: [],
    errors: [
      'Encountered an error:\nIO Error: Could not set lock on file "/d/warehouse.duckdb": Conflicting lock is held in /usr/bin/python3.11 (PID 4242)',
    ],
    run_results_path: "/d/dbt/target/run_results.json",
    log_path: "/d/dbt/logs/dbt.log",
  };
  const error = dbtErrorOf(summary)!;
  assert(!error.message.includes("\n"), error.message);
  assertStringIncludes(error.message, "before running any model: IO Error: Could not set lock");
  assertStringIncludes(error.hint!, "let it finish");
  assertEquals(exitCodeOf(error), ExitCode.dbt);
});

Deno.test("--date: empty, or outside Spotify's launch .. tomorrow, is exit 2 naming the flag (no run folder made)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bad_date_" });
  try {
    const env = { PIPELINE_DATA_DIR: dir, SPOTIFY_SOURCE: "sample" };
    for (
      const [args, expected] of [
        [["--date="], /--date is empty/],
        [
          ["--date", "9999-12-31"],
          /--date \\?"9999-12-31\\?" is out of range: expected a date from 2008-10-07/,
        ],
        [["--date", "0000-01-01"], /--date \\?"0000-01-01\\?" is out of range/],
        [["--date", "2026-02-30"], /--date \\?"2026-02-30\\?" is not valid/],
      ] as const
    ) {
      for (const script of ["pipeline.ts", "fetch.ts"]) {
        const r = await runTask(script, [...args], env, dir);
        assertEquals(r.code, ExitCode.config, `${script} ${args.join(" ")}: ${r.stderr}`);
        assertMatch(r.stderr, expected);
      }
    }
    const runsDir = join(dir, "runs");
    const runs = [...Deno.readDirSync(dir)].some((e) => e.name === "runs")
      ? [...Deno.readDirSync(runsDir)]
      : [];
    assertEquals(runs.length, 0, "no run folder for a refused date");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
