/**
 * The S3 object store against moto (a real S3 API server) with the real AWS SDK.
 *
 * moto stores and reports the checksums the client sends but does not itself reject a wrong one,
 * so "checksum verified" is proven here by (a) the SDK sending `x-amz-checksum-sha256`, (b) the
 * store comparing what S3 reports (full-object for PUT, composite for multipart) with its own
 * computation, and (c) reading the object back and hashing it.
 */

import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { loadConfig, type StoreConfig } from "../lib/config.ts";
import { StorageError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/sha256.ts";
import { Logger, type LogRecord } from "../lib/log.ts";
import { openS3Store } from "../lib/store/s3.ts";
import {
  freePort,
  prodEnv,
  rejectsWith,
  type StandIn,
  startMoto,
  withAwsEnv,
} from "./stand_ins.ts";

type S3Config = Extract<StoreConfig, { kind: "s3" }>;
const KEY = "top_tracks/snapshot_date=2024-05-01/top_tracks.parquet";

function testLogger(records: LogRecord[] = []): Logger {
  return new Logger({ level: "debug", format: "json", sink: (r) => records.push(r) });
}

async function s3Config(
  dataDir: string,
  endpoint: string,
  bucket: string,
  extra: Record<string, string> = {},
): Promise<S3Config> {
  const env = await prodEnv({ dataDir, s3Endpoint: endpoint, bucket, extra });
  const config = loadConfig({ env, envFile: false });
  assert.ok(config.store.kind === "s3");
  return config.store;
}

/** Runs moto's boto3 in the venv (test set-up only: buckets, IAM users). */
async function boto3(moto: StandIn, script: string): Promise<string> {
  const py = `
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
s3 = boto3.client("s3", **kw)
iam = boto3.client("iam", **kw)
${script}
`;
  const out = await new Deno.Command(
    `${fileURLToPath(new URL("../.venv/bin/python", import.meta.url))}`,
    {
      args: ["-c", py, moto.url],
    },
  ).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`boto3 set-up failed:\n${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

function randomBytes(n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  return data;
}

Deno.test("S3 store against moto", async (t) => {
  const moto = await startMoto();
  const dataDir = await Deno.makeTempDir();
  try {
    await boto3(moto, `s3.create_bucket(Bucket="spotify-lake")`);
    await withAwsEnv({}, async () => {
      await t.step("put() sends a SHA-256 checksum and the stored object verifies", async () => {
        const config = await s3Config(dataDir, moto.url, "spotify-lake", {
          S3_PREFIX: "/pipeline/",
        });
        const records: LogRecord[] = [];
        const store = await openS3Store(config, { log: testLogger(records) });
        try {
          const data = randomBytes(200_000);
          const sha256 = await sha256Hex(data);
          const receipt = await store.put(KEY, data, { contentSha256: "fingerprint-1" });
          assert.deepEqual(receipt, {
            uri: `s3://spotify-lake/pipeline/${KEY}`,
            key: KEY,
            bytes: data.byteLength,
            sha256,
            contentSha256: "fingerprint-1",
            skipped: false,
          });
          const info = await store.head(KEY);
          assert.deepEqual(info?.sha256, sha256);
          assert.deepEqual(info?.contentSha256, "fingerprint-1");
          assert.deepEqual(info?.bytes, data.byteLength);
          assert.deepEqual(await sha256Hex(await store.get(KEY)), sha256);
          assert.deepEqual((await store.list("top_tracks/")).map((o) => o.key), [KEY]);
          assert.deepEqual(await store.head("top_tracks/none.parquet"), undefined);
          // what S3 stored as the object's checksum is the SHA-256 we computed
          const reported = await boto3(
            moto,
            `print(s3.head_object(Bucket="spotify-lake", Key="pipeline/${KEY}", ChecksumMode="ENABLED")["ChecksumSHA256"])`,
          );
          assert.deepEqual(
            reported.trim(),
            btoa(String.fromCharCode(...hexToBytes(sha256))),
          );
          const uploaded = records.find((r) => r.msg === "uploaded");
          assert.deepEqual(uploaded?.multipart, false);
        } finally {
          await store.close();
        }
      });

      await t.step(
        "put() above the threshold is a multipart upload with a verified composite checksum",
        async () => {
          const config = await s3Config(dataDir, moto.url, "spotify-lake", {
            S3_MULTIPART_THRESHOLD_MB: "5",
          });
          const records: LogRecord[] = [];
          const store = await openS3Store(config, { log: testLogger(records) });
          try {
            const data = randomBytes(11 * 1024 * 1024);
            const receipt = await store.put("big/file.bin", data);
            assert.deepEqual(receipt.skipped, false);
            const uploaded = records.find((r) => r.msg === "uploaded");
            assert.deepEqual(uploaded?.multipart, true);
            assert.deepEqual(uploaded?.parts, 3);
            // S3's multipart ETag ends with "-<parts>"
            const etag = await boto3(
              moto,
              `print(s3.head_object(Bucket="spotify-lake", Key="big/file.bin")["ETag"])`,
            );
            assert.match(etag.trim(), /-3"$/);
            assert.deepEqual(await sha256Hex(await store.get("big/file.bin")), receipt.sha256);
            assert.deepEqual((await store.head("big/file.bin"))?.sha256, receipt.sha256);
          } finally {
            await store.close();
          }
        },
      );

      await t.step(
        "put() of the same data fingerprint writes nothing and returns the stored receipt",
        async () => {
          const config = await s3Config(dataDir, moto.url, "spotify-lake");
          const records: LogRecord[] = [];
          const store = await openS3Store(config, { log: testLogger(records) });
          try {
            const first = randomBytes(1000);
            const a = await store.put("day/a.parquet", first, { contentSha256: "same-rows" });
            const before = await store.head("day/a.parquet");
            // different bytes (another run_id/fetched_at), same rows → skipped
            const b = await store.put("day/a.parquet", randomBytes(1200), {
              contentSha256: "same-rows",
            });
            assert.deepEqual(b, { ...a, skipped: true });
            assert.deepEqual(await sha256Hex(await store.get("day/a.parquet")), a.sha256);
            assert.deepEqual(
              (await store.head("day/a.parquet"))?.lastModified,
              before?.lastModified,
            );
            assert.deepEqual(records.filter((r) => r.msg === "uploaded").length, 1);
            // changed rows → written again
            const c = await store.put("day/a.parquet", randomBytes(900), {
              contentSha256: "other-rows",
            });
            assert.deepEqual(c.skipped, false);
            assert.deepEqual(c.bytes, 900);
            // a caller-given SHA-256 that does not match the bytes is refused
            const wrongSha = await rejectsWith(
              () => store.put("day/c.bin", first, { sha256: "0".repeat(64) }),
              StorageError,
            );
            assert.match(wrongSha.message, /does not match the bytes/);
            assert.equal(await store.head("day/c.bin"), undefined);
            // without a fingerprint, identical bytes are skipped
            const d = await store.put("day/b.bin", first);
            const e = await store.put("day/b.bin", first);
            assert.deepEqual([d.skipped, e.skipped], [false, true]);
          } finally {
            await store.close();
          }
        },
      );

      await t.step("a missing bucket is a StorageError naming it", async () => {
        const config = await s3Config(dataDir, moto.url, "no-such-bucket");
        const error = await rejectsWith(
          () => openS3Store(config, { log: testLogger() }),
          StorageError,
        );
        assert.match(error.message, /S3 bucket "no-such-bucket" does not exist/);
        assert.deepEqual(error.message.includes("\n"), false);
      });

      await t.step("a bucket in another region is a StorageError naming both regions", async () => {
        await boto3(
          moto,
          `boto3.client("s3", **{**kw, "region_name": "eu-west-1"}).create_bucket(Bucket="eu-lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})`,
        );
        const config = await s3Config(dataDir, moto.url, "eu-lake");
        const error = await rejectsWith(
          () => openS3Store(config, { log: testLogger() }),
          StorageError,
        );
        assert.match(error.message, /"eu-lake" is in region eu-west-1, not AWS_REGION=us-east-1/);
      });

      await t.step(
        "an unreachable endpoint is a StorageError after a bounded number of attempts",
        async () => {
          const down = `http://127.0.0.1:${freePort()}`;
          const config = await s3Config(dataDir, down, "spotify-lake");
          const started = performance.now();
          const error = await rejectsWith(
            () => openS3Store(config, { log: testLogger() }),
            StorageError,
          );
          assert.match(error.message, new RegExp(`Cannot reach S3 at ${down}.*ECONNREFUSED`));
          const attempts = (error.cause as { $metadata?: { attempts?: number } })?.$metadata
            ?.attempts;
          assert.ok(attempts === undefined || attempts <= 3, `attempts: ${attempts}`);
          console.log(`  endpoint down → error in ${Math.round(performance.now() - started)} ms`);
        },
      );
    });

    await t.step(
      "no AWS credentials anywhere in the chain is a StorageError saying so",
      async () => {
        const config = await s3Config(dataDir, moto.url, "spotify-lake");
        await withAwsEnv(
          { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined },
          async () => {
            const error = await rejectsWith(
              () => openS3Store(config, { log: testLogger() }),
              StorageError,
            );
            assert.match(error.message, /No AWS credentials found/);
          },
        );
      },
    );
  } finally {
    await moto.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("S3 store: access denied by an IAM policy is a StorageError naming the operation", async () => {
  // moto enforces IAM (authentication + policies) after the first 4 unauthenticated requests,
  // which create the bucket, a user, its read-only policy and its access key. (AWS authorizes
  // HeadBucket with s3:ListBucket; moto checks a pseudo-action "s3:HeadBucket", so both are
  // allowed.)
  const moto = await startMoto({ enforceIamAfter: 4 });
  const dataDir = await Deno.makeTempDir();
  try {
    const key = JSON.parse(
      await boto3(
        moto,
        `
s3.create_bucket(Bucket="locked-lake")
iam.create_user(UserName="reader")
iam.put_user_policy(UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps({
  "Version": "2012-10-17",
  "Statement": [{"Effect": "Allow", "Resource": "*",
                 "Action": ["s3:GetObject", "s3:ListBucket", "s3:HeadBucket"]}]}))
k = iam.create_access_key(UserName="reader")["AccessKey"]
print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
`,
      ),
    );
    const config = await s3Config(dataDir, moto.url, "locked-lake");
    const records: LogRecord[] = [];
    await withAwsEnv({ AWS_ACCESS_KEY_ID: key.id, AWS_SECRET_ACCESS_KEY: key.secret }, async () => {
      const store = await openS3Store(config, { log: testLogger(records) });
      try {
        const error = await rejectsWith(
          () => store.put(KEY, new Uint8Array([1, 2, 3])),
          StorageError,
        );
        assert.match(
          error.message,
          /S3 access denied: PutObject on s3:\/\/locked-lake\/top_tracks\/.* is not allowed/,
        );
        assert.deepEqual(error.message.includes(key.secret), false);
      } finally {
        await store.close();
      }
    });
    await withAwsEnv({ AWS_ACCESS_KEY_ID: "AKIAUNKNOWNKEY000000" }, async () => {
      const error = await rejectsWith(
        () => openS3Store(config, { log: testLogger(records) }),
        StorageError,
      );
      assert.match(error.message, /(rejected the AWS credentials|access denied)/);
    });
    assert.deepEqual(JSON.stringify(records).includes(key.secret), false);
  } finally {
    await moto.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

function hexToBytes(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}
