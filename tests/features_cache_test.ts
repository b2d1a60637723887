/**
 * The features cache through the enrich step, with the ReccoBeats mock: a known track is never
 * asked again (across streams and runs); a 429 storm records no misses, so the next run asks
 * again; misses are asked again after 7 days; a damaged cache is reported and rebuilt.
 */

import assert from "node:assert/strict";
import { type Config, loadConfig } from "../lib/config.ts";
import { featuresCachePath, MISS_TTL_DAYS } from "../lib/features/cache.ts";
import { createRun } from "../lib/run.ts";
import { runStep } from "../lib/steps.ts";
import { readStreamRows } from "../lib/streams/handoff.ts";
import { STREAMS } from "../lib/streams/registry.ts";
import { testLog } from "./_spotify_test_util.ts";
import { type FeaturesMock, fixtureAudioFeatures, startFeaturesMock } from "./mock_features.ts";
import type { AudioFeatures } from "../lib/types.ts";

// Sample tracks the bundled CSV lacks (data/README.md): ReccoBeats knows two of them.
const RECCO_ONLY = ["1aDeaDooAd79p2sdImGG4a", "4z2EeFUp5Lhai9qhHtA6IF"];

async function withMock(body: (mock: FeaturesMock, dir: string) => Promise<void>) {
  const template = await fixtureAudioFeatures();
  const features = Object.fromEntries(
    RECCO_ONLY.map((id) => [
      id,
      {
        danceability: 0.5,
        energy: 0.5,
        key: 1,
        loudness: -6,
        mode: 1,
        speechiness: 0.05,
        acousticness: 0.25,
        instrumentalness: 0,
        liveness: 0.125,
        valence: 0.5,
        tempo: Number(template.tempo),
        time_signature: 4,
      } satisfies AudioFeatures,
    ]),
  );
  const mock = await startFeaturesMock({ reccobeatsOnly: features });
  const dir = await Deno.makeTempDir({ prefix: "features_cache_test_" });
  try {
    await body(mock, dir);
  } finally {
    await mock.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function configOf(dir: string, mock: FeaturesMock, extra: Record<string, string> = {}): Config {
  return loadConfig({
    env: {
      PIPELINE_DATA_DIR: dir,
      SPOTIFY_SOURCE: "sample",
      PIPELINE_STREAMS: "top_tracks,recently_played",
      FEATURES_PROVIDERS: "reccobeats,csv",
      RECCOBEATS_API_URL: mock.reccobeatsUrl,
      HTTP_MAX_RETRIES: "0",
      ...extra,
    },
    envFile: false,
  });
}

/** fetch → enrich on a new run; the ids asked of ReccoBeats and the run. */
async function enrich(config: Config, mock: FeaturesMock) {
  mock.requests.length = 0;
  const { log, lines } = testLog();
  const run = await createRun(config, { date: "2026-11-30" });
  await runStep("fetch", { config, run, log, flags: {} });
  const outcome = await runStep("enrich", { config, run, log, flags: {} });
  const asked = mock.requests.filter((r) => r.api === "reccobeats").flatMap((r) => r.ids);
  return { run, outcome, asked, lines };
}

Deno.test("a track is asked once: the second stream and the next run are answered by the features cache", async () => {
  await withMock(async (mock, dir) => {
    const config = configOf(dir, mock);
    const first = await enrich(config, mock);
    // top tracks: the 5 the CSV lacks; recently played: only its 9 tracks neither stream knew
    const topIds = (await readStreamRows(first.run, "fetch", STREAMS.top_tracks)).rows
      .map((r) => r.track_id as string);
    assert.equal(new Set(first.asked).size, first.asked.length, "no track asked twice");
    assert.equal(first.asked.filter((id) => topIds.includes(id)).length, 21);
    const played = await readStreamRows(first.run, "enrich", STREAMS.recently_played);
    const byId = new Map(played.rows.map((r) => [r.track_id, r]));
    for (const id of RECCO_ONLY) assert.equal(byId.get(id)?.features_source, "reccobeats");

    const second = await enrich(config, mock);
    assert.deepEqual(second.asked, [], "every track known: ReccoBeats is not asked");
    assert.equal(second.outcome.counts?.matched, first.outcome.counts?.matched);
    const again = await readStreamRows(second.run, "enrich", STREAMS.recently_played);
    assert.deepEqual(
      again.rows.map(({ run_id: _r, fetched_at: _f, ...rest }) => rest),
      played.rows.map(({ run_id: _r, fetched_at: _f, ...rest }) => rest),
      "the same features as when they were looked up",
    );
    assert.match(String(second.outcome.summary?.text), /from the features cache/);

    // FEATURES_CACHE=off asks every run
    const off = await enrich(configOf(dir, mock, { FEATURES_CACHE: "off" }), mock);
    assert.ok(off.asked.length > 0);
  });
});

Deno.test("a 429 storm records no misses: the next run asks ReccoBeats again and the cache stays valid", async () => {
  await withMock(async (mock, dir) => {
    const config = configOf(dir, mock);
    mock.faults.reccobeats429 = 1000;
    const stormy = await enrich(config, mock);
    assert.ok(
      stormy.run.manifest.warnings.some((w) => /reccobeats/i.test(w)),
      JSON.stringify(stormy.run.manifest.warnings),
    );
    const cache = JSON.parse(await Deno.readTextFile(featuresCachePath(config)));
    const entries = Object.values(cache.tracks) as { source: string }[];
    assert.ok(entries.length > 0, "the CSV's finds are kept");
    assert.ok(entries.every((e) => e.source === "csv"), "no miss recorded while ReccoBeats failed");

    mock.faults.reccobeats429 = 0;
    const calm = await enrich(config, mock);
    assert.ok(RECCO_ONLY.every((id) => calm.asked.includes(id)), "asked again after the storm");
    const played = await readStreamRows(calm.run, "enrich", STREAMS.recently_played);
    const sources = new Map(played.rows.map((r) => [r.track_id, r.features_source]));
    for (const id of RECCO_ONLY) assert.equal(sources.get(id), "reccobeats");
  });
});

Deno.test(`a miss is asked again after ${MISS_TTL_DAYS} days; a damaged cache is reported and rebuilt`, async () => {
  await withMock(async (mock, dir) => {
    const config = configOf(dir, mock);
    await enrich(config, mock);
    assert.deepEqual((await enrich(config, mock)).asked, [], "fresh misses are not asked again");

    const path = featuresCachePath(config);
    const cache = JSON.parse(await Deno.readTextFile(path));
    const old = new Date(Date.now() - (MISS_TTL_DAYS + 1) * 86_400_000).toISOString();
    const misses = Object.entries(cache.tracks as Record<string, { source: string; at: string }>)
      .filter(([, e]) => e.source === "none");
    assert.ok(misses.length > 0);
    for (const [, e] of misses) e.at = old;
    await Deno.writeTextFile(path, JSON.stringify(cache));
    const later = await enrich(config, mock);
    assert.deepEqual(later.asked.toSorted(), misses.map(([id]) => id).toSorted());

    await Deno.writeTextFile(path, '{"version": 1, "tracks": ');
    const rebuilt = await enrich(config, mock);
    assert.ok(rebuilt.lines.some((l) => l.includes("features cache") && l.includes("damaged")));
    assert.ok(rebuilt.asked.length > 0);
    JSON.parse(await Deno.readTextFile(path)); // whole again
  });
});
