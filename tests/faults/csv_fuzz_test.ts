/**
 * Fuzzing the audio-features CSV reader (`scanCatalog`): random bytes, CSV-like noise, a valid
 * catalog with mutated rows, unbalanced quotes, other encodings (UTF-16 LE/BE, Latin-1), empty
 * and near-empty files. Properties, for every input: it ends within a time bound; it either
 * returns counts that add up (every data row accepted, rejected or a duplicate) or rejects with
 * a one-line ConfigError naming the file (never another error: no crash); both readers (the
 * byte reader and csv-parse) and a read in two segments give the same answer. The huge cases —
 * a 48 MiB field, two million columns in one row, a 6 MiB header, a 300 MiB catalog — run in
 * a child process whose peak memory (VmHWM) must stay bounded.
 *
 * The seed is printed; `FUZZ_SEED=<n> deno test -A tests/faults/csv_fuzz_test.ts` replays a run.
 */

import { join } from "node:path";
import { ConfigError } from "../../lib/errors.ts";
import { type CatalogScan, scanCatalog } from "../../lib/features/csv_catalog.ts";
import { assert, assertEquals, ROOT } from "../_spotify_test_util.ts";

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HEADER = "track_id,track_name,artists,danceability,energy,key,loudness,mode,speechiness," +
  "acousticness,instrumentalness,liveness,valence,tempo,time_signature";
const IDS = ["2IVsRhKrx8hlQBOWy4qebo", "5Odq8ohlgIbQKMZivbWkEo", "4jbmgIyjGoXjY01XxatOx6"];

function validRow(r: () => number, i: number): string {
  const id = r() < 0.2 ? IDS[i % IDS.length]! : randomId(r);
  const n = (lo: number, hi: number) => (lo + r() * (hi - lo)).toFixed(3);
  return [
    id,
    r() < 0.3 ? `"Song, ""${i}"""` : `Song ${i}`,
    r() < 0.5 ? `"['Artist ${i % 7}', 'B']"` : `Artist ${i % 7}`,
    n(0, 1),
    n(0, 1),
    String(Math.floor(r() * 12)),
    n(-30, 0),
    String(i % 2),
    n(0, 1),
    n(0, 1),
    n(0, 1),
    n(0, 1),
    n(0, 1),
    n(60, 200),
    "4",
  ].join(",");
}

function randomId(r: () => number): string {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from({ length: 22 }, () => abc[Math.floor(r() * abc.length)]).join("");
}

const NOISE = [
  ",",
  '"',
  '""',
  "\n",
  "\r\n",
  "\r",
  "a",
  "1",
  "0.5",
  ";",
  "[",
  "'",
  " ",
  "\t",
  "\uFEFF",
  "é",
  "\u0000",
  "-1e309",
  "NaN",
  "track_id",
  "tempo",
  "🎵",
  "\\",
];

/** One random input: its kind (for messages) and bytes. */
function generate(r: () => number, i: number): { kind: string; bytes: Uint8Array } {
  const enc = new TextEncoder();
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const rows = (n: number) => Array.from({ length: n }, (_, k) => validRow(r, k));
  switch (i % 8) {
    case 0: {
      const bytes = new Uint8Array(Math.floor(r() * 4096));
      for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(r() * 256);
      return { kind: "random bytes", bytes };
    }
    case 1: {
      const parts = Array.from({ length: Math.floor(r() * 400) }, () => pick(NOISE));
      return { kind: "CSV-like noise", bytes: enc.encode(parts.join("")) };
    }
    case 2: {
      const parts = Array.from({ length: Math.floor(r() * 300) }, () => pick(NOISE));
      return { kind: "header + noise", bytes: enc.encode(`${HEADER}\n${parts.join("")}`) };
    }
    case 3: {
      // a valid catalog, then mutations: characters dropped, inserted, swapped
      const text = [HEADER, ...rows(5 + Math.floor(r() * 40))].join(r() < 0.5 ? "\n" : "\r\n");
      const chars = [...text];
      for (let m = Math.floor(r() * 12); m > 0; m--) {
        const at = Math.floor(r() * chars.length);
        const op = r();
        if (op < 0.33) chars.splice(at, 1);
        else if (op < 0.66) chars.splice(at, 0, pick(NOISE));
        else chars[at] = pick(NOISE);
      }
      return { kind: "mutated catalog", bytes: enc.encode(chars.join("")) };
    }
    case 4: {
      const body = [HEADER, ...rows(10)];
      const at = 1 + Math.floor(r() * 10);
      body[at] = body[at]!.replace(",", ',"'); // an unclosed quote
      return { kind: "unbalanced quote", bytes: enc.encode(body.join("\n")) };
    }
    case 5: {
      const text = [HEADER, ...rows(10)].join("\n");
      const le = r() < 0.5;
      const bytes = new Uint8Array(2 + text.length * 2);
      bytes.set(le ? [0xff, 0xfe] : [0xfe, 0xff]);
      for (let k = 0; k < text.length; k++) {
        const c = text.charCodeAt(k);
        bytes[2 + 2 * k + (le ? 0 : 1)] = c & 0xff;
        bytes[2 + 2 * k + (le ? 1 : 0)] = c >> 8;
      }
      return { kind: `UTF-16 ${le ? "LE" : "BE"} with BOM`, bytes };
    }
    case 6: {
      // Latin-1: é as the single byte 0xE9 in names
      const text = [HEADER, ...rows(10).map((l) => l.replace("Song", "Caf\u00e9"))].join("\n");
      return { kind: "Latin-1", bytes: Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff) };
    }
    default: {
      const tiny = ["", "\uFEFF", "\n\n\n", HEADER, `${HEADER}\n`, '"', ",,,\n,,,", "\r"];
      return { kind: "near-empty", bytes: enc.encode(pick(tiny)) };
    }
  }
}

type Outcome = { ok: CatalogScan } | { error: unknown };

async function outcome(path: string, options: Parameters<typeof scanCatalog>[1]): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scanCatalog did not end within 20 s`)), 20_000);
  });
  try {
    return { ok: await Promise.race([scanCatalog(path, options), deadline]) };
  } catch (error) {
    if ((error as Error).message?.startsWith("scanCatalog did not end")) throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What must be equal between readers: the counts, the reasons and the hits. (Line numbers in
 * the rejected examples are left out: with stray carriage returns in a `\n` file — one as the
 * very last byte — the byte reader and csv-parse can name lines one apart; the rows and values
 * are the same.)
 */
function comparable(o: Outcome): unknown {
  if ("error" in o) return { error: (o.error as Error).name };
  const { stats, byId, byName } = o.ok;
  const { bytes: _b, file: _f, rejected_examples, ...counts } = stats;
  return {
    counts,
    reasons: rejected_examples.map((e) => e.replace(/^line \d+: /, "")),
    byId: [...byId].map(([k, v]) => [k, v.features]).sort(),
    byName: [...byName.keys()].sort(),
  };
}

Deno.test("scanCatalog() on random and damaged input: ends, adds up or fails with a one-line ConfigError naming the file; readers agree", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const r = prng(seed);
  const dir = await Deno.makeTempDir({ prefix: "csv_fuzz_" });
  const kinds: Record<string, { ok: number; rejected: number }> = {};
  try {
    const path = join(dir, "catalog.csv");
    for (let i = 0; i < 400; i++) {
      const { kind, bytes } = generate(r, i);
      await Deno.writeFile(path, bytes);
      const where = `seed ${seed}, input ${i} (${kind}, ${bytes.length} bytes)`;
      const query = { ids: IDS, names: [{ title: "Song 1", artist: "Artist 1" }] };
      const auto = await outcome(path, query);
      kinds[kind] ??= { ok: 0, rejected: 0 };
      if ("error" in auto) {
        kinds[kind].rejected++;
        const e = auto.error as Error;
        assert(e instanceof ConfigError, `${where}: not a ConfigError: ${e?.stack ?? e}`);
        assert(
          e.message.includes(path),
          `${where}: the error does not name the file: ${e.message}`,
        );
        assert(!e.message.includes("\n"), `${where}: the error spans lines: ${e.message}`);
        assert(e.message.length <= 2000, `${where}: a ${e.message.length}-character message`);
      } else {
        kinds[kind].ok++;
        const s = auto.ok.stats;
        assertEquals(s.rows, s.accepted + s.rejected + s.duplicate_ids, `${where}: counts`);
        for (const id of auto.ok.byId.keys()) assert(IDS.includes(id), `${where}: unasked ${id}`);
      }
      const parsed = await outcome(path, { ...query, reader: "csv-parse" });
      assertEquals(comparable(parsed), comparable(auto), `${where}: byte reader ≠ csv-parse`);
      if (i % 4 === 0) {
        const split = await outcome(path, { ...query, segments: 2 });
        assertEquals(comparable(split), comparable(auto), `${where}: 2 segments ≠ 1`);
      }
    }
    console.log(`  seed ${seed}:`, JSON.stringify(kinds));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Child script: scans a file and prints the outcome and the peak resident memory. */
const CHILD = `
import { scanCatalog } from "${ROOT}lib/features/csv_catalog.ts";
const started = performance.now();
let result;
try {
  const scan = await scanCatalog(Deno.args[0], { ids: ["2IVsRhKrx8hlQBOWy4qebo"] });
  result = { ok: true, rows: scan.stats.rows, accepted: scan.stats.accepted, rejected: scan.stats.rejected };
} catch (error) {
  result = { ok: false, name: error.name, message: error.message.slice(0, 300), length: error.message.length };
}
const hwm = /VmHWM:\\s+(\\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1];
console.log(JSON.stringify({ ...result, ms: Math.round(performance.now() - started), peak_mb: Math.round(Number(hwm) / 1024) }));
`;

/** Writes a valid catalog of about `total` bytes with distinct ids to `path`. */
async function writeRows(path: string, total: number): Promise<number> {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const enc = new TextEncoder();
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let n = 0;
    let k = 0;
    const write = async (text: string) => {
      const b = enc.encode(text);
      for (let off = 0; off < b.length;) off += await file.write(b.subarray(off));
      n += b.length;
    };
    await write(`${HEADER}\n`);
    while (n < total) {
      let chunk = "";
      for (let j = 0; j < 5000; j++, k++) {
        let id = "";
        for (let q = 0, x = k; q < 22; q++, x = Math.floor(x / 62) + q * 7) id += abc[x % 62];
        chunk += `${id},Song ${k},Artist ${k % 97},0.5,0.5,5,-7.5,1,0.05,0.2,0,0.1,0.4,120.5,4\n`;
      }
      await write(chunk);
    }
    return n;
  } finally {
    file.close();
  }
}

/** Writes `total` bytes to `path` from repeated `chunk`s (after `head`, before `tail`). */
async function writeBig(
  path: string,
  parts: { head?: string; chunk: string; total: number; tail?: string },
): Promise<number> {
  const enc = new TextEncoder();
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let n = 0;
    const w = async (b: Uint8Array) => {
      for (let off = 0; off < b.length;) off += await file.write(b.subarray(off));
      n += b.length;
    };
    if (parts.head) await w(enc.encode(parts.head));
    const block = enc.encode(
      parts.chunk.repeat(Math.max(1, Math.floor((1 << 20) / parts.chunk.length))),
    );
    while (n + block.length <= parts.total) await w(block);
    if (parts.tail) await w(enc.encode(parts.tail));
    return n;
  } finally {
    file.close();
  }
}

Deno.test({
  name:
    "scanCatalog() on huge input (48 MiB field, 2M columns in a row, 6 MiB header, 300 MiB catalog) ends with bounded memory",
  // writes ~360 MB of temp files and reads them in child processes
  ignore: Deno.build.os !== "linux",
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "csv_huge_" });
  try {
    const child = join(dir, "child.ts");
    await Deno.writeTextFile(child, CHILD);
    const run = async (file: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--v8-flags=--max-old-space-size=512",
          "--config",
          `${ROOT}deno.json`,
          child,
          file,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(180_000),
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert(
        out.success && text,
        `child failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr)}`,
      );
      return JSON.parse(text.split("\n").at(-1)!) as {
        ok: boolean;
        name?: string;
        message?: string;
        length?: number;
        rows?: number;
        peak_mb: number;
        ms: number;
      };
    };
    const row = validRow(prng(1), 1);
    const cases: {
      name: string;
      make: (p: string) => Promise<number>;
      expect: "error" | "ok" | "any";
      peakMb: number;
    }[] = [
      {
        name: "a 48 MiB quoted field (unclosed)",
        make: (p) => writeBig(p, { head: `${HEADER}\n${IDS[0]},"`, chunk: "x", total: 48 << 20 }),
        expect: "error",
        peakMb: 256,
      },
      {
        name: "a 48 MiB unquoted field",
        make: (p) =>
          writeBig(p, {
            head: `${HEADER}\n${IDS[0]},`,
            chunk: "y",
            total: 48 << 20,
            tail: `\n${row}\n`,
          }),
        expect: "error",
        peakMb: 256,
      },
      {
        // cells past the header's 15 are ignored (as csv-parse's relax_column_count does): the
        // row may be read, or rejected and counted, or the file refused; always within bounds
        name: "two million columns in one data row",
        make: (p) =>
          writeBig(p, {
            head: `${HEADER}\n${row}`,
            chunk: ",1",
            total: 4 << 20,
            tail: `\n${row}\n`,
          }),
        expect: "any",
        peakMb: 256,
      },
      {
        name: "a 6 MiB header (a million columns)",
        make: (p) =>
          writeBig(p, { head: "track_id", chunk: ",colX", total: 6 << 20, tail: `\n${row}\n` }),
        expect: "error",
        peakMb: 256,
      },
      {
        // 3.4M rows with distinct ids: memory grows with the rows (every id's fingerprint is
        // kept to find repeats), never with the file's bytes
        name: "a 300 MiB catalog (3.4M distinct rows)",
        make: (p) => writeRows(p, 300 << 20),
        expect: "ok",
        peakMb: 256,
      },
    ];
    const report: string[] = [];
    for (const c of cases) {
      const file = join(dir, "huge.csv");
      const bytes = await c.make(file);
      const r = await run(file);
      report.push(
        `  ${c.name}: ${(bytes / 2 ** 20).toFixed(0)} MiB → ${
          r.ok
            ? `${r.rows} rows`
            : `${r.name}: ${r.message?.slice(0, 120)}${(r.length ?? 0) > 120 ? "…" : ""}`
        } (${r.ms} ms, peak ${r.peak_mb} MB)`,
      );
      if (c.expect !== "any") {
        assertEquals(r.ok ? "ok" : "error", c.expect, `${c.name}: ${JSON.stringify(r)}`);
      }
      if (!r.ok) {
        assertEquals(r.name, "ConfigError", `${c.name}: ${JSON.stringify(r)}`);
        assert((r.length ?? 0) <= 2000, `${c.name}: a ${r.length}-character message`);
      }
      assert(r.peak_mb <= c.peakMb, `${c.name}: peak ${r.peak_mb} MB > ${c.peakMb} MB`);
      await Deno.remove(file);
    }
    console.log(report.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
