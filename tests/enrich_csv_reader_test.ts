/**
 * The byte-level catalog reader gives exactly what the csv-parse reader gives: same counts,
 * same rejected-row examples (with csv-parse's line numbers), same hits by id and by name — on
 * every real fixture CSV and on seeded random CSVs full of what real files contain (quoting,
 * CRLF, byte-order marks, blank lines, quoted line breaks, short rows, odd numbers, Unicode
 * artists, repeated ids), read in one segment and in two (the second in a worker). Plus the
 * building blocks it relies on: number reading, artist-key hashing from bytes, repeat marking.
 */

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { EMPTY, foldHashBytes, keyHash, parseNumber } from "../lib/features/_csv_records.ts";
import { fingerprint, FingerprintSet, markRepeats } from "../lib/features/_id_set.ts";
import { type CatalogScan, type NameQuery, scanCatalog } from "../lib/features/csv_catalog.ts";
import { foldText } from "../lib/features/normalize.ts";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/audio_features/", import.meta.url));

/** A small seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Everything a scan answers, in a comparable form. */
function summary(scan: CatalogScan) {
  return {
    stats: scan.stats,
    byId: [...scan.byId].sort(([a], [b]) => a < b ? -1 : 1),
    byName: [...scan.byName].sort(([a], [b]) => a < b ? -1 : 1),
  };
}

/** Scans `path` with csv-parse, then with the byte reader in one and two segments: all equal. */
async function assertReadersAgree(
  path: string,
  query: { ids: string[]; names: NameQuery[] },
  label: string,
  twoSegments = true,
): Promise<CatalogScan | undefined> {
  const outcome = (p: Promise<CatalogScan>) =>
    p.then((scan) => ({ scan }), (error: Error) => ({ error: `${error.name}: ${error.message}` }));
  const reference = await outcome(scanCatalog(path, { ...query, reader: "csv-parse" }));
  const variants: (1 | 2)[] = twoSegments ? [1, 2] : [1];
  for (const segments of variants) {
    const got = await outcome(scanCatalog(path, { ...query, segments }));
    if ("error" in reference) {
      assert.deepEqual(got, reference, `${label} (${segments} segment(s)): same error`);
      continue;
    }
    assert.ok("scan" in got, `${label} (${segments}): ${"error" in got ? got.error : ""}`);
    assert.deepEqual(
      summary(got.scan),
      summary(reference.scan),
      `${label} (${segments} segment(s), reader ${got.scan.reader})`,
    );
  }
  return "scan" in reference ? reference.scan : undefined;
}

Deno.test("byte reader and csv-parse agree on every fixture catalog: counts, lines, hits by id and name", async () => {
  for (const entry of Deno.readDirSync(FIXTURES)) {
    if (!entry.name.endsWith(".csv")) continue;
    const path = join(FIXTURES, entry.name);
    const records = parse(await Deno.readTextFile(path), {
      bom: true,
      relax_column_count: true,
    }) as string[][];
    const header = records[0]!.map((h) => h.trim().toLowerCase());
    const col = (names: string[]) => header.findIndex((h) => names.includes(h));
    const idCol = col(["track_id", "track id", "id"]);
    const titleCol = col(["track_name", "track name", "name"]);
    const artistCol = col(["artists", "artists names", "track_artist"]);
    const r = rng(entry.name.length);
    const ids: string[] = [];
    const names: NameQuery[] = [];
    for (let i = 1; i < records.length; i++) {
      const row = records[i]!;
      const share = Math.max(0.02, 8 / records.length);
      if (r() < share * 2) ids.push(row[idCol]!);
      if (r() < share) {
        const artist = row[artistCol]!.replace(/^\[['"]?|['"]?\]$/g, "").split(/[;,]|', '/)[0]!;
        names.push({ title: row[titleCol]!.toUpperCase(), artist });
      }
    }
    const scan = await assertReadersAgree(path, { ids, names }, entry.name);
    assert.ok(scan && scan.byId.size > 0, `${entry.name}: some ids found`);
    assert.ok(scan && scan.byName.size > 0, `${entry.name}: some names found`);
  }
});

const HEADERS = {
  id: ["track_id", "id", "uri", "Track ID"],
  title: ["track_name", "name", "Track Name"],
  artists: ["artists", "artist_name", "track_artist", "artists names"],
};
const FEATURES = [
  "danceability",
  "energy",
  "key",
  "loudness",
  "mode",
  "speechiness",
  "acousticness",
  "instrumentalness",
  "liveness",
  "valence",
  "tempo",
  "time_signature",
];
const NAMES = [
  "Ed Sheeran",
  "Beyoncé",
  "Öwnboss",
  "Tyler, The Creator",
  "ΣΩΚΡΑΤΗΣ",
  "Straße Band",
  "İstanbul Trio",
  "방탄소년단",
  "AC/DC",
  "Simon & Garfunkel",
  "ﬁne Band",
  "Ĳssel",
  "Cafe\u0301 Society",
  "Nat King Cole",
  "  Spaced  ",
];
const TITLES = [
  "Song",
  "Song - Remastered 2011",
  "Song (feat. Someone)",
  "Hello, Goodbye",
  'Say "Hi"',
  "Two\nLines",
  "Crlf\r\nInside",
  "Café",
  "Let It Be - Live",
  "ΣΟΦΙΑ",
  "",
];
const NUMBERS = [
  "0.5",
  "0.123",
  " 0.5 ",
  "+.5",
  "1.",
  ".25",
  "1e-5",
  "1.01E-06",
  "4.61e-05",
  "",
  "  ",
  "NaN",
  "Infinity",
  "-Infinity",
  "0x1",
  "FALSE",
  '"0.25"',
  "-0",
  "-0.0",
  "5.0",
  "0.10000000000000000001",
  "123456789012345678",
  "١",
  "1_0",
  "\u00a00.5",
  "2",
  "-1",
  "11",
  "12",
  "120.5",
  "0",
  "1",
  // Written unquoted: a carriage return inside a field of a "\n" file is data (csv-parse).
  "RAW:0.5\r7",
  "RAW:0.25\r",
  "RAW:0.5\r\r",
];

function csvCell(value: string, r: () => number): string {
  return /[",\r\n]/.test(value) || r() < 0.05 ? `"${value.replaceAll('"', '""')}"` : value;
}

/** A random catalog CSV and a query for it (seeded). */
function fuzzCatalog(seed: number): { text: string; ids: string[]; names: NameQuery[] } {
  const r = rng(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(r() * items.length)]!;
  const idPool = Array.from(
    { length: 30 },
    (_, i) => `${String(i).padStart(2, "0")}${"x".repeat(20)}`,
  );
  const columns = [
    ...(r() < 0.3 ? [""] : []),
    pick(HEADERS.id),
    pick(HEADERS.title),
    pick(HEADERS.artists),
    ...FEATURES.filter((f) => f !== "time_signature" || r() < 0.8),
    ...(r() < 0.5 ? ["track_genre"] : []),
  ];
  for (let i = columns.length - 1; i > 0 && r() < 0.3; i--) {
    const j = Math.floor(r() * (i + 1));
    [columns[i], columns[j]] = [columns[j]!, columns[i]!];
  }
  const eol = r() < 0.3 ? "\r\n" : "\n";
  const lines: string[] = [columns.map((c) => csvCell(c, r)).join(",")];
  const ids: string[] = [];
  const names: NameQuery[] = [];
  const rows = 20 + Math.floor(r() * 120);
  for (let n = 0; n < rows; n++) {
    if (r() < 0.03) {
      lines.push("");
      continue;
    }
    const id = pick(idPool);
    const artists = r() < 0.2
      ? `['${pick(NAMES)}', "${pick(NAMES)}"]`
      : r() < 0.5
      ? `${pick(NAMES)};${pick(NAMES)}`
      : pick(NAMES);
    const title = pick(TITLES);
    const cells = columns.map((c) => {
      const key = c.toLowerCase();
      if (HEADERS.id.map((h) => h.toLowerCase()).includes(key)) {
        const roll = r();
        return roll < 0.1 ? `spotify:track:${id}` : roll < 0.15 ? "" : roll < 0.2 ? "junk" : id;
      }
      if (HEADERS.title.map((h) => h.toLowerCase()).includes(key)) return title;
      if (HEADERS.artists.map((h) => h.toLowerCase()).includes(key)) return artists;
      if (FEATURES.includes(key)) {
        if (r() < 0.85) {
          return key === "key"
            ? String(Math.floor(r() * 12))
            : key === "mode"
            ? String(r() < 0.5 ? 0 : 1)
            : key === "tempo"
            ? (60 + r() * 100).toFixed(3)
            : key === "loudness"
            ? (-30 * r()).toFixed(3)
            : key === "time_signature"
            ? "4"
            : r().toFixed(Math.floor(r() * 5));
        }
        return pick(NUMBERS);
      }
      return c === "" ? String(n) : "x";
    });
    let line = cells.map((c) =>
      c.startsWith("RAW:")
        ? c.slice(4)
        : c.startsWith('"') && c.endsWith('"') && c.length > 1
        ? c
        : csvCell(c, r)
    ).join(",");
    if (r() < 0.03 && !line.includes('"')) line = line.split(",").slice(0, 3).join(","); // short
    lines.push(line);
    if (r() < 0.3) ids.push(r() < 0.8 ? id : `spotify:track:${id}`.slice(14));
    if (r() < 0.2) {
      const first = artists.startsWith("[") ? artists.slice(2).split(/['"]/)[0]! : artists;
      names.push({
        title: r() < 0.5 ? title.toUpperCase() : `${title} - Remastered 2009`,
        artist: first.split(/[;,]/)[0]!,
      });
    }
  }
  let text = lines.join(eol) + (r() < 0.7 ? eol : "");
  if (r() < 0.2) text = "\uFEFF" + text;
  // Now and then, what the byte reader hands to csv-parse (and csv-parse may reject).
  const odd = r();
  if (odd < 0.04) text = text.replace(/\n/, "\r"); // a lone carriage return
  else if (odd < 0.07) text += '"unclosed,0.5';
  else if (odd < 0.1) text = text.replace(/,x,/, ',"x"y,'); // text after a closing quote
  else if (odd < 0.13) text = text.replace(/,x,/, ',x"y,'); // a quote inside a field: data
  return { text, ids, names };
}

Deno.test("byte reader and csv-parse agree on 150 seeded random catalogs (quoting, CRLF, BOM, blank lines, odd numbers, Unicode)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "enrich_reader_" });
  try {
    for (let seed = 1; seed <= 150; seed++) {
      const { text, ids, names } = fuzzCatalog(seed);
      const path = join(dir, `fuzz_${seed}.csv`);
      await Deno.writeTextFile(path, text);
      // Two segments (a worker each time) on every fifth file keeps the test quick.
      await assertReadersAgree(path, { ids, names }, `seed ${seed}`, seed % 5 === 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseNumber() reads bytes exactly as Number(text.trim()) does, or defers to it", () => {
  const encoder = new TextEncoder();
  const r = rng(7);
  const samples = [...NUMBERS, "0.1", "0.7", "9007199254740993", "1e22", "1e23", "-0.000185"];
  for (let i = 0; i < 20_000; i++) {
    const digits = Math.floor(r() * 17) + 1;
    let s = "";
    for (let k = 0; k < digits; k++) s += Math.floor(r() * 10);
    const dot = Math.floor(r() * (digits + 1));
    s = `${r() < 0.3 ? "-" : ""}${s.slice(0, dot)}.${s.slice(dot)}`;
    if (r() < 0.2) s += `e${r() < 0.5 ? "-" : ""}${Math.floor(r() * 30)}`;
    samples.push(s);
  }
  for (const text of samples) {
    const bytes = encoder.encode(text);
    const got = parseNumber(bytes, 0, bytes.length);
    const want = text.trim() === "" ? EMPTY : Number(text.trim());
    if (Number.isNaN(got)) continue; // deferred to Number()
    assert.ok(Object.is(got, want), `${JSON.stringify(text)}: ${got} vs ${want}`);
  }
});

Deno.test("foldHashBytes() of UTF-8 bytes equals keyHash(foldText()) of the text", () => {
  const encoder = new TextEncoder();
  const pieces = [
    ...NAMES,
    "é",
    "e\u0301",
    "Σ",
    "σ",
    "ς",
    "ß",
    "ẞ",
    "İ",
    "ı",
    "ﬃ",
    "½",
    "😀",
    "Ø",
    "Æ",
    "Þ",
    "&",
    "'",
    "’",
    "-",
    " ",
    "\t",
    "A",
    "z",
    "9",
    "Ω",
    "Ж",
    "中",
    "한",
    "ｆｕｌｌ",
  ];
  const r = rng(11);
  for (let i = 0; i < 5_000; i++) {
    let text = "";
    const n = 1 + Math.floor(r() * 6);
    for (let k = 0; k < n; k++) text += pieces[Math.floor(r() * pieces.length)];
    const bytes = encoder.encode(text);
    const got = foldHashBytes(bytes, 0, bytes.length);
    if (got === -1) {
      assert.ok(text.includes("Σ"), `${JSON.stringify(text)}: only capital sigma defers`);
      continue;
    }
    const key = foldText(text);
    assert.equal(got, key ? keyHash(key) : 0, JSON.stringify(text));
  }
  // Invalid UTF-8 defers to the text path.
  assert.equal(foldHashBytes(new Uint8Array([0x41, 0xc3]), 0, 2), -1);
});

Deno.test("markRepeats() marks the same rows as adding them in order to a FingerprintSet", () => {
  const r = rng(3);
  const n = 50_000;
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  const set = new FingerprintSet();
  const expected: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = `id${Math.floor(r() * 30_000)}`;
    [hi[i], lo[i]] = fingerprint(id);
    expected.push(set.add(id) ? 0 : 1);
  }
  assert.deepEqual([...markRepeats(hi, lo, n)], expected);
  assert.deepEqual([...markRepeats(hi, lo, 0)], []);
});

Deno.test("a second segment that starts inside a quoted line break is dropped: the first segment reads on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "enrich_reader_" });
  try {
    const header = "track_id,track_name,artists," + FEATURES.join(",");
    const values = "0.5,0.5,1,-5,1,0.05,0.1,0,0.1,0.5,120,4";
    const row = (i: number, title: string) =>
      `${String(i).padStart(22, "0")},${title},Artist ${i},${values}`;
    const before = Array.from({ length: 40 }, (_, i) => row(i, `Song ${i}`));
    const after = Array.from({ length: 40 }, (_, i) => row(100 + i, `Song ${100 + i}`));
    // One long quoted title full of line breaks spans the middle of the file.
    const long = `"${Array.from({ length: 400 }, (_, i) => `line ${i}`).join("\n")}"`;
    const text = [header, ...before, row(50, long), ...after].join("\n") + "\n";
    const middle = Math.floor(new TextEncoder().encode(text).length / 2);
    assert.ok(text.indexOf(long) < middle && middle < text.indexOf(long) + long.length);
    const path = join(dir, "quoted_middle.csv");
    await Deno.writeTextFile(path, text);
    const ids = [String(50).padStart(22, "0"), String(139).padStart(22, "0")];
    const names = [{ title: "song 120", artist: "artist 120" }];
    const scan = await scanCatalog(path, { ids, names, segments: 2 });
    assert.equal(scan.segments, 1, "the first segment read the whole file");
    assert.equal(scan.stats.rows, 81);
    assert.equal(scan.byId.size, 2);
    await assertReadersAgree(path, { ids, names }, "quoted middle");
    // Split between records instead: two segments, same answer.
    const plain = join(dir, "plain.csv");
    await Deno.writeTextFile(plain, [header, ...before, ...after].join("\n") + "\n");
    assert.equal((await scanCatalog(plain, { ids, names, segments: 2 })).segments, 2);
    await assertReadersAgree(plain, { ids, names }, "plain split");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aborting a two-segment read ends it with the abort reason (the worker's half never hangs it)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "enrich_reader_" });
  try {
    const header = "track_id,track_name,artists," + FEATURES.join(",");
    const values = "0.5,0.5,1,-5,1,0.05,0.1,0,0.1,0.5,120,4";
    const rows = Array.from(
      { length: 2000 },
      (_, i) => `${String(i).padStart(22, "0")},Song ${i},Artist ${i},${values}`,
    );
    const path = join(dir, "catalog.csv");
    await Deno.writeTextFile(path, [header, ...rows].join("\n") + "\n");
    const ids = [String(1999).padStart(22, "0")];
    for (const when of ["after the worker started", "before the read"] as const) {
      const controller = new AbortController();
      const signal = controller.signal;
      if (when === "before the read") controller.abort(new Error("stop: " + when));
      else {
        // abort right after the worker is started (the reader listens for it then), while the
        // first segment is still being read on this thread
        const listen = signal.addEventListener.bind(signal);
        signal.addEventListener = ((...args: Parameters<typeof listen>) => {
          listen(...args);
          if (args[0] === "abort") {
            queueMicrotask(() => controller.abort(new Error("stop: " + when)));
          }
        }) as typeof signal.addEventListener;
      }
      let guard: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        scanCatalog(path, { ids, segments: 2, signal }).then(() => "finished", (e: Error) => e),
        new Promise((resolve) =>
          guard = setTimeout(() => resolve("still waiting after 30 s"), 30_000)
        ),
      ]);
      clearTimeout(guard);
      assert.ok(outcome instanceof Error, `${when}: ${outcome}`);
      assert.equal(outcome.message, "stop: " + when);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
