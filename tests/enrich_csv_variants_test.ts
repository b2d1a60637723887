/**
 * Audio-features catalogs as people have them (`tests/fixtures/audio_features/`, real public
 * files, see its README): partial features, percent scales, bpm, note-name keys, Major/Minor,
 * names only, dotted and `(s)` headers, R's NA, a column map, and the files that are refused.
 * Per file: rows read, used and rejected with reasons, the features provided, and the matches
 * for a top-tracks page (Spotify's shape, from the recorded response) built from rows of the
 * file, so every expected value is read off the file by hand.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Config, loadConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { lookupCatalog } from "../lib/features/catalog_index.ts";
import type { ColumnMap } from "../lib/features/column_map.ts";
import { createCsvProvider } from "../lib/features/csv_provider.ts";
import { scanCatalog } from "../lib/features/csv_catalog.ts";
import { enrichRows } from "../lib/features/enrich.ts";
import type { CatalogStats } from "../lib/features/provider.ts";
import { normalizeTopTracks, validateTopTracksPage } from "../lib/spotify/top_tracks.ts";
import { type AudioFeatures, FEATURE_COLUMNS } from "../lib/types.ts";
import { testLog } from "./_spotify_test_util.ts";

const DIR = fileURLToPath(new URL("./fixtures/audio_features/", import.meta.url));
const TEMPLATE = fileURLToPath(
  new URL("../../shared/fixtures/spotify/api/jmperez/user_top_tracks.json", import.meta.url),
);

/** A track of the page: its id, title and artists. */
interface PageTrack {
  id: string;
  name: string;
  artists: string[];
}

/** A top-tracks page in the Web API's shape: the recorded response's first item, renamed. */
async function topTracksPage(tracks: PageTrack[]): Promise<unknown> {
  const recorded = JSON.parse(await Deno.readTextFile(TEMPLATE)) as {
    items: Record<string, unknown>[];
  };
  const item = recorded.items[0]!;
  return {
    ...recorded,
    items: tracks.map((t) => ({
      ...structuredClone(item),
      id: t.id,
      uri: `spotify:track:${t.id}`,
      name: t.name,
      artists: t.artists.map((name, i) => ({
        ...(item.artists as Record<string, unknown>[])[0],
        id: `artist${i}`.padEnd(22, "x"),
        name,
      })),
    })),
    total: tracks.length,
    limit: 50,
    offset: 0,
  };
}

/** A made-up (well-formed) Spotify id for tracks a names-only catalog cannot know by id. */
const fakeId = (n: number) => `fake${String(n).padStart(18, "0")}`;

/** The page's rows enriched from one catalog, with its stats. */
async function enrich(
  file: string,
  tracks: PageTrack[],
  options: { columnMap?: ColumnMap; cacheDir?: string } = {},
) {
  const page = validateTopTracksPage(await topTracksPage(tracks), "test page");
  const rows = normalizeTopTracks(page, {
    timeRange: "short_term",
    snapshotDate: "2026-12-01",
    runId: "test",
    fetchedAt: "2026-12-01T00:00:00.000Z",
    source: "test page",
  });
  const provider = createCsvProvider({ paths: [join(DIR, file)], ...options });
  const { rows: out, coverage } = await enrichRows(rows, {
    providers: [provider],
    log: testLog().log,
  });
  const stats = coverage.providers[0]!.catalogs![0]!;
  const byName = Object.fromEntries(out.map((r) => [r.track_name, r]));
  return { rows: out, byName, stats, coverage };
}

/** The counts every file is checked on. */
function counts(s: CatalogStats) {
  return {
    rows: s.rows,
    accepted: s.accepted,
    rejected: s.rejected,
    rejected_by_reason: s.rejected_by_reason,
    without_id: s.without_id,
    ambiguous_names: s.ambiguous_names,
    features: s.features,
    feature_scales: s.feature_scales,
  };
}

/** A row's features, the ones the catalog lacks null. */
function features(values: Partial<Record<(typeof FEATURE_COLUMNS)[number], number>>) {
  return Object.fromEntries(FEATURE_COLUMNS.map((f) => [f, values[f] ?? null]));
}

function featuresOf(row: AudioFeatures) {
  return Object.fromEntries(FEATURE_COLUMNS.map((f) => [f, row[f]]));
}

const PERCENT_UNIT = {
  danceability: "percent",
  energy: "percent",
  speechiness: "percent",
  acousticness: "percent",
  liveness: "percent",
  valence: "percent",
};

Deno.test("spotify-2023 (Kaggle's most-streamed songs): names only, _% columns, bpm, note keys, Major/Minor; ambiguous pairs never matched", async () => {
  const { byName, stats, coverage } = await enrich("sandeepmj_spotify-2023.csv", [
    { id: fakeId(1), name: "Seven (feat. Latto) (Explicit Ver.)", artists: ["Latto", "Jung Kook"] },
    { id: fakeId(2), name: "LALA", artists: ["Myke Towers"] },
    { id: fakeId(3), name: "Flowers", artists: ["Miley Cyrus"] },
    { id: fakeId(4), name: "About Damn Time", artists: ["Lizzo"] },
    { id: fakeId(5), name: "SNAP", artists: ["Rosa Linn"] },
    { id: fakeId(6), name: "Take My Breath", artists: ["The Weeknd"] },
    { id: fakeId(7), name: "Not In This File", artists: ["Nobody"] },
  ]);
  assert.deepEqual(counts(stats), {
    rows: 953,
    accepted: 953,
    rejected: 0,
    rejected_by_reason: {},
    without_id: 953,
    // SNAP (valence 53 and 52) and Take My Breath (two keys): asked for, listed twice, unlike
    ambiguous_names: 2,
    // every feature but loudness and time_signature
    features: FEATURE_COLUMNS.filter((f) => f !== "loudness" && f !== "time_signature"),
    feature_scales: {
      ...PERCENT_UNIT,
      instrumentalness: "percent",
      key: "note",
      mode: "mode",
    },
  });
  // line 2: ...,125,B,Major,80,89,83,31,0,8,4 (bpm, key, mode, danceability_%, valence_%,
  // energy_%, acousticness_%, instrumentalness_%, liveness_%, speechiness_%)
  assert.deepEqual(
    featuresOf(byName["Seven (feat. Latto) (Explicit Ver.)"]!),
    features({
      tempo: 125,
      key: 11,
      mode: 1,
      danceability: 0.8,
      valence: 0.89,
      energy: 0.83,
      acousticness: 0.31,
      instrumentalness: 0,
      liveness: 0.08,
      speechiness: 0.04,
    }),
  );
  // 92,C#,Major,71,61,74,7,0,10,4
  assert.deepEqual(
    featuresOf(byName.LALA!),
    features({
      tempo: 92,
      key: 1,
      mode: 1,
      danceability: 0.71,
      valence: 0.61,
      energy: 0.74,
      acousticness: 0.07,
      instrumentalness: 0,
      liveness: 0.1,
      speechiness: 0.04,
    }),
  );
  // 118,,Major,71,65,68,6,0,3,7: no key given — null, not a guess (the file never says C)
  assert.equal(byName.Flowers!.key, null);
  assert.equal(byName.Flowers!.mode, 1);
  // two identical rows are one track: 109,A#,Minor,84,72,74,10,0,34,7
  assert.deepEqual(
    [
      byName["About Damn Time"]!.key,
      byName["About Damn Time"]!.mode,
      byName["About Damn Time"]!.valence,
    ],
    [10, 0, 0.72],
  );
  for (const t of ["Seven (feat. Latto) (Explicit Ver.)", "LALA", "Flowers", "About Damn Time"]) {
    assert.deepEqual([byName[t]!.features_source, byName[t]!.match_method], ["csv", "name"], t);
  }
  for (const t of ["SNAP", "Take My Breath", "Not In This File"]) {
    assert.equal(byName[t]!.match_method, "none", t);
    assert.equal(byName[t]!.danceability, null, t);
  }
  assert.deepEqual([coverage.matched, coverage.by_name, coverage.unmatched], [4, 4, 3]);
});

Deno.test("top50 (Top 50 Spotify Songs 2019): Track.Name / Artist.Name, 0–100 values read as percent, no key, mode or instrumentalness", async () => {
  const { byName, stats } = await enrich("rafaelcerq28_top50.csv", [
    { id: fakeId(1), name: "Señorita", artists: ["Shawn Mendes", "Camila Cabello"] },
    { id: fakeId(2), name: "Ransom", artists: ["Lil Tecca"] },
    { id: fakeId(3), name: "Old Town Road - Remix", artists: ["Lil Nas X", "Billy Ray Cyrus"] },
    // "bad guy" and "bad guy (with Justin Bieber)" are one normalised (title, artist) with
    // different values: never matched
    { id: fakeId(4), name: "bad guy", artists: ["Billie Eilish"] },
  ]);
  assert.deepEqual(counts(stats), {
    rows: 50,
    accepted: 50,
    rejected: 0,
    rejected_by_reason: {},
    without_id: 50,
    ambiguous_names: 1,
    features: [
      "danceability",
      "energy",
      "loudness",
      "speechiness",
      "acousticness",
      "liveness",
      "valence",
      "tempo",
    ],
    feature_scales: PERCENT_UNIT,
  });
  assert.deepEqual(stats.columns, { id: null, title: "Track.Name", artists: "Artist.Name" });
  // Beats.Per.Minute, Energy, Danceability, Loudness..dB.., Liveness, Valence., Length.,
  // Acousticness.., Speechiness.: 117,55,76,-6,8,75,191,4,3
  assert.deepEqual(
    featuresOf(byName["Señorita"]!),
    features({
      tempo: 117,
      energy: 0.55,
      danceability: 0.76,
      loudness: -6,
      liveness: 0.08,
      valence: 0.75,
      acousticness: 0.04,
      speechiness: 0.03,
    }),
  );
  // 180,64,75,-6,7,23,131,2,29
  assert.deepEqual(
    featuresOf(byName.Ransom!),
    features({
      tempo: 180,
      energy: 0.64,
      danceability: 0.75,
      loudness: -6,
      liveness: 0.07,
      valence: 0.23,
      acousticness: 0.02,
      speechiness: 0.29,
    }),
  );
  assert.equal(byName["bad guy"]!.match_method, "none");
  assert.equal(byName["Old Town Road - Remix"]!.danceability, 0.88);
  assert.equal(byName["Old Town Road - Remix"]!.match_method, "name");
});

Deno.test("Spotify-2000 (All Time Top 2000s): the column map adds tempo and loudness; rows damaged by quoting are rejected and counted", async () => {
  const tracks = [
    { id: fakeId(1), name: "Sunrise", artists: ["Norah Jones"] },
    { id: fakeId(2), name: "Mr. Brightside", artists: ["The Killers"] },
    // line 50 holds this row inside one quoted cell: rejected, so unmatched
    { id: fakeId(3), name: "You're The First, The Last, My Everything", artists: ["Barry White"] },
  ];
  const damaged = { "row has 1 cells, header has 15": 58 };
  const plain = await enrich("sabina-karenkina_Spotify-2000.csv", tracks);
  assert.deepEqual(counts(plain.stats), {
    rows: 1994,
    accepted: 1936,
    rejected: 58,
    rejected_by_reason: damaged,
    without_id: 1936,
    ambiguous_names: 0,
    features: ["danceability", "energy", "speechiness", "acousticness", "liveness", "valence"],
    feature_scales: PERCENT_UNIT,
  });
  assert.equal(plain.byName.Sunrise!.tempo, null);

  const columnMap: ColumnMap = {
    tempo: { column: "Beats Per Minute (BPM)" },
    loudness: { column: "Loudness (dB)" },
  };
  const mapped = await enrich("sabina-karenkina_Spotify-2000.csv", tracks, { columnMap });
  assert.deepEqual(mapped.stats.features, [
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "liveness",
    "valence",
    "tempo",
  ]);
  // Beats Per Minute (BPM),Energy,Danceability,Loudness (dB),Liveness,Valence,Length
  // (Duration),Acousticness,Speechiness: 157,30,53,-14,11,68,201,94,3
  assert.deepEqual(
    featuresOf(mapped.byName.Sunrise!),
    features({
      tempo: 157,
      energy: 0.3,
      danceability: 0.53,
      loudness: -14,
      liveness: 0.11,
      valence: 0.68,
      acousticness: 0.94,
      speechiness: 0.03,
    }),
  );
  // 148,92,36,-4,10,23,223,0,8
  assert.deepEqual(
    [mapped.byName["Mr. Brightside"]!.tempo, mapped.byName["Mr. Brightside"]!.acousticness],
    [148, 0],
  );
  assert.equal(mapped.byName["You're The First, The Last, My Everything"]!.match_method, "none");

  // a mapped column the file does not have: refused, naming the setting and the column
  await assert.rejects(
    () =>
      scanCatalog(join(DIR, "sabina-karenkina_Spotify-2000.csv"), {
        columnMap: { tempo: { column: "BPM" } },
      }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /AUDIO_FEATURES_CSV_COLUMNS maps tempo to the column "BPM", which ".*Spotify-2000\.csv" does not have \(found: Index, Title, Artist,/
        .test(e.message),
  );
});

Deno.test("TidyTuesday 2021-09-14 (Billboard audio features): song_id beside spotify_track_id, NA ids and NA features, performer/song", async () => {
  const { byName, stats } = await enrich("tidytuesday_2021-09-14_audio_features_rows.csv", [
    // by id: (Don't Fear) The Reaper, Blue Oyster Cult
    {
      id: "5QTxFnGygVM4jFQiBovmRo",
      name: "(Don't Fear) The Reaper",
      artists: ["Blue Oyster Cult"],
    },
    // by name, under another id: the file's row has 2PzU4IB8Dr6mxV3lHuaG34
    {
      id: fakeId(2),
      name: "(I Can't Get No) Satisfaction",
      artists: ["The Rolling Stones"],
    },
    // a row of NAs only: nothing to match
    {
      id: fakeId(3),
      name: "(Dance With The) Guitar Man",
      artists: ["Duane Eddy and the Rebelettes"],
    },
  ]);
  assert.deepEqual(counts(stats), {
    rows: 32,
    accepted: 20,
    rejected: 12,
    rejected_by_reason: { "no feature values": 12 },
    without_id: 0,
    ambiguous_names: 0,
    features: [...FEATURE_COLUMNS],
    feature_scales: {},
  });
  assert.deepEqual(stats.columns, { id: "spotify_track_id", title: "song", artists: "performer" });
  // ...,0.333,0.927,9,-8.55,0,0.0733,0.0029,2.11e-4,0.297,0.382,141.47,4,77
  const reaper = byName["(Don't Fear) The Reaper"]!;
  assert.deepEqual(
    featuresOf(reaper),
    features({
      danceability: 0.333,
      energy: 0.927,
      key: 9,
      loudness: -8.55,
      mode: 0,
      speechiness: 0.0733,
      acousticness: 0.0029,
      instrumentalness: 2.11e-4,
      liveness: 0.297,
      valence: 0.382,
      tempo: 141.47,
      time_signature: 4,
    }),
  );
  assert.equal(reaper.match_method, "id");
  const satisfaction = byName["(I Can't Get No) Satisfaction"]!;
  assert.deepEqual([satisfaction.match_method, satisfaction.tempo], ["name", 136.282]);
  assert.equal(byName["(Dance With The) Guitar Man"]!.match_method, "none");
});

Deno.test("refused with a message that says what to do: a semicolon-separated file, a file with no feature", async () => {
  await assert.rejects(
    () => scanCatalog(join(DIR, "sabina-karenkina_Spotify-2000_semicolon_head40.csv")),
    (e: unknown) =>
      e instanceof ConfigError && /its columns are separated by ";", not commas/.test(e.message) &&
      /Save it as comma-separated CSV/.test(e.hint ?? ""),
  );
  await assert.rejects(
    () => scanCatalog(join(DIR, "annarosaklaver_hot100_head40.csv")),
    (e: unknown) =>
      e instanceof ConfigError &&
      /annarosaklaver_hot100_head40\.csv": missing any audio-feature column \(danceability, /
        .test(e.message) &&
      /found: Performer, Song, spotify_genre\)/.test(e.message) &&
      /AUDIO_FEATURES_CSV_COLUMNS/.test(e.hint ?? ""),
  );
});

Deno.test("scales: a column split between 0–1 and 0–100 is an error naming it; the column map settles it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "csv_scales_" });
  try {
    const path = join(dir, "mixed.csv");
    const rows = ["title,artist,Energy"];
    for (let i = 0; i < 10; i++) rows.push(`a${i},b,0.${i + 1}`, `c${i},d,${40 + i}`);
    await Deno.writeTextFile(path, rows.join("\n") + "\n");
    await assert.rejects(
      () => scanCatalog(path),
      (e: unknown) =>
        e instanceof ConfigError &&
        /Cannot tell how to read energy from ".*mixed\.csv" \(column "Energy"\): 10 values between 0 and 1 and 10 between 1 and 100/
          .test(e.message) &&
        /energy=Energy:percent/.test(e.hint ?? ""),
    );
    const { stats } = await scanCatalog(path, {
      columnMap: { energy: { column: "Energy", scale: "percent" } },
    });
    // as percent, 0.1 .. 0.9 are 0.001 .. 0.009 and 40 .. 49 are 0.40 .. 0.49: all in range
    assert.deepEqual([stats.accepted, stats.rejected, stats.feature_scales], [20, 0, {
      energy: "percent",
    }]);
    const unit = await scanCatalog(path, {
      columnMap: { energy: { column: "Energy", scale: "unit" } },
    });
    assert.deepEqual(unit.stats.rejected_by_reason, { "energy outside [0,1]": 10 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the catalog index answers as the scan did, and is rebuilt when the column map changes", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "csv_variants_index_" });
  try {
    const path = join(DIR, "sandeepmj_spotify-2023.csv");
    const names = [
      { title: "LALA", artist: "Myke Towers" },
      { title: "SNAP", artist: "Rosa Linn" },
      { title: "About Damn Time", artist: "Lizzo" },
    ];
    const scanned = await scanCatalog(path, { names });
    const built = await lookupCatalog(path, { names, cacheDir });
    const hit = await lookupCatalog(path, { names, cacheDir });
    assert.deepEqual([built.cache, hit.cache], ["built", "hit"]);
    for (const found of [built, hit]) {
      assert.deepEqual(new Map(found.byName), new Map(scanned.byName));
      assert.deepEqual(found.stats.feature_scales, scanned.stats.feature_scales);
    }
    const columnMap: ColumnMap = { key: { column: "key", scale: "note" } };
    const remapped = await lookupCatalog(path, { names, cacheDir, columnMap });
    assert.deepEqual([remapped.cache, remapped.cacheNote], ["built", "column map changed"]);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("AUDIO_FEATURES_CSV_COLUMNS is read into the config (names, columns with spaces, scales)", () => {
  const config: Config = loadConfig({
    env: {
      AUDIO_FEATURES_CSV_COLUMNS:
        "tempo=Beats Per Minute (BPM), energy=Energy:%, key=Key:note, track_name=Title",
    },
    envFile: false,
  });
  assert.deepEqual(config.features.csvColumns, {
    tempo: { column: "Beats Per Minute (BPM)" },
    energy: { column: "Energy", scale: "percent" },
    key: { column: "Key", scale: "note" },
    track_name: { column: "Title" },
  });
});
