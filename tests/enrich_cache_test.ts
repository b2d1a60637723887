/**
 * The catalog index (lib/features/catalog_index.ts): built on first use, answering later lookups
 * with exactly what a scan answers, and never answering for a catalog that changed — a new size,
 * a same-size rewrite right after indexing (racy), other content behind the same size; a copy
 * or `touch` with the same content is re-stamped instead of scanned. An unwritable cache folder
 * only means scanning. The enrich step uses it from the second run on.
 */

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../lib/config.ts";
import { type CatalogLookup, lookupCatalog } from "../lib/features/catalog_index.ts";
import { type NameQuery, scanCatalog } from "../lib/features/csv_catalog.ts";
import { Logger, type LogRecord } from "../lib/log.ts";
import { createRun } from "../lib/run.ts";
import { runStep } from "../lib/steps.ts";
import type { EnrichOutput } from "../lib/types.ts";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/audio_features/", import.meta.url));
const KAGGLE_10K = join(FIXTURES, "maharshipandya_sample10k_Nima-ml.csv");

const IDS = ["4ChVFOiAIPwnKLgWGUcErS", "5TUKBnpG0UD8Et7nPf3NnW", "6PT6nSEatLEKVLOo4asoAr"];
const NAMES: NameQuery[] = [
  { title: "O HOLY NIGHT", artist: "nat king cole", track_id: "0000000000000000000001" },
  { title: "The Cage - Live", artist: "Disfear", track_id: "0000000000000000000002" },
  // Found by id below: an indexed lookup may leave its name out.
  { title: "Anything", artist: "Anyone", track_id: IDS[0] },
];
const LONG_AGO = new Date("2025-01-01T00:00:00Z");

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "enrich_cache_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A copy of `source` last modified long ago (so its index is not racy). */
async function oldCopy(source: string, path: string): Promise<void> {
  await Deno.copyFile(source, path);
  await Deno.utime(path, LONG_AGO, LONG_AGO);
}

/** The lookup's answer compared with a scan's (names of tracks found by id aside). */
async function assertSameAsScan(path: string, found: CatalogLookup): Promise<void> {
  const scan = await scanCatalog(path, { ids: IDS, names: NAMES });
  assert.deepEqual(found.stats, scan.stats);
  assert.deepEqual([...found.byId].sort(), [...scan.byId].sort());
  for (const [key, hit] of found.byName) assert.deepEqual(hit, scan.byName.get(key), key);
  const byIdNames = new Set(
    [...scan.byName.keys()].filter((k) => k.includes("anything") || k.includes("anyone")),
  );
  for (const key of scan.byName.keys()) {
    if (!byIdNames.has(key)) assert.ok(found.byName.has(key), `name ${key} answered`);
  }
}

Deno.test("lookupCatalog() indexes a catalog on first use and answers the next lookups from the index, as a scan would", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "catalog.csv");
    await oldCopy(KAGGLE_10K, path);
    const cacheDir = join(dir, "cache");
    const first = await lookupCatalog(path, { ids: IDS, names: NAMES, cacheDir });
    assert.equal(first.cache, "built");
    assert.equal(first.cacheNote, "no index yet");
    assert.equal(first.byId.size, 3);
    const files = [...Deno.readDirSync(cacheDir)].map((e) => e.name);
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^catalog-[0-9a-f]{16}\.idx$/);

    const second = await lookupCatalog(path, { ids: IDS, names: NAMES, cacheDir });
    assert.equal(second.cache, "hit");
    await assertSameAsScan(path, second);
    // Both found by their base key ("O Holy Night - Remastered 1999", "The Cage").
    assert.deepEqual([...second.byName.keys()].sort(), [
      "b:oholynight\u0000natkingcole",
      "b:thecage\u0000disfear",
    ]);
    const holyNight = second.byName.get("b:oholynight\u0000natkingcole")!;
    assert.equal(holyNight.name?.line, 2);
    assert.equal(holyNight.name?.file, path);
    // Ids not in the catalog, and no names: still answered from the index.
    const none = await lookupCatalog(path, { ids: ["0000000000000000000000"], cacheDir });
    assert.equal(none.cache, "hit");
    assert.equal(none.byId.size, 0);
  });
});

Deno.test("lookupCatalog() never answers from the index of a changed catalog: new size, racy same-size rewrite, other content", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "catalog.csv");
    const cacheDir = join(dir, "cache");
    const header =
      "track_id,artists,track_name,danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo";
    const row = (id: string, tempo: string) =>
      `${id},A,T,0.5,0.5,1,-5,1,0.05,0.1,0,0.1,0.5,${tempo}`;
    const id = "1111111111111111111111";

    // Written just now: the index is racy, so the next lookup checks the content.
    await Deno.writeTextFile(path, [header, row(id, "100.000")].join("\n") + "\n");
    assert.equal((await lookupCatalog(path, { ids: [id], cacheDir })).cache, "built");
    // Same size, other content, within the same instant: caught by the content hash.
    await Deno.writeTextFile(path, [header, row(id, "120.000")].join("\n") + "\n");
    const rewritten = await lookupCatalog(path, { ids: [id], cacheDir });
    assert.equal(rewritten.cache, "built");
    assert.equal(rewritten.cacheNote, "catalog content changed");
    assert.equal(rewritten.byId.get(id)!.features.tempo, 120);
    // Unchanged but still racy: verified by content, not scanned.
    const again = await lookupCatalog(path, { ids: [id], cacheDir });
    assert.equal(again.cache, "verified");
    assert.equal(again.byId.get(id)!.features.tempo, 120);

    // A new size: scanned again.
    await Deno.writeTextFile(
      path,
      [header, row(id, "120.000"), row("2".repeat(22), "90")].join("\n"),
    );
    await Deno.utime(path, LONG_AGO, LONG_AGO);
    const grown = await lookupCatalog(path, { ids: [id, "2".repeat(22)], cacheDir });
    assert.equal(grown.cache, "built");
    assert.equal(grown.cacheNote, "catalog size changed");
    assert.equal(grown.byId.size, 2);
    assert.equal(grown.stats.rows, 2);
    assert.equal((await lookupCatalog(path, { ids: [id], cacheDir })).cache, "hit");

    // Same size, other content, timestamps set back: the content hash still sees it.
    await Deno.writeTextFile(
      path,
      [header, row(id, "130.000"), row("2".repeat(22), "90")].join("\n"),
    );
    await Deno.utime(path, LONG_AGO, new Date(LONG_AGO.getTime() + 1000));
    const changed = await lookupCatalog(path, { ids: [id], cacheDir });
    assert.equal(changed.cache, "built");
    assert.equal(changed.cacheNote, "catalog content changed");
    assert.equal(changed.byId.get(id)!.features.tempo, 130);
  });
});

Deno.test("lookupCatalog() re-stamps a touched or copied catalog with the same content instead of scanning it", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "catalog.csv");
    const cacheDir = join(dir, "cache");
    await oldCopy(KAGGLE_10K, path);
    assert.equal((await lookupCatalog(path, { ids: IDS, cacheDir })).cache, "built");
    // A fresh copy over it: new inode and times, same bytes.
    await Deno.copyFile(KAGGLE_10K, `${path}.new`);
    await Deno.rename(`${path}.new`, path);
    await Deno.utime(path, LONG_AGO, new Date(LONG_AGO.getTime() + 60_000));
    const copied = await lookupCatalog(path, { ids: IDS, names: NAMES, cacheDir });
    assert.equal(copied.cache, "verified");
    await assertSameAsScan(path, copied);
    assert.equal((await lookupCatalog(path, { ids: IDS, cacheDir })).cache, "hit");
  });
});

Deno.test("lookupCatalog() answers by scanning when the cache folder cannot be written, or the catalog is not indexable", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "catalog.csv");
    await oldCopy(KAGGLE_10K, path);
    const blocked = join(dir, "a-file");
    await Deno.writeTextFile(blocked, "");
    const found = await lookupCatalog(path, {
      ids: IDS,
      names: NAMES,
      cacheDir: join(blocked, "cache"),
    });
    assert.equal(found.cache, "scanned");
    assert.match(found.cacheNote!, /^index not written: /);
    assert.equal(found.byId.size, 3);

    // A lone carriage return: read with csv-parse, which gives no row positions to index.
    const odd = join(dir, "odd.csv");
    await Deno.writeTextFile(
      odd,
      "track_id,danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo\r" +
        "1111111111111111111111,0.5,0.5,1,-5,1,0.05,0.1,0,0.1,0.5,100\r",
    );
    const scanned = await lookupCatalog(odd, {
      ids: ["1111111111111111111111"],
      cacheDir: join(dir, "c"),
    });
    assert.equal(scanned.cache, "scanned");
    assert.equal(scanned.reader, "csv-parse");
    assert.match(scanned.cacheNote!, /carriage return without line feed/);
    assert.equal(scanned.byId.size, 1);
  });
});

Deno.test("enrich step: the second run answers from the catalog index and writes the same rows", async () => {
  await withDir(async (dir) => {
    const catalog = join(dir, "catalog.csv");
    await oldCopy(
      fileURLToPath(new URL("../data/audio_features_sample.csv", import.meta.url)),
      catalog,
    );
    const config = loadConfig({
      env: {
        PIPELINE_DATA_DIR: dir,
        SPOTIFY_SOURCE: "sample",
        AUDIO_FEATURES_CSV: catalog,
        PIPELINE_STREAMS: "top_tracks",
      },
      envFile: false,
    });
    const outputs: unknown[] = [];
    const cacheStates: unknown[] = [];
    for (const date of ["2026-11-26", "2026-11-27"]) {
      // this test is about the catalog index: without the features cache (which would answer
      // the second run without reading the catalog at all)
      await Deno.remove(join(config.features.cacheDir, "audio_features.json")).catch(() => {});
      const records: LogRecord[] = [];
      const log = new Logger({ format: "json", level: "debug", sink: (r) => records.push(r) });
      const run = await createRun(config, { date, accounts: ["sample"] });
      await runStep("fetch", { config, run, log, flags: {} });
      const outcome = await runStep("enrich", { config, run, log, flags: {} });
      assert.equal(outcome.counts?.matched, 16);
      const output = JSON.parse(
        await Deno.readTextFile(run.path("enrich", "tracks.json")),
      ) as EnrichOutput;
      outputs.push(
        output.rows.map(({ run_id: _r, fetched_at: _f, snapshot_date: _s, ...rest }) => rest),
      );
      cacheStates.push(records.find((r) => r.msg.startsWith("Read audio-features catalog"))?.cache);
    }
    assert.deepEqual(cacheStates, ["built", "hit"]);
    assert.deepEqual(outputs[1], outputs[0]);
    assert.equal(
      [...Deno.readDirSync(config.features.cacheDir)].filter((e) =>
        e.name !== "audio_features.json"
      )
        .length,
      1,
    );
  });
});

Deno.test("lookupCatalog() indexes a catalog read in two segments: line numbers and hits as csv-parse gives them", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "big.csv");
    const header =
      "track_id,artists,track_name,danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo";
    const lines = [header];
    for (let i = 0; i < 110_000; i++) {
      const id = String(i % 100_000).padStart(22, "0"); // the last 10k repeat earlier ids
      // Quoted line breaks now and then shift csv-parse's line numbers from record numbers.
      const title = i % 997 === 0 ? `"Song ${i}\nPart two"` : `Song ${i}`;
      const tempo = i % 1000 === 1 ? "0" : String(60 + (i % 120)); // some rejected
      lines.push(
        `${id},Artist ${i % 5000};Guest,${title},0.5,0.6,${
          i % 12
        },-7.5,1,0.05,0.1,0,0.12,0.4,${tempo}`,
      );
    }
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    await Deno.utime(path, LONG_AGO, LONG_AGO);
    assert.ok((await Deno.stat(path)).size > 8 << 20, "large enough to split on 4 MiB blocks");
    const ids = [0, 12_345, 99_999, 101_000].map((i) => String(i).padStart(22, "0"));
    const names: NameQuery[] = [
      { title: "song 4985", artist: "artist 4985" },
      { title: "Song 77777", artist: "Artist 2777" },
      { title: "Song 998", artist: "Artist 998" },
    ];
    const cacheDir = join(dir, "cache");
    const built = await lookupCatalog(path, { ids, names, cacheDir, segments: 2 });
    assert.equal(built.cache, "built");
    assert.equal(built.segments, 2);
    const hit = await lookupCatalog(path, { ids, names, cacheDir });
    assert.equal(hit.cache, "hit");
    const reference = await scanCatalog(path, { ids, names, reader: "csv-parse" });
    for (const found of [built, hit]) {
      assert.deepEqual(found.stats, reference.stats);
      assert.deepEqual([...found.byId].sort(), [...reference.byId].sort());
      assert.deepEqual([...found.byName].sort(), [...reference.byName].sort());
    }
    assert.ok(reference.stats.duplicate_ids > 9_000);
    assert.ok(reference.stats.rejected > 80);
    assert.ok([...reference.byName.values()].some((h) => h.name!.line > 110_000 / 2));
  });
});

Deno.test("lookupCatalog() rebuilds an index whose header is damaged (a field missing or of the wrong type) instead of trusting it", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "catalog.csv");
    await oldCopy(KAGGLE_10K, path);
    const cacheDir = join(dir, "cache");
    assert.equal((await lookupCatalog(path, { ids: IDS, cacheDir })).cache, "built");
    const index = join(cacheDir, [...Deno.readDirSync(cacheDir)][0]!.name);
    const good = await Deno.readFile(index);
    const length = new DataView(good.buffer).getUint32(8, true);
    const header = JSON.parse(new TextDecoder().decode(good.subarray(16, 16 + length)));
    for (
      const damage of [
        (h: Record<string, unknown>) => delete h.catalog,
        (h: Record<string, unknown>) => (h.ids = "x"),
        (h: Record<string, unknown>) => (h.header = [1, 2]),
      ]
    ) {
      const h = structuredClone(header);
      damage(h);
      const json = new TextEncoder().encode(JSON.stringify(h));
      const bytes = good.slice();
      new DataView(bytes.buffer).setUint32(8, json.length, true);
      bytes.fill(0x20, 16, 16 + Math.max(length, json.length));
      bytes.set(json, 16);
      await Deno.writeFile(index, bytes);
      const found = await lookupCatalog(path, { ids: IDS, cacheDir });
      assert.equal(found.cache, "built", JSON.stringify(found.cacheNote));
      assert.equal(found.byId.size, 3);
    }
  });
});
