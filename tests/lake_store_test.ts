/**
 * The lake folder store (`local` profile's object store) and the upload step: atomic puts, an
 * identical put is a no-op returning the stored receipt, head/list/get, bad keys rejected, a
 * folder that cannot be written gives a StorageError naming it.
 */

import type { UploadOutput, WriteOutput } from "../lib/streams/handoff.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../lib/config.ts";
import { IntegrityError, StorageError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/sha256.ts";
import { Logger } from "../lib/log.ts";
import { createRun } from "../lib/run.ts";
import { runStep } from "../lib/steps.ts";
import { FolderStore, META_SUFFIX, validateKey } from "../lib/store/folder.ts";
import type { PutReceipt } from "../lib/store/object_store.ts";
import { openObjectStore } from "../lib/store/open.ts";
import { sampleEnrichOutput } from "./_enriched_rows.ts";

const KEY = "top_tracks/user_id=sample/snapshot_date=2026-01-31/top_tracks.parquet";
const quiet = () => new Logger({ level: "error", sink: () => {} });
const bytes = (s: string) => new TextEncoder().encode(s);

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "lake_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file under `dir`, relative, sorted (hidden temp files included). */
async function filesUnder(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, rel))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await filesUnder(dir, r));
    else out.push(r);
  }
  return out.sort();
}

Deno.test("FolderStore.put() stores the bytes under the key with a sidecar and no temp file left", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(join(dir, "lake"));
    const data = bytes("parquet bytes v1");
    const receipt = await store.put(KEY, data, { contentSha256: "c1" });
    assert.deepEqual(receipt, {
      uri: `file://${join(dir, "lake", KEY)}`,
      key: KEY,
      bytes: data.length,
      sha256: await sha256Hex(data),
      contentSha256: "c1",
      skipped: false,
    });
    assert.equal(fileURLToPath(receipt.uri), join(dir, "lake", KEY));
    assert.deepEqual(await Deno.readFile(join(dir, "lake", KEY)), data);
    assert.deepEqual(await filesUnder(join(dir, "lake")), [KEY, KEY + META_SUFFIX]);
    const sidecar = JSON.parse(await Deno.readTextFile(join(dir, "lake", KEY + META_SUFFIX)));
    assert.equal(sidecar.sha256, receipt.sha256);
    assert.equal(sidecar.content_sha256, "c1");
    assert.equal(sidecar.bytes, data.length);
  });
});

Deno.test("FolderStore.put() of an identical object writes nothing and returns the stored receipt", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(dir);
    const first = await store.put(KEY, bytes("run 1 bytes"), { contentSha256: "same-data" });
    const before = await Deno.stat(join(dir, KEY));

    // same content fingerprint, different bytes (another run of the same day): skipped
    const second = await store.put(KEY, bytes("run 2 bytes, other run_id"), {
      contentSha256: "same-data",
    });
    assert.deepEqual(second, { ...first, skipped: true });
    assert.deepEqual(await store.get(KEY), bytes("run 1 bytes"));
    assert.equal((await Deno.stat(join(dir, KEY))).mtime?.getTime(), before.mtime?.getTime());

    // same bytes, no fingerprint given: skipped too
    const third = await store.put(KEY, bytes("run 1 bytes"));
    assert.equal(third.skipped, true);
    assert.equal(third.sha256, first.sha256);

    // changed data: written
    const fourth = await store.put(KEY, bytes("new data"), { contentSha256: "other-data" });
    assert.equal(fourth.skipped, false);
    assert.deepEqual(await store.get(KEY), bytes("new data"));
    assert.equal((await store.head(KEY))?.contentSha256, "other-data");
  });
});

Deno.test("FolderStore.head() and list() describe stored objects; a stale sidecar is not trusted", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(dir);
    assert.equal(await store.head(KEY), undefined);
    assert.deepEqual(await store.list("top_tracks/"), []);
    const keys = [
      "top_tracks/user_id=sample/snapshot_date=2026-01-30/top_tracks.parquet",
      KEY,
      "other/x.bin",
    ];
    for (const [i, k] of keys.entries()) {
      await store.put(k, bytes(`object ${i}`), { contentSha256: `c${i}` });
    }

    const head = await store.head(KEY);
    assert.equal(head?.key, KEY);
    assert.equal(head?.bytes, 8);
    assert.equal(head?.sha256, await sha256Hex(bytes("object 1")));
    assert.equal(head?.contentSha256, "c1");
    assert.ok(head?.lastModified instanceof Date);

    const listed = await store.list("top_tracks/");
    assert.deepEqual(listed.map((o) => o.key), [keys[0], KEY]);
    assert.deepEqual(
      (await store.list("top_tracks/user_id=sample/snapshot_date=2026-01-3")).length,
      2,
    );
    assert.deepEqual(
      (await store.list("top_tracks/user_id=sample/snapshot_date=2026-01-31/")).map((o) => o.key),
      [KEY],
    );
    assert.deepEqual((await store.list("")).map((o) => o.key), ["other/x.bin", keys[0], KEY]);

    // the file replaced behind the store's back: its sha256 is computed, the old fingerprint dropped
    await Deno.writeFile(join(dir, KEY), bytes("edited by hand, longer"));
    const stale = await store.head(KEY);
    assert.equal(stale?.sha256, await sha256Hex(bytes("edited by hand, longer")));
    assert.equal(stale?.contentSha256, undefined);
    const again = await store.put(KEY, bytes("object 1"), { contentSha256: "c1" });
    assert.equal(again.skipped, false, "not skipped on the strength of a stale sidecar");
  });
});

Deno.test("FolderStore.put() checks a given sha256 against the bytes, like S3's checksum", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(dir);
    await assert.rejects(
      () => store.put(KEY, bytes("abc"), { sha256: "0".repeat(64) }),
      (e: Error) => e instanceof StorageError && e.message.includes("sha256"),
    );
    assert.equal(await store.head(KEY), undefined);
    const ok = await store.put(KEY, bytes("abc"), { sha256: await sha256Hex(bytes("abc")) });
    assert.equal(ok.skipped, false);
  });
});

Deno.test("FolderStore.get() returns the bytes; a missing key is a StorageError naming it", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(dir);
    await store.put(KEY, bytes("abc"));
    assert.deepEqual(await store.get(KEY), bytes("abc"));
    await assert.rejects(
      () => store.get("top_tracks/nope.parquet"),
      (e: Error) => e instanceof StorageError && e.message.includes('"top_tracks/nope.parquet"'),
    );
  });
});

Deno.test("bad keys are rejected before touching the disk", async () => {
  await withTempDir(async (dir) => {
    const store = new FolderStore(join(dir, "lake"));
    const bad = [
      "",
      "/etc/passwd",
      "../outside.parquet",
      "top_tracks/../../outside.parquet",
      "top_tracks//x.parquet",
      "top_tracks/./x.parquet",
      "top_tracks\\x.parquet",
      "top_tracks/.hidden",
      "top_tracks/x.parquet.meta.json",
      "top_tracks/with space.parquet",
      "C:/x.parquet",
    ];
    for (const key of bad) {
      assert.throws(() => validateKey(key), StorageError, key);
      await assert.rejects(() => store.put(key, bytes("x")), StorageError, key);
      await assert.rejects(() => store.head(key), StorageError, key);
      await assert.rejects(() => store.get(key), StorageError, key);
    }
    await assert.rejects(() => store.list("../"), StorageError);
    assert.equal(validateKey(KEY), KEY);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing was created");
  });
});

Deno.test("a lake folder that cannot be written gives a StorageError naming the folder", async () => {
  await withTempDir(async (dir) => {
    // A regular file where the folder should be: fails for root too (chmod would not).
    const blocker = join(dir, "not-a-folder");
    await Deno.writeTextFile(blocker, "");
    const lake = join(blocker, "lake");
    const store = new FolderStore(lake);
    await assert.rejects(
      () => store.put(KEY, bytes("x")),
      (e: Error) =>
        e instanceof StorageError && e.message.includes(lake) &&
        e.message.includes(`Cannot write "${KEY}"`) && e.kind === "storage",
    );
  });
});

Deno.test("openObjectStore() gives the lake folder in the local profile", async () => {
  await withTempDir(async (dir) => {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, PIPELINE_STREAMS: "top_tracks" },
      envFile: false,
    });
    const store = await openObjectStore(config, { log: quiet() });
    assert.equal(store.kind, "folder");
    assert.ok(store instanceof FolderStore);
    assert.equal(store.dir, join(dir, "lake"));
    await store.close();
    const custom = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, PIPELINE_LAKE_DIR: join(dir, "elsewhere") },
      envFile: false,
    });
    const other = await openObjectStore(custom, { log: quiet() });
    assert.equal((other as FolderStore).dir, join(dir, "elsewhere"));
  });
});

Deno.test("upload step puts the written file and records the receipt; a second run's same data is skipped", async () => {
  await withTempDir(async (dir) => {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, PIPELINE_STREAMS: "top_tracks" },
      envFile: false,
    });
    const log = quiet();
    const upload = async (runId: string, fetchedAt: string) => {
      const run = await createRun(config, { date: "2026-01-31" });
      await run.writeJson(
        "enrich",
        "tracks.json",
        sampleEnrichOutput({ runId: run.id, fetchedAt }),
      );
      await runStep("write", { config, run, log, flags: {} });
      const outcome = await runStep("upload", { config, run, log, flags: {} });
      const uploaded = (await run.readJson("upload", "receipt.json")) as UploadOutput;
      assert.equal(uploaded.files.length, 1);
      const receipt: PutReceipt = uploaded.files[0]!;
      assert.equal(uploaded.files[0]!.stream, "top_tracks");
      return { run, outcome, receipt, runId };
    };
    const first = await upload("a", "2026-01-31T06:00:00Z");
    assert.equal(first.receipt.key, KEY);
    assert.equal(first.receipt.skipped, false);
    assert.equal(first.receipt.uri, `file://${join(dir, "lake", KEY)}`);
    const written = ((await first.run.readJson("write", "write.json")) as WriteOutput).files[0]!;
    assert.equal(first.receipt.sha256, written.sha256);
    assert.equal(first.receipt.contentSha256, written.content_sha256);
    assert.deepEqual(first.outcome.counts, {
      files_uploaded: 1,
      files_skipped: 0,
      bytes_uploaded: first.receipt.bytes,
    });
    assert.deepEqual(
      await Deno.readFile(join(dir, "lake", KEY)),
      await Deno.readFile(first.run.path(`write/${KEY}`)),
    );

    // same day, same data, another run (other run_id and fetched_at → other bytes): skipped
    const second = await upload("b", "2026-01-31T18:00:00Z");
    assert.equal(second.receipt.skipped, true);
    assert.equal(second.receipt.sha256, first.receipt.sha256, "the stored object's receipt");
    assert.deepEqual(second.outcome.counts, {
      files_uploaded: 0,
      files_skipped: 1,
      bytes_uploaded: 0,
    });
    assert.match(String(second.outcome.summary?.text), /nothing uploaded/);
  });
});

Deno.test("upload step: a Parquet file changed since write is refused", async () => {
  await withTempDir(async (dir) => {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, PIPELINE_STREAMS: "top_tracks" },
      envFile: false,
    });
    const log = quiet();
    const run = await createRun(config, { date: "2026-01-31" });
    await run.writeJson("enrich", "tracks.json", sampleEnrichOutput({ runId: run.id }));
    await runStep("write", { config, run, log, flags: {} });
    await Deno.writeFile(run.path(`write/${KEY}`), bytes("truncated"));
    await assert.rejects(
      () => runStep("upload", { config, run, log, flags: {} }),
      (e: Error) => e instanceof IntegrityError && e.message.includes("changed since write"),
    );
  });
});
