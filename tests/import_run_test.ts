/**
 * `deno task import` end to end (real files of ../shared/fixtures/spotify/history, real DuckDB,
 * real Parquet): every file imports and the table holds, per content type, exactly the distinct
 * streams computed here from the JSON; a re-import adds nothing; an overlapping newer export adds
 * only what is new; bad inputs are one-line errors naming the file with nothing loaded; a failed
 * import resumes with nothing lost or doubled; no redacted address or user name reaches any file,
 * log line or table.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { query } from "./_duckdb.ts";
import type { Manifest } from "../lib/run.ts";
import { expectedStreams, HISTORY, type Raw } from "./_history_expect.ts";
import { runTask, taskCommand } from "./_spotify_test_util.ts";

const FILES = [...Deno.readDirSync(HISTORY)].filter((e) => e.name.endsWith(".json"))
  .map((e) => e.name).sort();
/** What the fixtures' curator put in place of addresses and user names (README there). */
const REDACTED = ["redacted-user", "203.0.113.7", "2001:db8::7"];

interface Env {
  dir: string;
  env: Record<string, string>;
  warehouse: string;
  import(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Rows per content type in raw.streaming_history ({} before any load). */
  table(): Promise<Record<string, number>>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(extra: Record<string, string> = {}): Promise<Env> {
  const dir = await Deno.makeTempDir({ prefix: "import_run_test_" });
  const env = {
    PIPELINE_DATA_DIR: join(dir, "data"),
    FEATURES_PROVIDERS: "csv",
    SPOTIFY_SOURCE: "sample",
    ...extra,
  };
  const warehouse = join(dir, "data", "warehouse.duckdb");
  return {
    dir,
    env,
    warehouse,
    import: (...args) => runTask("import.ts", args, env, dir),
    async table() {
      try {
        await Deno.stat(warehouse);
      } catch {
        return {};
      }
      const rows = await query(
        warehouse,
        "SELECT content_type, count(*)::INTEGER AS n FROM raw.streaming_history GROUP BY 1",
      );
      return Object.fromEntries(rows.map((r) => [String(r.content_type), Number(r.n)]));
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function sorted(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a < b ? -1 : 1));
}

/** Every text any output holds: files under `dir` (Parquet read back as rows) and the table. */
async function everything(e: Env, logs: string): Promise<string> {
  const parts = [logs];
  const walk = async (path: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      const p = join(path, entry.name);
      if (entry.isDirectory) await walk(p);
      else if (entry.name.endsWith(".parquet")) {
        const rows = await query(":memory:", `SELECT * FROM read_parquet('${p}')`);
        parts.push(JSON.stringify(rows));
      } else if (!entry.name.endsWith(".duckdb") && !entry.name.endsWith(".wal")) {
        parts.push(new TextDecoder().decode(await Deno.readFile(p)));
      }
    }
  };
  await walk(e.dir);
  parts.push(JSON.stringify(await query(e.warehouse, "SELECT * FROM raw.streaming_history")));
  return parts.join("\n");
}

Deno.test("import: every history fixture loads its distinct streams; a re-import adds nothing; nothing redacted is stored or logged", async () => {
  await using e = await setup();
  const first = await e.import("--user", "listener-1", HISTORY);
  assert.equal(first.code, 0, first.stderr);
  const want = expectedStreams(FILES);
  assert.deepEqual(sorted(await e.table()), sorted(want));
  // per file, the summary's counts are the file's own
  const manifest = JSON.parse(
    await Deno.readTextFile(
      join(
        e.env.PIPELINE_DATA_DIR!,
        "runs",
        /Run (\S+) —/.exec(first.stdout)![1]!,
        "manifest.json",
      ),
    ),
  );
  const files = manifest.steps.import.summary.files as { file: string; rows: number }[];
  assert.equal(files.length, FILES.length);
  for (const f of files) {
    const raw = JSON.parse(await Deno.readTextFile(f.file)) as unknown[];
    assert.equal(f.rows, raw.length, f.file);
  }
  const counts = manifest.steps.import.counts;
  const total = Object.values(want).reduce((a, b) => a + b, 0);
  assert.equal(counts.rows, total);
  assert.equal(counts.rows_read - counts.duplicates, total);

  const again = await e.import("--user", "listener-1", HISTORY);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /Import: 0 new streams/);
  assert.deepEqual(sorted(await e.table()), sorted(want));

  const text = await everything(e, first.stdout + first.stderr + again.stdout + again.stderr);
  for (const s of REDACTED) assert.ok(!text.includes(s), `"${s}" appears in an output`);
  const users = await query(
    e.warehouse,
    "SELECT DISTINCT user_id FROM raw.streaming_history",
  );
  assert.deepEqual(users, [{ user_id: "listener-1" }]);
});

Deno.test("import: an overlapping newer export adds only what is new; each user's history stays theirs", async () => {
  await using e = await setup();
  const older = ["efrrowini_Streaming_History_Audio_2022.json"];
  const newer = [...older, "efrrowini_Streaming_History_Audio_2023.json"];
  const r1 = await e.import("--user", "efrrowini", ...older.map((f) => join(HISTORY, f)));
  assert.equal(r1.code, 0, r1.stderr);
  assert.deepEqual(await e.table(), expectedStreams(older));
  const r2 = await e.import("--user", "efrrowini", ...newer.map((f) => join(HISTORY, f)));
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(sorted(await e.table()), sorted(expectedStreams(newer)));
  const added = Object.values(expectedStreams(newer)).reduce((a, b) => a + b, 0) -
    Object.values(expectedStreams(older)).reduce((a, b) => a + b, 0);
  assert.match(r2.stdout, new RegExp(`Import: ${added} new streams`));
  // the same file for another user is that user's
  const r3 = await e.import("--user", "someone-else", ...older.map((f) => join(HISTORY, f)));
  assert.equal(r3.code, 0, r3.stderr);
  const per = await query(
    e.warehouse,
    "SELECT user_id, count(*)::INTEGER AS n FROM raw.streaming_history GROUP BY 1 ORDER BY 1",
  );
  assert.deepEqual(per, [
    { user_id: "efrrowini", n: Object.values(expectedStreams(newer)).reduce((a, b) => a + b, 0) },
    {
      user_id: "someone-else",
      n: Object.values(expectedStreams(older)).reduce((a, b) => a + b, 0),
    },
  ]);
});

Deno.test("import: truncated JSON, an empty file, a non-export JSON and a junk zip are one-line errors naming the file; nothing is loaded", async () => {
  await using e = await setup();
  const good = join(HISTORY, "erickmay_endsong_1.json");
  const text = await Deno.readTextFile(good);
  const truncated = join(e.dir, "Streaming_History_Audio_2020.json");
  await Deno.writeTextFile(truncated, text.slice(0, Math.floor(text.length / 2)));
  const empty = join(e.dir, "StreamingHistory0.json");
  await Deno.writeTextFile(empty, "");
  const other = join(e.dir, "Playlist1.json");
  await Deno.writeTextFile(other, JSON.stringify({ playlists: [{ name: "x", items: [] }] }));
  const junk = join(e.dir, "my_spotify_data.zip");
  await Deno.writeFile(junk, new TextEncoder().encode("PK\u0003\u0004 this is not a zip at all"));
  const badValue = join(e.dir, "endsong_0.json");
  const rows = JSON.parse(text) as Raw[];
  rows[7]!.ms_played = "long";
  await Deno.writeTextFile(badValue, JSON.stringify(rows));

  const cases: [string[], RegExp][] = [
    [[good, truncated], /Cannot read .*Streaming_History_Audio_2020\.json: not JSON/],
    [[empty, good], /Cannot read .*StreamingHistory0\.json: not JSON \(it is empty\)/],
    [[other], /No streaming history in .*Playlist1\.json.*1 file\(s\) skipped/],
    [[junk], /Cannot import .*my_spotify_data\.zip: not a readable zip/],
    [[good, badValue], /endsong_0\.json: row 8, "ms_played" is "long"/],
    [[join(e.dir, "nope.zip")], /Cannot import .*nope\.zip: no such file or folder/],
  ];
  for (const [paths, message] of cases) {
    const r = await e.import("--user", "u1", ...paths);
    assert.equal(r.code, 2, `${paths.join(" ")}: exit ${r.code}\n${r.stderr}`);
    const errors = (r.stdout + r.stderr).split("\n").filter((l) => l.includes('"level":"error"'));
    assert.equal(errors.length, 1, errors.join("\n"));
    const msg = JSON.parse(errors[0]!).msg as string;
    assert.match(msg, message);
    assert.ok(!msg.includes("\n"));
  }
  assert.deepEqual(await e.table(), {});
  const lake = join(e.env.PIPELINE_DATA_DIR!, "lake");
  const stored = await Array.fromAsync(Deno.readDir(lake)).catch(() => []);
  assert.deepEqual(stored, []);
});

Deno.test("import: a zip of the export is read in place; a failed upload resumes with nothing lost or doubled", async () => {
  await using e = await setup();
  const { BlobReader, BlobWriter, TextReader, ZipWriter } = await import("@zip.js/zip.js");
  const files = [
    "edges2_Streaming_History_Audio_2025_2.json",
    "edges2_Streaming_History_Video_2024.json",
  ];
  const writer = new ZipWriter(new BlobWriter("application/zip"));
  for (const f of files) {
    await writer.add(
      `Spotify Extended Streaming History/${f.replace("edges2_", "")}`,
      new TextReader(await Deno.readTextFile(join(HISTORY, f))),
    );
  }
  await writer.add(
    "Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf",
    new BlobReader(new Blob(["%PDF-1.4"])),
  );
  const zip = join(e.dir, "my_spotify_data.zip");
  await Deno.writeFile(zip, new Uint8Array(await (await writer.close()).arrayBuffer()));

  // the lake folder is a file: upload fails after the import step wrote its Parquet files
  const lake = join(e.dir, "lake-is-a-file");
  await Deno.writeTextFile(lake, "");
  const failed = await runTask("import.ts", ["--user", "edges2", zip], {
    ...e.env,
    PIPELINE_LAKE_DIR: lake,
  }, e.dir);
  assert.equal(failed.code, 4, failed.stderr);
  assert.deepEqual(await e.table(), {});

  await Deno.remove(lake);
  const resumed = await runTask(
    "import.ts",
    ["--resume"],
    { ...e.env, PIPELINE_LAKE_DIR: lake },
    e.dir,
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stdout + resumed.stderr,
    /import: already finished in this run, outputs verified, skipped/,
  );
  assert.deepEqual(sorted(await e.table()), sorted(expectedStreams(files)));
  const sources = await query(
    e.warehouse,
    "SELECT DISTINCT export_file FROM raw.streaming_history ORDER BY 1",
  );
  assert.deepEqual(sources.map((r) => r.export_file), [
    "my_spotify_data.zip!Spotify Extended Streaming History/Streaming_History_Audio_2025_2.json",
    "my_spotify_data.zip!Spotify Extended Streaming History/Streaming_History_Video_2024.json",
  ]);
  const again = await runTask("import.ts", ["--resume"], e.env, e.dir);
  assert.equal(again.code, 2);
  assert.match(again.stderr + again.stdout, /No unfinished import run/);
});

Deno.test("plays: a play the polls and the export both saw is one play (real rows, constructed overlap); the export adds ms_played, is_counted_stream and source", async () => {
  await using e = await setup();
  // the sample's 30 recently-played plays (real recorded responses and sample tracks) ...
  const pipeline = await runTask("pipeline.ts", [], e.env, e.dir);
  assert.equal(pipeline.code, 0, pipeline.stderr);
  const page = JSON.parse(
    await Deno.readTextFile(new URL("../data/sample_recently_played.json", import.meta.url)),
  ) as {
    items: {
      played_at: string;
      track: {
        uri: string;
        name: string;
        duration_ms: number;
        artists: { name: string }[];
        album: { name: string };
      };
    }[];
  };
  // ... as a real user's extended-history rows would record them: each real row of
  // efrrowini's 2022 file lends its fields to one play, with the play's track and end (`ts` is
  // to the second: Spotify's played_at floored), and the real rows stay as they are
  const real = JSON.parse(
    await Deno.readTextFile(join(HISTORY, "efrrowini_Streaming_History_Audio_2022.json")),
  ) as Raw[];
  const overlap = page.items.map((item, i) => ({
    ...real[i % real.length]!,
    ts: new Date(Math.floor(Date.parse(item.played_at) / 1000) * 1000).toISOString()
      .replace(".000Z", "Z"),
    ms_played: item.track.duration_ms,
    spotify_track_uri: item.track.uri,
    master_metadata_track_name: item.track.name,
    master_metadata_album_artist_name: item.track.artists[0]!.name,
    master_metadata_album_album_name: item.track.album.name,
  }));
  const file = join(e.dir, "Streaming_History_Audio_2016-2026.json");
  await Deno.writeTextFile(file, JSON.stringify([...overlap, ...real]));
  const imported = await e.import(file);
  assert.equal(imported.code, 0, imported.stderr);
  const transform = await runTask("transform.ts", [], e.env, e.dir);
  assert.equal(transform.code, 0, transform.stdout + transform.stderr);

  const exportOnly = Object.values(expectedStreams(["efrrowini_Streaming_History_Audio_2022.json"]))
    .reduce((a, b) => a + b, 0);
  const bySource = await query(
    e.warehouse,
    "SELECT source, count(*)::INTEGER AS n, count(ms_played)::INTEGER AS with_ms FROM main.plays WHERE user_id = 'sample' GROUP BY 1 ORDER BY 1",
  );
  assert.deepEqual(bySource, [
    { source: "both", n: page.items.length, with_ms: page.items.length },
    { source: "export", n: exportOnly, with_ms: exportOnly },
  ]);
  const counted = await query(
    e.warehouse,
    "SELECT count(*)::INTEGER AS n FROM main.plays WHERE is_counted_stream",
  );
  const want = overlap.filter((r) => (r.ms_played as number) >= 30_000).length +
    [...new Map(real.map((r) => [`${r.ts}|${r.spotify_track_uri}`, r])).values()]
      .filter((r) => (r.ms_played as number) >= 30_000).length;
  assert.deepEqual(counted, [{ n: want }]);
  // the pair keeps the API's played_at (milliseconds), and every API play is still there once
  const api = await query(
    e.warehouse,
    "SELECT count(*)::INTEGER AS n FROM main.plays WHERE source = 'both' AND played_at IN (SELECT played_at FROM raw.recently_played)",
  );
  assert.deepEqual(api, [{ n: page.items.length }]);
});

Deno.test("import: SIGKILL during the import step, then during upload/load: --resume finishes with every stream once", async () => {
  await using e = await setup();
  const runs = join(e.env.PIPELINE_DATA_DIR!, "runs");
  /** Starts an import and SIGKILLs it once `when` holds for its run folder; true if it did. */
  const killWhen = async (
    args: string[],
    when: (manifest: Manifest, dir: string) => Promise<boolean>,
  ): Promise<boolean> => {
    const child = taskCommand("import.ts", args, e.env, e.dir).spawn();
    let killed = false;
    let done = false;
    // read its output as it comes (a full pipe would stop it)
    const output = child.output().finally(() => (done = true));
    while (!done) {
      const ids = await Array.fromAsync(Deno.readDir(runs)).catch(() => []);
      for (const id of ids) {
        const dir = join(runs, id.name);
        const manifest = await Deno.readTextFile(join(dir, "manifest.json")).then(JSON.parse)
          .catch(() => undefined);
        if (manifest && await when(manifest, dir)) {
          try {
            child.kill("SIGKILL");
            killed = true;
          } catch { /* exited meanwhile */ }
        }
      }
      if (killed) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    const s = await output;
    return killed && s.signal === "SIGKILL";
  };
  const want = sorted(expectedStreams(FILES));

  const inImport = await killWhen(
    ["--user", "u1", HISTORY],
    async (m, dir) =>
      m.steps?.import?.status === "running" &&
      await Deno.stat(join(dir, "import", ".spill")).then(() => true, () => false),
  );
  assert.ok(inImport, "killed during the import step");
  assert.deepEqual(await e.table(), {});
  const resumed = await e.import("--resume");
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(sorted(await e.table()), want);

  // a second user's import, killed once its Parquet files are written (upload or load running)
  const late = await killWhen(["--user", "u2", HISTORY], (m) =>
    Promise.resolve(
      m.import?.user_id === "u2" && m.steps?.import?.status === "succeeded" &&
        (m.steps?.upload?.status === "running" || m.steps?.load?.status === "running"),
    ));
  const again = await e.import("--resume");
  if (late) assert.equal(again.code, 0, again.stderr);
  const per = await query(
    e.warehouse,
    "SELECT user_id, content_type, count(*)::INTEGER AS n FROM raw.streaming_history GROUP BY ALL ORDER BY ALL",
  );
  for (const user of ["u1", "u2"]) {
    assert.deepEqual(
      sorted(
        Object.fromEntries(
          per.filter((r) => r.user_id === user).map((r) => [String(r.content_type), Number(r.n)]),
        ),
      ),
      want,
      user,
    );
  }
});
