/**
 * The `prod` profile end to end, as a user runs it: `deno task load --setup --apply`, then
 * `deno task pipeline` twice on the same day, each as its own process with the real steps and
 * SDKs, against the mock Spotify (real API shapes), moto (S3) and fakesnow (Snowflake, behind the
 * test-only protocol adapter; dbt-snowflake talks to the same server). The first run loads the
 * rows and builds the dbt models; the second uploads nothing, loads nothing new, and leaves every
 * model's row count unchanged.
 */

import { join } from "node:path";
import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";
import { Logger } from "../lib/log.ts";
import type { Manifest } from "../lib/run.ts";
import type { UploadOutput } from "../lib/streams/handoff.ts";
import { openSnowflakeSession } from "../lib/warehouse/snowflake_session.ts";
import type { LoadReport } from "../lib/warehouse/warehouse.ts";
import { runTask } from "./_spotify_test_util.ts";
import {
  featuresForTopTracks,
  type MockSpotify,
  recordedTopTracks,
  startMockSpotify,
  writeMockTokens,
} from "./mock_spotify.ts";
import { expectedStreams, HISTORY } from "./_history_expect.ts";
import { startProdStandIns, TEST_AWS_ENV } from "./stand_ins.ts";

const BUCKET = "spotify-prod-lake";
const DATE = "2026-03-02";
const AWS_ENV = TEST_AWS_ENV;

/** Runs `scripts/<script>` in a child Deno with only `env` (plus the stand-ins' AWS keys) set. */
function task(script: string, args: string[], env: Record<string, string>, cwd: string) {
  return runTask(script, args, { ...AWS_ENV, ...env }, cwd);
}

async function latestRun(dataDir: string): Promise<string> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(`${dataDir}/runs`)) {
    if (entry.isDirectory) ids.push(entry.name);
  }
  ids.sort();
  return `${dataDir}/runs/${ids.at(-1)!}`;
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path)) as T;
}

Deno.test({
  name:
    "prod profile: load --setup --apply, then pipeline twice on one day — rows loaded and modelled once, nothing new the second time",
  async fn() {
    await using w = await startProdStandIns({
      bucket: BUCKET,
      dataDirPrefix: "prod_pipeline_test_",
    });
    const { dataDir, pair } = w;
    const mock: MockSpotify = startMockSpotify({ audioFeatures: featuresForTopTracks() });
    try {
      await writeMockTokens(mock, `${dataDir}/spotify_tokens.json`);
      const env: Record<string, string> = {
        ...await w.env(),
        PIPELINE_LOG_LEVEL: "info",
        PIPELINE_LOG_FORMAT: "json",
        SPOTIFY_API_URL: mock.url,
        SPOTIFY_ACCOUNTS_URL: mock.url,
        SPOTIFY_CLIENT_ID: mock.state.clientId,
        FEATURES_PROVIDERS: "spotify,csv",
      };
      const expectedRows = recordedTopTracks().length;

      // One-time setup.
      const setup = await task("load.ts", ["--setup", "--apply"], env, dataDir);
      assert.equal(setup.code, 0, setup.stderr);
      assert.match(setup.stdout, /"sts:ExternalId": "[^"<]+"/);

      // Day 1, first run: everything new.
      const first = await task("pipeline.ts", ["--date", DATE], env, dataDir);
      assert.equal(first.code, 0, first.stderr + first.stdout);
      const run1 = await latestRun(dataDir);
      const manifest1 = await readJson<Manifest>(`${run1}/manifest.json`);
      assert.equal(manifest1.status, "succeeded");
      // the daily run ends with the report, read from the Snowflake models
      assert.equal(manifest1.steps.report?.status, "succeeded");
      assert.match(first.stdout, /\nReport: .*report\/index\.html \(\d+ charts/);
      const uploaded1 = await readJson<UploadOutput>(`${run1}/upload/receipt.json`);
      assert.deepEqual(uploaded1.files.map((f) => [f.stream, f.uri, f.skipped]), [
        [
          "top_tracks",
          `s3://${BUCKET}/lake/top_tracks/user_id=mockuser/snapshot_date=${DATE}/top_tracks.parquet`,
          false,
        ],
        [
          "recently_played",
          `s3://${BUCKET}/lake/recently_played/user_id=mockuser/played_date=2023-09-22/20230922T152314294Z_20230922T154333750Z.parquet`,
          false,
        ],
        [
          "top_artists",
          `s3://${BUCKET}/lake/top_artists/user_id=mockuser/snapshot_date=${DATE}/top_artists.parquet`,
          false,
        ],
      ]);
      const receipt1 = uploaded1.files[0]!;
      const load1 = await readJson<LoadReport>(`${run1}/load/report.json`);
      assert.deepEqual(
        [load1.warehouse, load1.table, load1.files_loaded, load1.files_skipped, load1.rows_loaded],
        [
          "snowflake",
          "SPOTIFY.RAW.TOP_TRACKS, SPOTIFY.RAW.RECENTLY_PLAYED, SPOTIFY.RAW.TOP_ARTISTS",
          3,
          0,
          expectedRows + 2 + 15,
        ],
      );
      assert.ok(!first.stderr.includes(pair.passphrase) && !first.stdout.includes(pair.passphrase));

      const config = loadConfig({ env, envFile: false });
      assert.ok(config.warehouse.kind === "snowflake");
      const counts = async () => {
        const session = await openSnowflakeSession(
          config.warehouse as typeof config.warehouse & {
            kind: "snowflake";
          },
          { log: new Logger({ level: "error", sink: () => {} }) },
        );
        try {
          const out: Record<string, number> = {};
          for (
            const table of [
              "RAW.TOP_TRACKS",
              "RAW.RECENTLY_PLAYED",
              "RAW.TOP_ARTISTS",
              "ANALYTICS.TOP_TRACKS",
              "ANALYTICS.AUDIO_FEATURES",
              "ANALYTICS.INTER_TOP_WEEKLY_AUDIO_FEATURES",
              "ANALYTICS.PLAYS",
              "ANALYTICS.DAILY_LISTENING",
              "ANALYTICS.TOP_ARTISTS",
              "ANALYTICS.INTER_WEEKLY_LISTENING_AUDIO_FEATURES",
            ]
          ) {
            const [row] = await session.execute(`SELECT COUNT(*) AS N FROM SPOTIFY.${table}`);
            out[table] = Number(row!.N);
          }
          return out;
        } finally {
          await session.close();
        }
      };
      const after1 = await counts();
      assert.equal(after1["RAW.TOP_TRACKS"], expectedRows);
      assert.equal(after1["ANALYTICS.TOP_TRACKS"], expectedRows);
      assert.ok(after1["ANALYTICS.INTER_TOP_WEEKLY_AUDIO_FEATURES"]! >= 1);
      // the 2 recorded plays (one day), the 15 recorded artists
      assert.deepEqual(
        [
          after1["RAW.RECENTLY_PLAYED"],
          after1["ANALYTICS.PLAYS"],
          after1["ANALYTICS.DAILY_LISTENING"],
          after1["ANALYTICS.INTER_WEEKLY_LISTENING_AUDIO_FEATURES"],
          after1["RAW.TOP_ARTISTS"],
          after1["ANALYTICS.TOP_ARTISTS"],
        ],
        [2, 2, 1, 1, 15, 15],
      );

      // Day 1, second run: same data → nothing uploaded, nothing loaded, same model rows.
      const second = await task("pipeline.ts", ["--date", DATE], env, dataDir);
      assert.equal(second.code, 0, second.stderr + second.stdout);
      const run2 = await latestRun(dataDir);
      assert.notEqual(run2, run1);
      // (recently played: no play after the cursor, so no file)
      const uploaded2 = await readJson<UploadOutput>(`${run2}/upload/receipt.json`);
      assert.deepEqual(uploaded2.files.map((f) => [f.stream, f.skipped]), [
        ["top_tracks", true],
        ["top_artists", true],
      ]);
      assert.equal(uploaded2.files[0]!.sha256, receipt1.sha256);
      const load2 = await readJson<LoadReport>(`${run2}/load/report.json`);
      assert.deepEqual([load2.files_loaded, load2.files_skipped, load2.rows_loaded], [0, 2, 0]);
      assert.deepEqual(await counts(), after1);

      // The privacy export, through S3 and COPY INTO: an endsong file (ids) and account data
      // (names only); a re-import adds nothing; plays then holds the polls' 2 plus the export's.
      const files = [
        "erickmay_endsong_1.json",
        "zoetrev_StreamingHistory_music_2.json",
        "zoetrev_StreamingHistory_podcast_0.json",
      ];
      const paths = files.map((f) => join(HISTORY, f));
      const imported = await task("import.ts", paths, env, dataDir);
      assert.equal(imported.code, 0, imported.stderr + imported.stdout);
      const again = await task("import.ts", paths, env, dataDir);
      assert.equal(again.code, 0, again.stderr + again.stdout);
      assert.match(again.stdout, /Import: 0 new streams/);
      const transform = await task("transform.ts", [], env, dataDir);
      assert.equal(transform.code, 0, transform.stderr + transform.stdout);

      // The report from the Snowflake models: the first day's top tracks (one snapshot: the rank
      // chart waits for a second), the polls' and the export's plays, the top artists' genres
      const report = await task("report.ts", [], env, dataDir);
      assert.equal(report.code, 0, report.stderr + report.stdout);
      assert.match(
        report.stdout,
        /Report: .*report\/index\.html \(1 user\(s\), 6 charts, 1 waiting/,
      );
      const html = await Deno.readTextFile(join(dataDir, "report", "index.html"));
      assert.match(html, /from SPOTIFY\.ANALYTICS/);
      const marks = Object.fromEntries(
        [...html.matchAll(/data-chart="(\w+)" data-marks="(\d+)"/g)].map((
          m,
        ) => [m[1], Number(m[2])]),
      );
      assert.equal(marks.rank_movement, 0);
      assert.equal(marks.listening_heatmap, 168);
      for (
        const id of [
          "weekly_features",
          "feature_coverage",
          "daily_minutes",
          "top_artists",
          "top_genres",
        ]
      ) {
        assert.ok(marks[id]! > 0, `${id}: ${JSON.stringify(marks)}`);
      }
      const session = await openSnowflakeSession(
        config.warehouse as typeof config.warehouse & { kind: "snowflake" },
        { log: new Logger({ level: "error", sink: () => {} }) },
      );
      try {
        const byType = await session.execute(
          "SELECT CONTENT_TYPE, COUNT(*) AS N FROM SPOTIFY.RAW.STREAMING_HISTORY WHERE USER_ID = 'mockuser' GROUP BY 1 ORDER BY 1",
        );
        const want = expectedStreams(files);
        assert.deepEqual(
          Object.fromEntries(byType.map((r) => [String(r.CONTENT_TYPE), Number(r.N)])),
          Object.fromEntries(Object.entries(want).sort(([a], [b]) => a < b ? -1 : 1)),
        );
        const [plays] = await session.execute(
          "SELECT COUNT(*) AS N, COUNT_IF(SOURCE = 'export') AS E FROM SPOTIFY.ANALYTICS.PLAYS",
        );
        assert.deepEqual([Number(plays!.N), Number(plays!.E)], [2 + want.track!, want.track]);
      } finally {
        await session.close();
      }
    } finally {
      await mock.close();
    }
  },
});
