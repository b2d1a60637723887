/**
 * The audio-features CSV reader on the real CSVs in ../shared/fixtures/audio_features (Kaggle
 * "Spotify Tracks Dataset" samples, an Excel re-save, Python-list artists, TidyTuesday), plus
 * small CSVs written to a temp folder for what the fixtures lack: id URIs/URLs, quoted newlines,
 * CRLF, out-of-range values, duplicates, missing files and columns, malformed quoting.
 */

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT as ROOT } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { parseArtists, scanCatalog } from "../lib/features/csv_catalog.ts";
import { checkFeature, extractTrackId, FEATURE_RANGES } from "../lib/features/provider.ts";
import type { FeatureName } from "../lib/types.ts";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/audio_features/", import.meta.url));
const KAGGLE_10K = join(FIXTURES, "maharshipandya_sample10k_Nima-ml.csv");
const KAGGLE_2K = join(FIXTURES, "maharshipandya_sample2k_ismayc.csv");
const EXCEL_500 = join(FIXTURES, "maharshipandya_head500_excel_mohammedamer711.csv");
const STAT108 = join(FIXTURES, "stat108_spotify_tracks.csv");
const TIDY = join(FIXTURES, "tidytuesday_spotify_songs_head40_longocollc.csv");

const HEADER =
  "track_id,artists,album_name,track_name,popularity,duration_ms,explicit,danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature,track_genre";
/** A valid Kaggle-schema row with the given id, artists, title and overrides. */
function kaggleRow(
  id: string,
  artists: string,
  title: string,
  overrides: Record<string, string> = {},
): string {
  const values: Record<string, string> = {
    track_id: id,
    artists,
    album_name: "Album",
    track_name: title,
    popularity: "50",
    duration_ms: "200000",
    explicit: "False",
    danceability: "0.5",
    energy: "0.6",
    key: "5",
    loudness: "-7.5",
    mode: "1",
    speechiness: "0.05",
    acousticness: "0.1",
    instrumentalness: "0",
    liveness: "0.12",
    valence: "0.4",
    tempo: "120.0",
    time_signature: "4",
    track_genre: "pop",
    ...overrides,
  };
  return HEADER.split(",").map((c) => values[c]!).join(",");
}

async function withTempCsv(
  text: string,
  fn: (path: string) => Promise<void>,
  name = "catalog.csv",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "enrich_csv_" });
  try {
    const path = join(dir, name);
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("scanCatalog() reads the Kaggle 10k sample: rows, duplicates (first wins), bad tempo rejected", async () => {
  const ids = ["4ChVFOiAIPwnKLgWGUcErS", "5TUKBnpG0UD8Et7nPf3NnW", "05WsoThz68cuRT2rrJQMNh"];
  const { stats, byId } = await scanCatalog(KAGGLE_10K, {
    ids: [...ids, "6PT6nSEatLEKVLOo4asoAr", "1kR4gIb7nGxHPI3D2ifs59", "0000000000000000000000"],
  });
  assert.equal(stats.rows, 10_000);
  // 9,749 distinct ids: 9,735 kept + 14 whose only row has tempo 0; 251 repeated rows.
  assert.equal(stats.accepted, 9_735);
  assert.equal(stats.duplicate_ids, 251);
  assert.equal(stats.rejected, 14);
  assert.deepEqual(stats.rejected_by_reason, { "tempo <= 0": 14 });
  assert.equal(stats.accepted + stats.rejected, 9_749);
  assert.equal(stats.rows, stats.accepted + stats.duplicate_ids + stats.rejected);
  assert.match(stats.rejected_examples[0]!, /^line \d+: tempo <= 0$/);
  assert.deepEqual(stats.columns, { id: "track_id", title: "track_name", artists: "artists" });
  for (const id of ids) assert.ok(byId.has(id), `${id} found`);
  // Same track listed under two genres: found once.
  assert.ok(byId.has("6PT6nSEatLEKVLOo4asoAr"));
  // The row with empty artists is still found by id.
  assert.ok(byId.has("1kR4gIb7nGxHPI3D2ifs59"));
  assert.ok(!byId.has("0000000000000000000000"));
  assert.equal(byId.size, 5);
  const first = byId.get("4ChVFOiAIPwnKLgWGUcErS")!.features;
  assert.deepEqual(first, {
    danceability: 0.123,
    energy: 0.261,
    key: 8,
    loudness: -11.245,
    mode: 1,
    speechiness: 0.0288,
    acousticness: 0.718,
    instrumentalness: 0,
    liveness: 0.14,
    valence: 0.136,
    tempo: 82.062,
    time_signature: 3,
  });
});

Deno.test("scanCatalog() reads the Kaggle 2k sample (no index column) and rejects its tempo-0 row", async () => {
  const { stats, byId } = await scanCatalog(KAGGLE_2K, {
    ids: ["2IVsRhKrx8hlQBOWy4qebo", "6H3kDe7CGoWYBabAeVWGiD", "2bRKxuH1o7pTmb1y4GfdEc"],
  });
  assert.equal(stats.rows, 2_024);
  assert.equal(stats.accepted, 2_023);
  assert.equal(stats.rejected, 1);
  assert.deepEqual(stats.rejected_examples, ["line 850: tempo <= 0"]);
  assert.ok(byId.has("2IVsRhKrx8hlQBOWy4qebo"));
  assert.ok(byId.has("6H3kDe7CGoWYBabAeVWGiD"), "last row found");
  assert.ok(!byId.has("2bRKxuH1o7pTmb1y4GfdEc"), "the tempo-0 row is not used");
});

Deno.test("scanCatalog() reads the Excel re-save: byte-order mark, blank first header, FALSE, 1.01E-06", async () => {
  const { stats, byId, byName } = await scanCatalog(EXCEL_500, {
    ids: ["5SuOikwiRyPMVoIQDJUgSV"],
    names: [{ title: "You and Me On The Rock", artist: "Brandi Carlile" }],
  });
  assert.equal(stats.rows, 499);
  assert.equal(stats.accepted, 499);
  assert.equal(stats.rejected, 0);
  assert.equal(stats.columns.id, "track_id", "BOM does not stick to a header name");
  const f = byId.get("5SuOikwiRyPMVoIQDJUgSV")!.features;
  assert.equal(f.instrumentalness, 1.01e-6);
  assert.equal(f.tempo, 87.917);
  assert.equal(f.mode, 0);
  // By name, case and "(feat. Lucius)" ignored: the same recording is on line 44 (a compilation,
  // another id) and line 500 (the album, "(feat. Lucius)"): the first row wins.
  const hit = byName.get(
    [...byName.keys()].find((k) => k.startsWith("f:youandmeontherock"))!,
  );
  assert.equal(hit?.name?.catalog_track_id, "0e5PAxSyZ5DWWVqKANHETz");
  assert.equal(hit?.name?.line, 44);
});

Deno.test("scanCatalog() reads Python-list artists with mixed quotes and spaced headers (stat108)", async () => {
  const { stats, byId, byName } = await scanCatalog(STAT108, {
    ids: ["6GomT970rCOkKAyyrwJeZi", "5kVRGfWiIOcJwxIjLjesuM"],
    names: [
      { title: "Move Your Body", artist: "Ownboss" },
      { title: "Settle", artist: "Dezza" },
      { title: "Somewhere New", artist: "Klingande" },
    ],
  });
  assert.equal(stats.rows, 2_915);
  assert.equal(stats.accepted, 2_915);
  assert.deepEqual(stats.columns, {
    id: "track id",
    title: "track name",
    artists: "artists names",
  });
  assert.ok(byId.has("6GomT970rCOkKAyyrwJeZi"));
  assert.ok(byId.has("5kVRGfWiIOcJwxIjLjesuM"));
  const names = [...new Set([...byName.values()].map((h) => h.name!.catalog_track_name))].sort();
  // "Öwnboss" matched without its accent; "(feat. M-22) - Radio Edit" dropped for the base key.
  assert.deepEqual(names, ["Move Your Body", "Settle", "Somewhere New (feat. M-22) - Radio Edit"]);
  assert.deepEqual(parseArtists(`['Dezza', "Lauren L'aimant"]`), ["Dezza", "Lauren L'aimant"]);
  assert.deepEqual(parseArtists("['Öwnboss', 'Sevek']"), ["Öwnboss", "Sevek"]);
});

Deno.test("scanCatalog() reads the TidyTuesday schema (track_artist, no time_signature)", async () => {
  const { stats, byId, byName } = await scanCatalog(TIDY, {
    ids: ["0r7CVbZTWZgbTCYdfa2P31"],
    names: [{ title: "I Don't Care - Loud Luxury Remix", artist: "Ed Sheeran" }],
  });
  assert.equal(stats.rows, 40);
  assert.equal(stats.accepted, 40);
  assert.deepEqual(stats.columns, { id: "track_id", title: "track_name", artists: "track_artist" });
  const f = byId.get("0r7CVbZTWZgbTCYdfa2P31")!.features;
  assert.equal(f.danceability, 0.726);
  assert.equal(f.time_signature, null);
  // "(with Justin Bieber)" dropped; the remix is kept in both keys.
  const hit = [...byName.values()][0];
  assert.equal(hit?.name?.catalog_track_id, "6f807x0ima9a1j3VPbc7VN");
  assert.equal(hit?.name?.key, "full");
});

Deno.test("scanCatalog() accepts ids as URIs and URLs, CRLF, quoted newlines and comma/semicolon artists", async () => {
  const rows = [
    HEADER,
    kaggleRow("spotify:track:1111111111111111111111", "A;B", "Uri Song"),
    kaggleRow(
      "https://open.spotify.com/track/2222222222222222222222?si=abc",
      '"Tyler, The Creator"',
      "Url Song",
    ),
    kaggleRow("open.spotify.com/intl-de/track/3333333333333333333333", "C", '"Two\nLines"'),
    kaggleRow("not-an-id", '"Lonely Artist, Friend"', "Nameless"),
  ];
  await withTempCsv(rows.join("\r\n") + "\r\n", async (path) => {
    const { stats, byId, byName } = await scanCatalog(path, {
      ids: ["1111111111111111111111", "2222222222222222222222", "3333333333333333333333"],
      names: [
        { title: "Url Song", artist: "Tyler, The Creator" },
        { title: "Nameless", artist: "Lonely Artist" },
      ],
    });
    assert.equal(stats.rows, 4);
    assert.equal(stats.without_id, 1);
    assert.equal(byId.size, 3);
    assert.equal(byId.get("1111111111111111111111")!.features.tempo, 120);
    assert.equal(byName.size, 4, "full and base keys of both names");
    const titles = [...byName.values()].map((h) => h.name!.catalog_track_name).sort();
    assert.deepEqual(titles, ["Nameless", "Nameless", "Url Song", "Url Song"]);
    assert.equal(
      [...byName.values()].find((h) => h.name!.catalog_track_name === "Nameless")!.name!
        .catalog_track_id,
      null,
    );
  });
  assert.equal(extractTrackId(" 4ChVFOiAIPwnKLgWGUcErS "), "4ChVFOiAIPwnKLgWGUcErS");
  assert.equal(extractTrackId("spotify:album:4ChVFOiAIPwnKLgWGUcErS"), null);
  assert.equal(
    extractTrackId("https://open.spotify.com/embed/track/4ChVFOiAIPwnKLgWGUcErS"),
    "4ChVFOiAIPwnKLgWGUcErS",
  );
  assert.equal(extractTrackId(""), null);
  assert.deepEqual(parseArtists("A, B"), ["A", "B"]);
  assert.deepEqual(parseArtists("A;B ; C"), ["A", "B", "C"]);
  assert.deepEqual(parseArtists("[]"), []);
  assert.deepEqual(parseArtists(""), []);
});

Deno.test("scanCatalog() rejects and counts out-of-range and non-numeric rows; empty cells are null", async () => {
  const bad: [string, Record<string, string>, string][] = [
    ["0000000000000000000001", { danceability: "1.2" }, "danceability outside [0,1]"],
    ["0000000000000000000002", { energy: "-0.1" }, "energy outside [0,1]"],
    ["0000000000000000000003", { speechiness: "2" }, "speechiness outside [0,1]"],
    ["0000000000000000000004", { acousticness: "1.0001" }, "acousticness outside [0,1]"],
    ["0000000000000000000005", { instrumentalness: "-1E-06" }, "instrumentalness outside [0,1]"],
    ["0000000000000000000006", { liveness: "5" }, "liveness outside [0,1]"],
    ["0000000000000000000007", { valence: "1.5" }, "valence outside [0,1]"],
    ["0000000000000000000008", { tempo: "0" }, "tempo <= 0"],
    ["0000000000000000000009", { tempo: "-120" }, "tempo <= 0"],
    ["0000000000000000000010", { key: "12" }, "key outside -1..11"],
    ["0000000000000000000011", { key: "-2" }, "key outside -1..11"],
    ["0000000000000000000012", { key: "2.5" }, "key outside -1..11"],
    ["0000000000000000000013", { mode: "2" }, "mode not 0/1"],
    ["0000000000000000000014", { mode: "FALSE" }, "mode is not a number"],
    ["0000000000000000000015", { loudness: "loud" }, "loudness is not a number"],
  ];
  const good: [string, Record<string, string>][] = [
    ["0000000000000000000020", { key: "-1", mode: "0", danceability: "0", energy: "1" }],
    ["0000000000000000000021", { loudness: "", time_signature: "" }],
    ["0000000000000000000022", { instrumentalness: "1.01E-06", explicit: "FALSE" }],
  ];
  const rows = [
    HEADER,
    ...bad.map(([id, o]) => kaggleRow(id, "X", "T", o)),
    ...good.map(([id, o]) => kaggleRow(id, "X", "T", o)),
    "0000000000000000000030,short,row", // too few cells
  ];
  await withTempCsv(rows.join("\n"), async (path) => {
    const ids = [...bad, ...good].map(([id]) => id);
    const { stats, byId } = await scanCatalog(path, { ids, maxExamples: 3 });
    assert.equal(stats.rows, bad.length + good.length + 1);
    assert.equal(stats.rejected, bad.length + 1);
    assert.equal(stats.accepted, good.length);
    const expected: Record<string, number> = {};
    for (const [, , reason] of bad) expected[reason] = (expected[reason] ?? 0) + 1;
    expected["row has 3 cells, header has 20"] = 1;
    assert.deepEqual(stats.rejected_by_reason, expected);
    assert.deepEqual(stats.rejected_examples, [
      "line 2: danceability outside [0,1]",
      "line 3: energy outside [0,1]",
      "line 4: speechiness outside [0,1]",
    ]);
    assert.deepEqual([...byId.keys()].sort(), good.map(([id]) => id));
    const blank = byId.get("0000000000000000000021")!.features;
    assert.equal(blank.loudness, null);
    assert.equal(blank.time_signature, null);
    assert.equal(byId.get("0000000000000000000020")!.features.key, -1);
    assert.equal(byId.get("0000000000000000000022")!.features.instrumentalness, 0.00000101);
  });
});

Deno.test("scanCatalog() keeps the first row of a repeated id and counts the others", async () => {
  const id = "7ouMYWpwJ422jRcDASZB7P";
  const rows = [
    HEADER,
    kaggleRow(id, "A", "Song", { tempo: "0" }), // rejected: does not take part
    kaggleRow(id, "A", "Song", { danceability: "0.11" }), // first valid: wins
    kaggleRow(`spotify:track:${id}`, "A", "Song", { danceability: "0.22" }), // same id as a URI
    kaggleRow(id, "A", "Song", { danceability: "0.33" }),
  ];
  await withTempCsv(rows.join("\n") + "\n", async (path) => {
    const { stats, byId } = await scanCatalog(path, { ids: [id] });
    assert.equal(stats.rejected, 1);
    assert.equal(stats.accepted, 1);
    assert.equal(stats.duplicate_ids, 2);
    assert.equal(byId.get(id)!.features.danceability, 0.11);
  });
});

Deno.test("scanCatalog() names the file, the columns needed and the columns found when columns are missing", async () => {
  await withTempCsv("song,singer,danceability,energy\nx,y,0.1,0.2\n", async (path) => {
    const error = await scanCatalog(path).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(error.message.includes(path), error.message);
    assert.match(error.message, /missing an id column \(track_id, id, uri\)/);
    assert.match(error.message, /needed: an id column or title\+artists, and at least one feature/);
    assert.match(error.message, /found: song, singer, danceability, energy\)/);
  });
  // Ids but no feature at all: refused too, naming the features looked for.
  await withTempCsv(
    "track_id,track_name,popularity\n2IVsRhKrx8hlQBOWy4qebo,x,50\n",
    async (path) => {
      const error = await scanCatalog(path).then(() => undefined, (e) => e);
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /missing any audio-feature column \(danceability, energy, key, /);
      assert.match(error.message, /found: track_id, track_name, popularity\)/);
    },
  );
  // Title + artists without an id column is enough (name matching only).
  await withTempCsv(
    "name,artist_name," + HEADER.split(",").slice(7, 19).join(",") + "\n" +
      "Song,Band,0.5,0.6,5,-7,1,0.05,0.1,0,0.1,0.4,120,4\n",
    async (path) => {
      const { stats, byName } = await scanCatalog(path, {
        names: [{ title: "song", artist: "BAND" }],
      });
      assert.equal(stats.without_id, 1);
      assert.equal(byName.size, 2);
    },
  );
});

Deno.test("scanCatalog() fails with a ConfigError naming a missing, empty or malformed file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "enrich_csv_" });
  try {
    const missing = join(dir, "nope.csv");
    await assert.rejects(scanCatalog(missing), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message, `Cannot read audio features from "${missing}": no such file`);
      assert.match(e.hint ?? "", /AUDIO_FEATURES_CSV/);
      return true;
    });
    await assert.rejects(scanCatalog(dir), /not a file/);
    const empty = join(dir, "empty.csv");
    await Deno.writeTextFile(empty, "");
    await assert.rejects(scanCatalog(empty), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /empty\.csv": the file is empty \(no header row\)/);
      return true;
    });
    const broken = join(dir, "broken.csv");
    await Deno.writeTextFile(
      broken,
      [HEADER, kaggleRow("0000000000000000000001", "A", "T"), '0000000000000000000002,"A,T'].join(
        "\n",
      ),
    );
    await assert.rejects(scanCatalog(broken), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /broken\.csv": malformed CSV near line \d+/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every feature's bounds: the byte reader and csv-parse accept each bound and reject just past it (tempo 400, loudness -90, time_signature 11 among them)", async () => {
  const cases: [Record<string, string>, string | null][] = [
    // the values a review found passing the fast path before (then failing every dbt build)
    [{ tempo: "400" }, "tempo > 300"],
    [{ loudness: "-90" }, "loudness outside [-60,10]"],
    [{ time_signature: "11" }, "time_signature outside 0..7"],
  ];
  for (const [name, range] of Object.entries(FEATURE_RANGES)) {
    const step = range.integer ? 1 : 0.001;
    cases.push([{ [name]: String(range.max) }, null]);
    cases.push([
      { [name]: String(range.max + step) },
      checkFeature(name as FeatureName, range.max + step)!,
    ]);
    cases.push([
      { [name]: String(range.min - step) },
      checkFeature(name as FeatureName, range.min - step)!,
    ]);
    if (range.minExclusive) cases.push([{ [name]: String(range.min) }, `${name} <= ${range.min}`]);
    else cases.push([{ [name]: String(range.min) }, null]);
    if (range.integer) {
      cases.push([
        { [name]: String(range.min + 0.5) },
        checkFeature(name as FeatureName, range.min + 0.5)!,
      ]);
    }
  }
  const id = (i: number) => String(i).padStart(22, "0");
  const csv = [HEADER, ...cases.map(([o], i) => kaggleRow(id(i), "X", "T", o))].join("\n");
  for (const reader of ["auto", "csv-parse"] as const) {
    await withTempCsv(csv, async (path) => {
      const ids = cases.map((_, i) => id(i));
      const { stats, byId } = await scanCatalog(path, { ids, reader, maxExamples: 0 });
      cases.forEach(([o, reason], i) => {
        const what = `${reader}: ${JSON.stringify(o)}`;
        if (reason === null) assert.ok(byId.has(id(i)), `${what} accepted`);
        else assert.ok(!byId.has(id(i)), `${what} rejected (${reason})`);
      });
      const expected: Record<string, number> = {};
      for (const [, reason] of cases) if (reason) expected[reason] = (expected[reason] ?? 0) + 1;
      assert.deepEqual(stats.rejected_by_reason, expected, reader);
    });
  }
  // the literal reasons, independent of the table
  assert.equal(checkFeature("tempo", 300.001), "tempo > 300");
  assert.equal(checkFeature("tempo", 0), "tempo <= 0");
  assert.equal(checkFeature("mode", 2), "mode not 0/1");
  assert.equal(checkFeature("key", 11.5), "key outside -1..11");
});

Deno.test("the warehouse's dbt tests accept exactly the code's feature ranges (one table, checked)", async () => {
  const yml = await Deno.readTextFile(
    new URL("../dbt/models/staging/spotify/_spotify__models.yml", import.meta.url),
  );
  // every staging model that carries features: column → its accepted_range tests
  for (const model of ["stg_spotify__top_tracks", "stg_spotify__recently_played"]) {
    const start = yml.indexOf(`  - name: ${model}\n`);
    assert.ok(start >= 0, model);
    const end = yml.indexOf("\n  - name: ", start + 1);
    const block = yml.slice(start, end < 0 ? undefined : end);
    for (const [name, range] of Object.entries(FEATURE_RANGES)) {
      const col = block.indexOf(`      - name: ${name}\n`);
      assert.ok(col >= 0, `${model}.${name}`);
      const next = block.indexOf("\n      - name: ", col + 1);
      const tests = block.slice(col, next < 0 ? undefined : next);
      const bounds = [...tests.matchAll(/accepted_range:\s*\n\s*arguments: \{([^}]*)\}/g)].map((
        m,
      ) =>
        Object.fromEntries(
          m[1]!.split(",").map((kv) => kv.split(":").map((x) => x.trim()) as [string, string]),
        )
      );
      const min = bounds.find((b) => b.min_value !== undefined)!;
      const max = bounds.find((b) => b.max_value !== undefined)!;
      assert.equal(Number(min.min_value), range.min, `${model}.${name} min`);
      assert.equal(min.inclusive === "false", range.minExclusive === true, `${model}.${name} min`);
      assert.equal(Number(max.max_value), range.max, `${model}.${name} max`);
      assert.notEqual(max.inclusive, "false", `${model}.${name} max is inclusive`);
    }
  }
});

Deno.test("a catalog path that is a loop of symbolic links: enrich ends with exit 2 and one line naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "enrich_csv_loop_" });
  try {
    const a = join(dir, "a.csv");
    const b = join(dir, "b.csv");
    await Deno.symlink(b, a);
    await Deno.symlink(a, b);
    await assert.rejects(scanCatalog(a), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /a\.csv": a loop of symbolic links/);
      return true;
    });
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "scripts", "pipeline.ts"), "--to", "enrich"],
      cwd: dir,
      clearEnv: true,
      env: {
        HOME: dir,
        PATH: Deno.env.get("PATH") ?? "",
        PIPELINE_DATA_DIR: join(dir, "data"),
        PIPELINE_LOG_FORMAT: "json",
        PIPELINE_STREAMS: "top_tracks",
        AUDIO_FEATURES_CSV: a,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    const errors = stderr.split("\n").filter((l) => l.includes('"level":"error"'));
    assert.equal(errors.length, 1, stderr);
    assert.match(errors[0]!, /a loop of symbolic links/);
    assert.ok(!stderr.includes('"stack"'), "no stack trace");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
