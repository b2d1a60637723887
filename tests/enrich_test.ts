/**
 * Enrichment: title/artist normalization, matching by id then by name, provider order, the
 * Spotify and ReccoBeats providers against a local mock speaking their shapes (403, 429 +
 * Retry-After, 500, unknown ids), and the enrich step end to end on the bundled sample.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Config, loadConfig } from "../lib/config.ts";
import { ConfigError, SourceError } from "../lib/errors.ts";
import { createCsvProvider } from "../lib/features/csv_provider.ts";
import { enrichRows, formatCoverage, type ProviderSlot } from "../lib/features/enrich.ts";
import { foldText, nameKeys, stripVersion, titleKeys } from "../lib/features/normalize.ts";
import {
  emptyReport,
  type FeaturesHit,
  type FeaturesLookup,
  type TrackQuery,
} from "../lib/features/provider.ts";
import { createReccoBeatsProvider } from "../lib/features/reccobeats.ts";
import { type JsonGetter, SpotifyFeaturesProvider } from "../lib/features/spotify_provider.ts";
import { fetchWithRetry } from "../lib/http.ts";
import { Logger } from "../lib/log.ts";
import { createRun } from "../lib/run.ts";
import type { StoredTokens } from "../lib/spotify/token_store.ts";
import { writeTokenStore } from "../lib/spotify/token_store.ts";
import { runStep } from "../lib/steps.ts";
import type { AudioFeatures, EnrichOutput, TopTrackRow } from "../lib/types.ts";
import { type FeaturesMock, startFeaturesMock } from "./mock_features.ts";

function testLog(): { log: Logger; records: { level: string; msg: string }[] } {
  const records: { level: string; msg: string }[] = [];
  const log = new Logger({
    level: "debug",
    format: "json",
    sink: (record) => records.push({ level: record.level, msg: record.msg }),
  });
  return { log, records };
}

function features(seed: number): AudioFeatures {
  return {
    danceability: 0.5 + seed / 1000,
    energy: 0.4,
    key: seed % 12,
    loudness: -6.5,
    mode: seed % 2,
    speechiness: 0.05,
    acousticness: 0.2,
    instrumentalness: 0.000012,
    liveness: 0.11,
    valence: 0.3,
    tempo: 100 + seed,
    time_signature: 4,
  };
}

function row(id: string, name: string, artists: string[], rank = 1): TopTrackRow {
  return {
    user_id: "u1",
    snapshot_date: "2026-11-26",
    time_range: "short_term",
    rank,
    track_id: id,
    track_name: name,
    artist_ids: artists.map((_, i) => `artist${i}`),
    artist_names: artists,
    album_id: null,
    album_name: null,
    album_release_date: null,
    duration_ms: 200_000,
    explicit: false,
    popularity: null,
    isrc: null,
    fetched_at: "2026-11-26T00:00:00.000Z",
    run_id: "20261126T000000Z-abcd",
  };
}

/** A 22-character id from a number (a valid Spotify id shape). */
function fakeId(n: number): string {
  return `T${String(n).padStart(21, "0")}`;
}

/** A provider answering from a table, recording what it was asked. */
function stubProvider(
  name: "spotify" | "reccobeats" | "csv",
  table: Record<string, AudioFeatures>,
  asked: string[][],
  byNameTable: Record<string, AudioFeatures> = {},
): FeaturesLookup {
  return {
    name,
    lookup(tracks: readonly TrackQuery[]) {
      asked.push(tracks.map((t) => t.track_id));
      const byId = new Map<string, FeaturesHit>();
      const byName = new Map<string, FeaturesHit>();
      for (const t of tracks) {
        if (table[t.track_id]) byId.set(t.track_id, { features: table[t.track_id]! });
        else if (byNameTable[t.track_id]) {
          byName.set(t.track_id, {
            features: byNameTable[t.track_id]!,
            name: {
              catalog_track_id: null,
              catalog_track_name: t.track_name,
              catalog_artists: t.primary_artist ?? "",
              key: "full",
              file: "stub.csv",
              line: 2,
            },
          });
        }
      }
      const report = emptyReport(name);
      report.requested = tracks.length;
      report.found_by_id = byId.size;
      report.found_by_name = byName.size;
      return Promise.resolve({ byId, byName, report });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Normalization

Deno.test("titleKeys() ignores case, accents, punctuation, feat./with credits and remaster suffixes", () => {
  const same = (a: string, b: string, key: "full" | "base") =>
    assert.equal(titleKeys(a)[key], titleKeys(b)[key], `${a} ~ ${b} (${key})`);
  same("Left and Right (Feat. Jung Kook of BTS)", "left & right", "full");
  same("RIP ROACH (feat. Ski Mask The Slump God)", "RIP Roach", "full");
  same("Song [ft. Someone]", "Song", "full");
  same("Song feat. Someone Else", "Song", "full");
  same("Song - feat. Someone", "Song", "full");
  same(
    "I Don't Care (with Justin Bieber) - Loud Luxury Remix",
    "I Dont Care - Loud Luxury Remix",
    "full",
  );
  same("Canción Número Uno", "CANCION NUMERO UNO", "full");
  same("Ærø Straße", "aero strasse", "full");
  same(
    "Mo Money Mo Problems (feat. Puff Daddy & Mase) - 2014 Remaster",
    "Mo Money Mo Problems",
    "base",
  );
  same("Come Together - Remastered 2009", "Come Together", "base");
  same("Come Together - 2019 Mix", "Come Together - 2019 Mix", "full");
  same("Bohemian Rhapsody - Remastered 2011", "Bohemian Rhapsody (Remastered 2011)", "base");
  same("Heroes - 2017 Remaster", "Heroes", "base");
  same("Let It Be - Live", "Let It Be", "base");
  same("Hotel California - Live at The Forum, 1976", "Hotel California", "base");
  same("La Deriva - En Directo", "La Deriva", "base");
  same("Song - Radio Edit", "Song", "base");
  same("Song - Mono", "Song", "base");
  // Different recordings keep their suffix.
  assert.notEqual(titleKeys("Song - Acoustic").base, titleKeys("Song").base);
  assert.notEqual(titleKeys("Memories - Dillon Francis Remix").base, titleKeys("Memories").base);
  // "with" without brackets is part of the title.
  assert.notEqual(titleKeys("Stay With Me").full, titleKeys("Stay").full);
  // The full key keeps the version, so "Song - Live" can prefer the live row.
  assert.notEqual(titleKeys("Let It Be - Live").full, titleKeys("Let It Be").full);
  assert.equal(stripVersion("Live"), "Live", "a title is never stripped to nothing");
  assert.equal(foldText("Beyoncé & JAY-Z"), "beyonceandjayz");
  assert.equal(foldText("紅蓮華"), "紅蓮華");
  assert.equal(nameKeys("...", "Artist"), null);
  assert.equal(nameKeys("Song", ""), null);
});

// ---------------------------------------------------------------------------------------------
// Engine: order and matching

Deno.test("enrichRows() asks providers in order, each only for tracks still without an id match", async () => {
  const { log } = testLog();
  const a = fakeId(1), b = fakeId(2), c = fakeId(3), d = fakeId(4);
  const rows = [
    row(a, "A", ["X"], 1),
    row(b, "B", ["X"], 2),
    row(c, "C", ["X"], 3),
    row(d, "D", ["X"], 4),
  ];
  const asked: string[][] = [];
  const providers: ProviderSlot[] = [
    stubProvider("spotify", { [a]: features(1) }, asked),
    stubProvider("reccobeats", { [a]: features(99), [b]: features(2) }, asked),
    // The CSV has c only by name, d by id, and b too (already found).
    stubProvider("csv", { [d]: features(4), [b]: features(98) }, asked, { [c]: features(3) }),
  ];
  const { rows: out, coverage } = await enrichRows(rows, { providers, log });
  assert.deepEqual(asked, [[a, b, c, d], [b, c, d], [c, d]]);
  assert.deepEqual(
    out.map((r) => [r.track_id, r.features_source, r.match_method, r.tempo]),
    [[a, "spotify", "id", 101], [b, "reccobeats", "id", 102], [c, "csv", "name", 103], [
      d,
      "csv",
      "id",
      104,
    ]],
  );
  assert.deepEqual(
    coverage.providers.map((p) => [p.provider, p.filled, p.filled_by_id, p.filled_by_name]),
    [["spotify", 1, 1, 0], ["reccobeats", 1, 1, 0], ["csv", 2, 1, 1]],
  );
  assert.equal(coverage.matched, 4);
  assert.equal(coverage.by_name, 1);
});

Deno.test("enrichRows() prefers an id match from a later provider to an earlier name match", async () => {
  const { log } = testLog();
  const a = fakeId(1);
  const asked: string[][] = [];
  const { rows: out, coverage } = await enrichRows([row(a, "A", ["X"])], {
    providers: [
      stubProvider("csv", {}, asked, { [a]: features(1) }),
      stubProvider("reccobeats", { [a]: features(2) }, asked),
    ],
    log,
  });
  assert.equal(out[0]!.features_source, "reccobeats");
  assert.equal(out[0]!.match_method, "id");
  assert.equal(coverage.name_matches.length, 0);
  assert.equal(coverage.providers[0]!.filled, 0);
});

Deno.test("enrichRows() reports skipped and failing providers and goes on; a ConfigError stops it", async () => {
  const { log, records } = testLog();
  const a = fakeId(1), b = fakeId(2);
  const failing: FeaturesLookup = {
    name: "reccobeats",
    lookup: () => Promise.reject(new SourceError("ReccoBeats is down")),
  };
  const asked: string[][] = [];
  const rows = [row(a, "A", ["X"], 1), row(a, "A", ["X"], 2), row(b, "B", ["Y"], 3)];
  const { rows: out, coverage } = await enrichRows(rows, {
    providers: [
      { name: "spotify", skipped: "sample data" },
      failing,
      stubProvider("csv", { [a]: features(1) }, asked),
    ],
    log,
  });
  assert.deepEqual(coverage.providers.map((p) => [p.provider, p.status]), [
    ["spotify", "skipped"],
    ["reccobeats", "failed"],
    ["csv", "ok"],
  ]);
  assert.match(coverage.providers[1]!.note!, /reccobeats failed: ReccoBeats is down/);
  assert.ok(records.some((r) => r.level === "warn" && r.msg.includes("ReccoBeats is down")));
  // Rows count per listing; the track listed twice counts twice, and once in `tracks`.
  assert.equal(coverage.rows, 3);
  assert.equal(coverage.tracks, 2);
  assert.equal(coverage.matched, 2);
  assert.deepEqual(coverage.unmatched_tracks, [{
    track_id: b,
    track_name: "B",
    artist_names: ["Y"],
    positions: ["short_term #3"],
  }]);
  assert.equal(out[2]!.danceability, null);
  assert.equal(out[2]!.features_source, "none");
  assert.equal(out[2]!.match_method, "none");
  const text = formatCoverage(coverage);
  assert.match(text, /^Audio features: 2 of 3 rows \(2 distinct tracks\) \(66\.7%\)/);
  assert.match(text, /reccobeats +0 filled .* — failed: reccobeats failed: ReccoBeats is down/);
  assert.match(text, /short_term #3 {2}"B" — Y/);

  const broken: FeaturesLookup = {
    name: "csv",
    lookup: () => Promise.reject(new ConfigError("no such file")),
  };
  await assert.rejects(enrichRows(rows, { providers: [broken], log }), ConfigError);
});

Deno.test("CSV provider matches by id, then by name (accents, feat., remaster suffix, live version)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "enrich_" });
  try {
    const header =
      "id,name,artists,danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature";
    const f = (tempo: number) => `0.5,0.5,1,-5,1,0.05,0.1,0,0.1,0.5,${tempo},4`;
    const first = join(dir, "first.csv");
    await Deno.writeTextFile(
      first,
      [
        header,
        `spotify:track:${fakeId(1)},Known,['Someone'],${f(101)}`,
        `${fakeId(90)},Beyonce Song,"['Beyonce', 'Jay Z']",${f(102)}`,
        `${fakeId(91)},Old Hit - Remastered 2011,['The Band'],${f(103)}`,
        `${fakeId(92)},Let It Be - Live,['The Beatles'],${f(104)}`,
        `${fakeId(93)},Let It Be,['The Beatles'],${f(105)}`,
        `${fakeId(94)},Another One - 2014 Remaster,['Queen'],${f(106)}`,
        `${fakeId(95)},Another One - Live,['Queen'],${f(107)}`,
      ].join("\n") + "\n",
    );
    const second = join(dir, "second.csv");
    await Deno.writeTextFile(
      second,
      [
        header,
        `${fakeId(3)},By Id In Second,['Other'],${f(201)}`,
        `${fakeId(96)},Known,['Someone'],${f(202)}`,
        `${fakeId(97)},Only Second,['Other'],${f(203)}`,
      ].join("\n") + "\n",
    );
    const rows = [
      row(fakeId(1), "Known", ["Someone"], 1),
      row(fakeId(2), "Beyoncé Song (feat. Kendrick Lamar)", ["BEYONCÉ"], 2),
      row(fakeId(3), "By Id In Second", ["Other"], 3),
      row(fakeId(4), "Old Hit", ["The Band"], 4),
      row(fakeId(5), "Let It Be - Live", ["The Beatles"], 5),
      row(fakeId(6), "Let It Be - 2009 Remaster", ["The Beatles"], 6),
      row(fakeId(7), "Another One", ["Queen"], 7),
      row(fakeId(8), "Only Second", ["Other"], 8),
      row(fakeId(9), "Missing", ["Nobody"], 9),
    ];
    const { log } = testLog();
    const { rows: out, coverage } = await enrichRows(rows, {
      providers: [createCsvProvider({ paths: [first, second] })],
      log,
    });
    assert.deepEqual(
      out.map((r) => [r.rank, r.match_method, r.tempo]),
      [
        [1, "id", 101],
        [2, "name", 102], // accents, case, "(feat. ...)"
        [3, "id", 201], // second file
        [4, "name", 103], // "- Remastered 2011" dropped
        [5, "name", 104], // the live row, not the studio one
        [6, "name", 105], // a remaster finds the unversioned row before the live one
        [7, "name", 106], // no unversioned row: the first versioned one
        [8, "name", 203],
        [9, "none", null],
      ],
    );
    assert.equal(coverage.by_id, 2);
    assert.equal(coverage.by_name, 6);
    const csv = coverage.providers[0]!;
    assert.equal(csv.catalogs!.length, 2);
    assert.deepEqual(csv.catalogs!.map((c) => c.rows), [7, 3]);
    const byRank5 = coverage.name_matches.find((m) => m.track_name === "Let It Be - Live")!;
    assert.equal(byRank5.match.catalog_track_id, fakeId(92));
    assert.equal(byRank5.match.key, "full");
    assert.equal(byRank5.match.line, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Remote providers against the mock

/** A minimal `getJson` client for the mock (the real one is lib/spotify/client.ts). */
function mockClient(mock: FeaturesMock): JsonGetter {
  return {
    async getJson<T>(path: string, options: { signal?: AbortSignal } = {}): Promise<T> {
      const { response } = await fetchWithRetry(`${mock.spotifyUrl}${path}`, {
        headers: { authorization: "Bearer test-token" },
      }, { maxRetries: 0, signal: options.signal });
      return await response.json() as T;
    },
  };
}

Deno.test("Spotify provider asks 100 ids a request, skips unknown ids, and reads the fixture's shape", async () => {
  const known: Record<string, AudioFeatures> = {};
  for (let i = 0; i < 120; i += 3) known[fakeId(i)] = features(i);
  const mock = await startFeaturesMock({ features: known });
  try {
    const { log } = testLog();
    const provider = new SpotifyFeaturesProvider(mockClient(mock));
    const tracks = Array.from({ length: 150 }, (_, i) => ({
      track_id: fakeId(i),
      track_name: `T${i}`,
      primary_artist: "A",
    }));
    tracks.push({ track_id: "06AKEBrKUckW0KREUWRnvT", track_name: "Fixture", primary_artist: "A" });
    const result = await provider.lookup(tracks, { log });
    assert.deepEqual(mock.requests.map((r) => [r.api, r.ids.length, r.status]), [
      ["spotify", 100, 200],
      ["spotify", 51, 200],
    ]);
    assert.equal(result.byId.size, 41);
    assert.equal(result.report.found_by_id, 41);
    assert.deepEqual(result.byId.get(fakeId(9))!.features, features(9));
    // The recorded answer of tracks_audio_features.json.
    assert.deepEqual(result.byId.get("06AKEBrKUckW0KREUWRnvT")!.features, {
      danceability: 0.735,
      energy: 0.578,
      key: 5,
      loudness: -11.84,
      mode: 0,
      speechiness: 0.0461,
      acousticness: 0.514,
      instrumentalness: 0.0902,
      liveness: 0.159,
      valence: 0.624,
      tempo: 98.002,
      time_signature: 4,
    });
  } finally {
    await mock.close();
  }
});

Deno.test("Spotify provider: a 403 disables it for the rest of the run with one warning", async () => {
  const mock = await startFeaturesMock();
  try {
    mock.faults.spotify403 = true;
    const { log, records } = testLog();
    const provider = new SpotifyFeaturesProvider(mockClient(mock));
    const tracks = Array.from({ length: 150 }, (_, i) => ({
      track_id: fakeId(i),
      track_name: `T${i}`,
      primary_artist: "A",
    }));
    const first = await provider.lookup(tracks, { log });
    assert.equal(first.report.status, "disabled");
    assert.match(first.report.note!, /403/);
    const second = await provider.lookup(tracks, { log });
    assert.equal(second.report.status, "disabled");
    assert.equal(mock.requests.length, 1, "no request after the 403");
    assert.equal(records.filter((r) => r.level === "warn").length, 1);
    assert.ok(provider.disabled);
  } finally {
    await mock.close();
  }
});

Deno.test("ReccoBeats provider asks 40 ids a request, skips omitted ids, waits Retry-After on 429", async () => {
  const known: Record<string, AudioFeatures> = { [fakeId(0)]: features(0) };
  known[fakeId(44)] = features(44);
  const mock = await startFeaturesMock({ reccobeatsOnly: known });
  try {
    mock.faults.reccobeats429 = 1;
    mock.faults.retryAfter = "3";
    const waits: number[] = [];
    const { log } = testLog();
    const provider = createReccoBeatsProvider({
      baseUrl: mock.reccobeatsUrl,
      http: { maxRetries: 2, maxRetryMs: 10_000 },
      retry: { sleep: (ms) => Promise.resolve(void waits.push(ms)), random: () => 0 },
    });
    const tracks = Array.from({ length: 45 }, (_, i) => ({
      track_id: fakeId(i),
      track_name: `T${i}`,
      primary_artist: "A",
    }));
    const result = await provider.lookup(tracks, { log });
    assert.deepEqual(mock.requests.map((r) => [r.ids.length, r.status]), [[40, 429], [40, 200], [
      5,
      200,
    ]]);
    assert.deepEqual(waits, [3000], "waited the Retry-After");
    assert.deepEqual([...result.byId.keys()].sort(), [fakeId(0), fakeId(44)]);
    // ReccoBeats has no time_signature.
    assert.deepEqual(result.byId.get(fakeId(44))!.features, {
      ...features(44),
      time_signature: null,
    });
    assert.equal(result.report.status, "ok");
  } finally {
    await mock.close();
  }
});

Deno.test("ReccoBeats provider: a failure outlasting the retries is reported, keeping earlier batches", async () => {
  const mock = await startFeaturesMock({ reccobeatsOnly: { [fakeId(1)]: features(1) } });
  try {
    const { log, records } = testLog();
    const provider = createReccoBeatsProvider({
      baseUrl: mock.reccobeatsUrl,
      http: { maxRetries: 1 },
      retry: { sleep: () => Promise.resolve(), random: () => 0 },
      batchSize: 2,
    });
    const tracks = [1, 2, 3].map((i) => ({
      track_id: fakeId(i),
      track_name: "T",
      primary_artist: "A",
    }));
    // The first batch answers; the second meets two 500s (one try + one retry).
    mock.faults.reccobeatsFaultAfter = 1;
    mock.faults.reccobeats500 = 2;
    const result = await provider.lookup(tracks, { log });
    assert.deepEqual(mock.requests.map((r) => [r.ids.length, r.status]), [[2, 200], [1, 500], [
      1,
      500,
    ]]);
    assert.equal(result.report.status, "failed");
    assert.match(result.report.note!, /HTTP 500/);
    assert.deepEqual([...result.byId.keys()], [fakeId(1)]);
    assert.equal(result.report.found_by_id, 1);
    assert.ok(records.some((r) => r.level === "warn" && r.msg.includes("HTTP 500")));
  } finally {
    await mock.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The step end to end

async function withDataDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "enrich_step_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sampleConfig(dir: string, extra: Record<string, string> = {}): Config {
  return loadConfig({
    env: {
      PIPELINE_DATA_DIR: dir,
      SPOTIFY_SOURCE: "sample",
      PIPELINE_STREAMS: "top_tracks",
      ...extra,
    },
    envFile: false,
  });
}

Deno.test("enrich step on the bundled sample: 16 of 21 (14 by id, 2 by name), files and summary", async () => {
  await withDataDir(async (dir) => {
    const config = sampleConfig(dir);
    const run = await createRun(config, { date: "2026-11-26", accounts: ["sample"] });
    const { log } = testLog();
    await runStep("fetch", { config, run, log, flags: {} });
    const outcome = await runStep("enrich", { config, run, log, flags: {} });

    assert.deepEqual(outcome.counts, {
      rows: 21,
      matched: 16,
      by_id: 14,
      by_name: 2,
      unmatched: 5,
      top_tracks_rows: 21,
      top_tracks_matched: 16,
      top_tracks_by_id: 14,
      top_tracks_by_name: 2,
      top_tracks_unmatched: 5,
    });
    assert.deepEqual(outcome.outputs, ["enrich/tracks.json", "enrich/coverage.json"]);
    const text = outcome.summary!.text as string;
    assert.match(
      text,
      /^Audio features: 16 of 21 rows \(76\.2%\) — 14 by id, 2 by name, 5 unmatched/,
    );
    assert.match(text, /spotify +skipped: the run uses the bundled sample, not the Spotify API/);
    assert.match(text, /csv +16 filled \(14 by id, 2 by name\) of 21 asked/);
    assert.match(
      text,
      /"RIP ROACH \(feat\. Ski Mask The Slump God\)" — XXXTENTACION {2}→ {2}"RIP Roach"/,
    );
    assert.match(text, /Unmatched \(5 tracks\):\n +short_term #17 {2}"Dulce introduccion al caos"/);

    const output = JSON.parse(
      await Deno.readTextFile(run.path("enrich", "tracks.json")),
    ) as EnrichOutput;
    assert.equal(output.run_id, run.id);
    assert.equal(output.snapshot_date, "2026-11-26");
    assert.equal(output.rows.length, 21);
    const byName = output.rows.filter((r) => r.match_method === "name").map((r) => r.track_id);
    assert.deepEqual(byName.sort(), ["AUSYUZkOgGYmT8uh5wYGIl", "N0L82zWZF5YKDYZ8qspuYq"]);
    assert.ok(
      output.rows.filter((r) => r.match_method !== "none").every((r) =>
        r.features_source === "csv" && typeof r.tempo === "number"
      ),
    );
    const first = output.rows[0]!;
    assert.equal(first.track_id, "2IVsRhKrx8hlQBOWy4qebo");
    assert.equal(first.danceability, 0.639);
    assert.equal(first.instrumentalness, 2.43e-5);
    const none = output.rows.filter((r) => r.match_method === "none");
    assert.equal(none.length, 5);
    assert.ok(none.every((r) => r.features_source === "none" && r.valence === null));

    const coverage = JSON.parse(await Deno.readTextFile(run.path("enrich", "coverage.json")));
    assert.equal(coverage.run_id, run.id);
    assert.equal(coverage.matched, 16);
    assert.equal(coverage.unmatched_tracks.length, 5);
    assert.equal(coverage.name_matches.length, 2);
    assert.equal(coverage.providers[1].catalogs[0].rows, 26);

    const manifest = JSON.parse(await Deno.readTextFile(run.path("manifest.json")));
    assert.equal(manifest.steps.enrich.status, "succeeded");
    assert.equal(manifest.steps.enrich.summary.coverage.matched, 16);
  });
});

Deno.test("enrich step with the Spotify API: Spotify, then ReccoBeats, then the CSV; a 403 is a run warning", async () => {
  const spotifyIds = ["2IVsRhKrx8hlQBOWy4qebo", "5Odq8ohlgIbQKMZivbWkEo", "4jbmgIyjGoXjY01XxatOx6"];
  const reccoIds = ["37EJtTS7jT5WUyXGZzrwnI", "N0L82zWZF5YKDYZ8qspuYq", "1aDeaDooAd79p2sdImGG4a"];
  const mock = await startFeaturesMock({
    spotifyOnly: Object.fromEntries(spotifyIds.map((id, i) => [id, features(i)])),
    reccobeatsOnly: Object.fromEntries(reccoIds.map((id, i) => [id, features(10 + i)])),
  });
  try {
    for (const forbidden of [false, true]) {
      await withDataDir(async (dir) => {
        const fetchConfig = sampleConfig(dir);
        const run = await createRun(fetchConfig, { date: "2026-11-26", accounts: ["sample"] });
        const { log } = testLog();
        await runStep("fetch", { config: fetchConfig, run, log, flags: {} });

        const tokensFile = join(dir, "tokens.json");
        const now = Date.now();
        const tokens: StoredTokens = {
          version: 1,
          client_id: "test-client",
          access_token: "access-token-for-tests",
          token_type: "Bearer",
          scope: "user-top-read",
          expires_at: new Date(now + 3_600_000).toISOString(),
          refresh_token: "refresh-token-for-tests",
          consented_at: new Date(now).toISOString(),
          refreshed_at: null,
          user: null,
        };
        await writeTokenStore(tokensFile, tokens);
        const config = sampleConfig(dir, {
          SPOTIFY_SOURCE: "api",
          SPOTIFY_TOKENS_FILE: tokensFile,
          SPOTIFY_API_URL: mock.spotifyUrl,
          RECCOBEATS_API_URL: mock.reccobeatsUrl,
          FEATURES_PROVIDERS: "spotify,reccobeats,csv",
        });
        mock.faults.spotify403 = forbidden;
        mock.requests.length = 0;
        const outcome = await runStep("enrich", { config, run, log, flags: {} });
        const output = JSON.parse(
          await Deno.readTextFile(run.path("enrich", "tracks.json")),
        ) as EnrichOutput;
        const source = (id: string) => output.rows.find((r) => r.track_id === id)!;
        assert.equal(mock.requests[0]!.api, "spotify");
        assert.equal(mock.requests[0]!.authorization, "Bearer access-token-for-tests");
        if (!forbidden) {
          assert.deepEqual(outcome.counts, {
            rows: 21,
            matched: 17,
            by_id: 16,
            by_name: 1,
            unmatched: 4,
            top_tracks_rows: 21,
            top_tracks_matched: 17,
            top_tracks_by_id: 16,
            top_tracks_by_name: 1,
            top_tracks_unmatched: 4,
          });
          for (const id of spotifyIds) assert.equal(source(id).features_source, "spotify");
          for (const id of reccoIds) assert.equal(source(id).features_source, "reccobeats");
          // ReccoBeats is asked only for what Spotify lacked.
          assert.equal(mock.requests[1]!.api, "reccobeats");
          assert.equal(mock.requests[1]!.ids.length, 18);
          assert.equal(source("N0L82zWZF5YKDYZ8qspuYq").match_method, "id");
          assert.equal(source("AUSYUZkOgGYmT8uh5wYGIl").match_method, "name");
          assert.ok(!run.manifest.warnings.some((w) => w.startsWith("enrich:")));
        } else {
          assert.equal(mock.requests.filter((r) => r.api === "spotify").length, 1);
          for (const id of spotifyIds) assert.equal(source(id).features_source, "csv");
          assert.equal(outcome.counts!.matched, 17);
          assert.ok(
            run.manifest.warnings.some((w) => w.includes("403")),
            JSON.stringify(run.manifest.warnings),
          );
          assert.match(outcome.summary!.text as string, /spotify +0 filled .* — disabled: /);
        }
      });
    }
  } finally {
    await mock.close();
  }
});

Deno.test("enrich step without a fetch output fails with a ConfigError naming the step to run", async () => {
  await withDataDir(async (dir) => {
    const config = sampleConfig(dir);
    const run = await createRun(config, { date: "2026-11-26", accounts: ["sample"] });
    const { log } = testLog();
    await assert.rejects(runStep("enrich", { config, run, log, flags: {} }), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /no fetch output .*deno task fetch --run/);
      return true;
    });
    const file = (rows: unknown[]) => ({
      stream: "top_tracks",
      run_id: run.id,
      snapshot_date: "2026-11-26",
      source: "sample",
      user_id: "u1",
      rows,
    });
    await run.writeJson("fetch", "tracks.json", { rows: [{ track_id: 1 }] });
    await assert.rejects(runStep("enrich", { config, run, log, flags: {} }), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /tracks\.json is not a fetch output of top_tracks: "stream" is/);
      assert.match(String(e.hint), /deno task pipeline --run .* --from fetch/);
      return true;
    });
    await run.writeJson("fetch", "tracks.json", file([{ track_id: 1 }]));
    await assert.rejects(runStep("enrich", { config, run, log, flags: {} }), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(
        e.message,
        /tracks\.json is not a fetch output of top_tracks: row 1: column "snapshot_date" expected a value/,
      );
      return true;
    });
    const missingCsv = sampleConfig(dir, { AUDIO_FEATURES_CSV: join(dir, "absent.csv") });
    await run.writeJson("fetch", "tracks.json", file([row(fakeId(1), "A", ["B"])]));
    await assert.rejects(
      runStep("enrich", { config: missingCsv, run, log, flags: {} }),
      (e: Error) => e instanceof ConfigError && e.message.includes("absent.csv"),
    );
  });
});
