/**
 * The privacy-export reader (`lib/import/history.ts`) on every real export file in
 * `../shared/fixtures/spotify/history`: per file the counts (streams, tracks, episodes,
 * audiobooks, unknown, duplicates) equal counts computed here straight from the JSON; the
 * addresses and user names the files carry never reach a row; bad files are one-line errors
 * naming the file (and the row and field).
 */

import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  dedupeHistory,
  detectHistoryFormat,
  HistoryFileError,
  parseHistoryFile,
} from "../lib/import/history.ts";
import { assert, assertEquals, assertStringIncludes } from "./_spotify_test_util.ts";

const HISTORY = fileURLToPath(new URL("../../shared/fixtures/spotify/history/", import.meta.url));
const FILES = [...Deno.readDirSync(HISTORY)].filter((e) => e.name.endsWith(".json"))
  .map((e) => e.name).sort();
/** What the fixtures' curator put in place of addresses and user names (README there). */
const REDACTED = ["redacted-user", "203.0.113.7", "2001:db8::7"];

type Raw = Record<string, unknown>;

/** The counts, computed from the raw JSON without the reader. */
function expected(raw: Raw[]) {
  const extended = "ts" in raw[0]!;
  const meta = extended
    ? [
      "master_metadata_track_name",
      "master_metadata_album_artist_name",
      "spotify_track_uri",
      "spotify_episode_uri",
      "episode_name",
      "episode_show_name",
      "audiobook_uri",
      "audiobook_title",
      "audiobook_chapter_uri",
      "audiobook_chapter_title",
    ]
    : ["trackName", "artistName", "episodeName", "podcastName", "audiobookName", "chapterName"];
  const set = (r: Raw, k: string) => r[k] !== null && r[k] !== undefined && r[k] !== "";
  const kind = (r: Raw) => {
    if (extended) {
      if (set(r, "spotify_track_uri")) return "track";
      if (set(r, "spotify_episode_uri")) return "episode";
      if (set(r, "audiobook_uri") || set(r, "audiobook_chapter_uri")) return "audiobook";
      if (set(r, "master_metadata_track_name")) return "track";
      if (set(r, "episode_name")) return "episode";
      return "unknown";
    }
    if (set(r, "audiobookName") || set(r, "chapterName")) return "audiobook";
    if (set(r, "episodeName") || set(r, "podcastName")) return "episode";
    if (set(r, "trackName") || set(r, "artistName")) return "track";
    return "unknown";
  };
  const keys = new Set(raw.map((r) => {
    const when = extended ? String(r.ts) : String(r.endTime);
    const what = extended
      ? (r.spotify_track_uri ?? r.spotify_episode_uri ?? r.audiobook_chapter_uri ??
        r.audiobook_uri ?? JSON.stringify(meta.map((k) => r[k] ?? "")))
      : JSON.stringify(meta.map((k) => r[k] ?? ""));
    return `${when}|${what}`;
  }));
  const count = (k: string) => raw.filter((r) => kind(r) === k).length;
  return {
    format: extended ? "extended" : "account",
    counts: {
      rows: raw.length,
      tracks: count("track"),
      episodes: count("episode"),
      audiobooks: count("audiobook"),
      unknown: raw.filter((r) => meta.every((k) => !set(r, k))).length,
    },
    duplicates: raw.length - keys.size,
  };
}

for (const name of FILES) {
  Deno.test(`import reads ${name}: counts equal the JSON's, nothing redacted is kept`, async () => {
    const text = await Deno.readTextFile(join(HISTORY, name));
    const raw = JSON.parse(text) as Raw[];
    const file = parseHistoryFile(text, { file: name, userId: "u1" });
    const want = expected(raw);
    assertEquals(file.format, want.format);
    assertEquals(file.counts, want.counts);
    const { rows, duplicates } = dedupeHistory(file.rows);
    assertEquals(duplicates, want.duplicates);
    assertEquals(rows.length, raw.length - want.duplicates);
    const out = JSON.stringify(file.rows);
    for (const s of REDACTED) assert(!out.includes(s), `${s} reached a row`);
    for (const row of file.rows) {
      assert(!Number.isNaN(Date.parse(row.ts)) && row.ts.endsWith("Z"));
      assertEquals(row.source_file, name);
      if (row.offline_timestamp !== null) {
        // seconds, milliseconds: either way a date near the stream's, never 1970 or year 50000
        const gap = Math.abs(Date.parse(row.offline_timestamp) - Date.parse(row.ts));
        assert(gap < 400 * 86_400_000, `${name}: offline_timestamp ${row.offline_timestamp}`);
      }
    }
  });
}

Deno.test("import: a repeated stream is one row, the one with the longest ms_played; real exact duplicates count", () => {
  const text = Deno.readTextFileSync(join(HISTORY, FILES.find((f) => f.includes("endsong"))!));
  const raw = JSON.parse(text) as Raw[];
  const first = raw.find((r) => r.spotify_track_uri)!;
  const variants = [
    { ...first, ms_played: 1000 },
    { ...first, ms_played: 90_000, offline_timestamp: 0 },
    { ...first, ms_played: 5000 },
  ];
  const parsed = parseHistoryFile(JSON.stringify(variants), { file: "x.json", userId: "u1" });
  const { rows, duplicates } = dedupeHistory(parsed.rows);
  assertEquals([rows.length, duplicates, rows[0]!.ms_played], [1, 2, 90_000]);
  // the same stream for two users stays two rows
  const other = parseHistoryFile(JSON.stringify([first]), { file: "y.json", userId: "u2" });
  assertEquals(dedupeHistory([...parsed.rows, ...other.rows]).rows.length, 2);
});

Deno.test("import: account data's endTime is UTC without a zone; offline_timestamp in seconds or milliseconds is one instant", () => {
  const [account] = parseHistoryFile(
    JSON.stringify([{ endTime: "2021-08-03 22:14", artistName: "A", trackName: "T", msPlayed: 1 }]),
    { file: "StreamingHistory0.json", userId: "u" },
  ).rows;
  assertEquals(account!.ts, "2021-08-03T22:14:00.000Z");
  const base = {
    ts: "2023-02-25T11:20:37Z",
    ms_played: 1,
    spotify_track_uri: "spotify:track:6potEImiklXkwD9qFzpu15",
  };
  const rows = parseHistoryFile(
    JSON.stringify([
      { ...base, offline_timestamp: 1677323975 },
      { ...base, offline_timestamp: 1677323975000 },
      { ...base, offline_timestamp: 0 },
    ]),
    { file: "Streaming_History_Audio_2023.json", userId: "u" },
  ).rows;
  assertEquals(rows.map((r) => r.offline_timestamp), [
    "2023-02-25T11:19:35.000Z",
    "2023-02-25T11:19:35.000Z",
    null,
  ]);
});

Deno.test("import: not JSON, truncated, empty, not an export, or a bad value → one line naming the file (and row, field)", () => {
  const bad = (text: string) => {
    try {
      parseHistoryFile(text, { file: "Streaming_History_Audio_2024.json", userId: "u" });
    } catch (error) {
      assert(error instanceof HistoryFileError, String(error));
      assert(!error.message.includes("\n"), error.message);
      assertStringIncludes(error.message, "Streaming_History_Audio_2024.json");
      return error.message;
    }
    throw new Error("accepted");
  };
  const real = Deno.readTextFileSync(join(HISTORY, FILES.find((f) => f.includes("Audio_2022"))!));
  assertStringIncludes(bad(real.slice(0, real.length / 2)), "not JSON");
  assertStringIncludes(bad(""), "not JSON (it is empty)");
  assertStringIncludes(
    bad('[{"name": "My playlist", "items": []}]'),
    "not a Spotify streaming history",
  );
  assertStringIncludes(bad("[]"), "not a Spotify streaming history");
  assertStringIncludes(
    bad('[{"ts": "2023-02-25T11:20:37Z", "ms_played": -5}]'),
    'row 1, "ms_played" is -5: expected a whole number of milliseconds ≥ 0',
  );
  assertStringIncludes(
    bad('[{"ts": "yesterday", "ms_played": 5}]'),
    'row 1, "ts" is "yesterday"',
  );
  assertEquals(detectHistoryFormat({ ts: 1 }), undefined);
  assertEquals(basename("a/b.json"), "b.json");
});

/** A zip of `entries` (name → bytes), written with the same library the importer reads with. */
async function writeZip(path: string, entries: Record<string, Uint8Array | string>): Promise<void> {
  const zip = await import("@zip.js/zip.js");
  zip.configure({ useWebWorkers: false });
  const writer = new zip.ZipWriter(new zip.BlobWriter("application/zip"));
  for (const [name, data] of Object.entries(entries)) {
    await writer.add(
      name,
      typeof data === "string" ? new zip.TextReader(data) : new zip.Uint8ArrayReader(data),
    );
  }
  await Deno.writeFile(path, new Uint8Array(await (await writer.close()).arrayBuffer()));
}

Deno.test("import reads an export as Spotify sends it: a zip read in place, a folder, loose files — each file once; the PDF and playlists listed as skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "import_zip_" });
  try {
    const audio = FILES.filter((f) => f.includes("efrrowini_Streaming_History_Audio"));
    const entries: Record<string, Uint8Array | string> = {
      "Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf": "%PDF-1.4 ...",
      "Spotify Extended Streaming History/Playlist1.json": '{"playlists": []}',
    };
    for (const f of audio) {
      entries[`Spotify Extended Streaming History/${f.replace(/^efrrowini_/, "")}`] = Deno
        .readFileSync(join(HISTORY, f));
    }
    const zipPath = join(dir, "my_spotify_data.zip");
    await writeZip(zipPath, entries);
    const { readExport } = await import("../lib/import/export_files.ts");
    // the zip, then its folder (the same zip again, and a loose copy of one of its files)
    await Deno.copyFile(join(HISTORY, audio[0]!), join(dir, "loose.json"));
    const got = await readExport([zipPath, dir], { userId: "u1" });
    assertEquals(got.files.map((f) => f.name.replace(dir, "<dir>")), [
      "<dir>/my_spotify_data.zip!Spotify Extended Streaming History/Streaming_History_Audio_2022.json",
      "<dir>/my_spotify_data.zip!Spotify Extended Streaming History/Streaming_History_Audio_2023.json",
      "<dir>/loose.json",
    ]);
    assertEquals(got.skipped.map((s) => [s.name.replace(dir, "<dir>"), s.reason]), [
      [
        "<dir>/my_spotify_data.zip!Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf",
        "not JSON",
      ],
      [
        "<dir>/my_spotify_data.zip!Spotify Extended Streaming History/Playlist1.json",
        "not a streaming history",
      ],
    ]);
    const raw = audio.flatMap((f) => JSON.parse(Deno.readTextFileSync(join(HISTORY, f))) as Raw[]);
    const want = expected(raw);
    // the loose copy repeats the 2022 file: all of it is duplicates
    assertEquals(got.duplicates, want.duplicates + 35);
    assertEquals(got.rows.length, raw.length - want.duplicates);
    // rows name their file without the local folders
    assert(got.rows.every((r) => !r.source_file.includes(dir)), "no local path in a row");
    assert(got.rows.some((r) => r.source_file.startsWith("my_spotify_data.zip!")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("import: a zip with junk, a cut-short history inside a zip, a missing path → one line naming it, nothing read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "import_bad_" });
  const { readExport } = await import("../lib/import/export_files.ts");
  const fails = async (paths: string[]) => {
    try {
      await readExport(paths, { userId: "u" });
    } catch (error) {
      assert(error instanceof HistoryFileError, String(error));
      assert(!error.message.includes("\n"), error.message);
      return error.message.replaceAll(dir, "<dir>");
    }
    throw new Error("accepted");
  };
  try {
    await Deno.writeFile(join(dir, "junk.zip"), new Uint8Array(4096).fill(7));
    assertStringIncludes(
      await fails([join(dir, "junk.zip")]),
      "<dir>/junk.zip: not a readable zip",
    );
    const real = Deno.readTextFileSync(join(HISTORY, FILES.find((f) => f.includes("Audio_2022"))!));
    await writeZip(join(dir, "cut.zip"), {
      "Streaming_History_Audio_2022.json": real.slice(0, real.length - 100),
    });
    assertStringIncludes(
      await fails([join(dir, "cut.zip")]),
      "<dir>/cut.zip!Streaming_History_Audio_2022.json: not JSON",
    );
    assertStringIncludes(
      await fails([join(dir, "nope")]),
      "Cannot import <dir>/nope: no such file or folder",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
