/**
 * The S3 object store (`prod` profile), with npm:@aws-sdk/client-s3 and, above the multipart
 * threshold, npm:@aws-sdk/lib-storage. Both SDKs are imported here lazily, so tasks that never
 * upload never load them.
 *
 * - Credentials come from the standard AWS chain (environment, shared profile, SSO, container
 *   or instance role); none are in code, config or logs.
 * - Every put sends a SHA-256 checksum (S3 verifies it on receipt) and checks the checksum S3
 *   reports back (full-object for a single PUT, composite for multipart).
 * - The object's SHA-256 and the data fingerprint are stored as user metadata (`sha256`,
 *   `content-sha256`); a put whose fingerprint matches the stored object's writes nothing.
 * - Failures become one-line {@link StorageError}s: bucket missing, access denied, wrong region,
 *   endpoint unreachable, credentials missing. Retries are bounded (3 attempts, short timeouts).
 * @module
 */

import type * as S3 from "@aws-sdk/client-s3";
import type { StoreConfig } from "../config.ts";
import { StorageError } from "../errors.ts";
import { sha256Bytes, sha256Hex } from "../sha256.ts";
import type { Logger } from "../log.ts";
import {
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutReceipt,
  putReceipt,
} from "./object_store.ts";
import { oneLine } from "../text.ts";

/** The S3 settings from {@link StoreConfig}. */
export type S3StoreConfig = Extract<StoreConfig, { kind: "s3" }>;

/** Options of {@link openS3Store}. */
export interface OpenS3StoreOptions {
  log: Logger;
}

/** Attempts per S3 request (the SDK's standard retry mode: jittered backoff, capped). */
const MAX_ATTEMPTS = 3;
/** TCP connect timeout: an unreachable endpoint fails in seconds, not minutes. */
const CONNECTION_TIMEOUT_MS = 5_000;
/** Socket idle timeout per request. */
const REQUEST_TIMEOUT_MS = 120_000;
/** Largest multipart part (parts are the threshold size, at most this). */
const MAX_PART_BYTES = 64 * 1024 * 1024;
const META_SHA256 = "sha256";
const META_CONTENT_SHA256 = "content-sha256";

/**
 * Opens the S3 store: loads the SDK, builds the client and checks the bucket is reachable,
 * exists, is readable with these credentials and lives in the configured region.
 *
 * @example
 * const store = await openS3Store(config.store as S3StoreConfig, { log });
 * const receipt = await store.put("top_tracks/snapshot_date=2024-05-01/top_tracks.parquet", bytes, {
 *   contentSha256,
 * });
 */
export async function openS3Store(
  config: S3StoreConfig,
  options: OpenS3StoreOptions,
): Promise<ObjectStore> {
  const sdk = await import("@aws-sdk/client-s3");
  const client = new sdk.S3Client({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    forcePathStyle: config.forcePathStyle,
    maxAttempts: MAX_ATTEMPTS,
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
    },
    requestChecksumCalculation: "WHEN_SUPPORTED",
    responseChecksumValidation: "WHEN_SUPPORTED",
  });
  const store = new S3Store(client, sdk, config, options.log.child({ store: "s3" }));
  try {
    await store.checkBucket();
  } catch (error) {
    client.destroy();
    throw error;
  }
  return store;
}

/** An S3 bucket (and key prefix) as an {@link ObjectStore}. */
class S3Store implements ObjectStore {
  readonly kind = "s3" as const;
  #client: S3.S3Client;
  #sdk: typeof S3;
  #config: S3StoreConfig;
  #log: Logger;

  constructor(client: S3.S3Client, sdk: typeof S3, config: S3StoreConfig, log: Logger) {
    this.#client = client;
    this.#sdk = sdk;
    this.#config = config;
    this.#log = log;
  }

  uri(key: string): string {
    return `s3://${this.#config.bucket}/${this.#objectKey(key)}`;
  }

  /** HEAD the bucket: exists, reachable, credentials accepted, region matches. */
  async checkBucket(): Promise<void> {
    const { bucket, region } = this.#config;
    const out = await this.#send(
      "HeadBucket",
      "",
      () => this.#client.send(new this.#sdk.HeadBucketCommand({ Bucket: bucket })),
    );
    if (out.BucketRegion && out.BucketRegion !== region) {
      throw new StorageError(
        `S3 bucket "${bucket}" is in region ${out.BucketRegion}, not AWS_REGION=${region}`,
        { hint: `Set AWS_REGION=${out.BucketRegion}.` },
      );
    }
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<PutReceipt> {
    const sha256 = await sha256Hex(data);
    if (options.sha256 && options.sha256 !== sha256) {
      throw new StorageError(
        `Refusing to upload ${
          this.uri(key)
        }: the caller's SHA-256 ${options.sha256} does not match the bytes (${sha256})`,
      );
    }
    const stored = await this.head(key);
    if (stored?.sha256 && isSameContent(stored, sha256, options.contentSha256)) {
      this.#log.info("identical object already stored; nothing uploaded", {
        uri: this.uri(key),
        bytes: stored.bytes,
      });
      return putReceipt(this.uri(key), key, { ...stored, sha256: stored.sha256 }, true);
    }

    const metadata: Record<string, string> = { [META_SHA256]: sha256 };
    if (options.contentSha256) metadata[META_CONTENT_SHA256] = options.contentSha256;
    const contentType = options.contentType ?? contentTypeOf(key);
    const multipart = data.byteLength > this.#config.multipartThresholdBytes;
    const started = performance.now();
    let expected: string;
    let reported: string | undefined;
    let parts = 1;
    if (multipart) {
      const partSize = Math.min(this.#config.multipartThresholdBytes, MAX_PART_BYTES);
      parts = Math.ceil(data.byteLength / partSize);
      expected = await compositeSha256Base64(data, partSize);
      await this.#multipartUpload(key, data, { partSize, metadata, contentType });
      reported = await this.#reportedChecksum(key);
    } else {
      expected = await sha256Base64(data);
      const out = await this.#send(
        "PutObject",
        key,
        () =>
          this.#client.send(
            new this.#sdk.PutObjectCommand({
              Bucket: this.#config.bucket,
              Key: this.#objectKey(key),
              Body: data,
              ContentType: contentType,
              Metadata: metadata,
              ChecksumAlgorithm: "SHA256",
              ChecksumSHA256: expected,
            }),
          ),
      );
      reported = out.ChecksumSHA256 ?? await this.#reportedChecksum(key);
    }
    this.#verifyChecksum(key, expected, reported);

    this.#log.info("uploaded", {
      uri: this.uri(key),
      bytes: data.byteLength,
      multipart,
      parts,
      ms: Math.round(performance.now() - started),
    });
    return putReceipt(
      this.uri(key),
      key,
      { bytes: data.byteLength, sha256, contentSha256: options.contentSha256 },
      false,
    );
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.#headObject(key, { notFoundIsMissingObject: true });
      return {
        key,
        bytes: out.ContentLength ?? 0,
        ...(out.Metadata?.[META_SHA256] ? { sha256: out.Metadata[META_SHA256] } : {}),
        ...(out.Metadata?.[META_CONTENT_SHA256]
          ? { contentSha256: out.Metadata[META_CONTENT_SHA256] }
          : {}),
        ...(out.LastModified ? { lastModified: out.LastModified } : {}),
      };
    } catch (error) {
      if (error instanceof MissingObject) return undefined;
      throw error;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const base = this.#objectKey("");
    let token: string | undefined;
    do {
      const page: S3.ListObjectsV2CommandOutput = await this.#send(
        "ListObjectsV2",
        prefix,
        () =>
          this.#client.send(
            new this.#sdk.ListObjectsV2Command({
              Bucket: this.#config.bucket,
              Prefix: this.#objectKey(prefix),
              ContinuationToken: token,
            }),
          ),
      );
      for (const item of page.Contents ?? []) {
        if (!item.Key) continue;
        out.push({
          key: item.Key.slice(base.length),
          bytes: item.Size ?? 0,
          ...(item.LastModified ? { lastModified: item.LastModified } : {}),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async get(key: string): Promise<Uint8Array> {
    const out = await this.#send(
      "GetObject",
      key,
      () =>
        this.#client.send(
          new this.#sdk.GetObjectCommand({
            Bucket: this.#config.bucket,
            Key: this.#objectKey(key),
            ChecksumMode: "ENABLED",
          }),
        ),
    );
    if (!out.Body) throw new StorageError(`S3 returned no body for ${this.uri(key)}`);
    return await out.Body.transformToByteArray();
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }

  #objectKey(key: string): string {
    const k = key.replace(/^\/+/, "");
    return this.#config.prefix ? `${this.#config.prefix}/${k}` : k;
  }

  async #multipartUpload(
    key: string,
    data: Uint8Array,
    options: { partSize: number; metadata: Record<string, string>; contentType: string },
  ): Promise<void> {
    const { Upload } = await import("@aws-sdk/lib-storage");
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.#config.bucket,
        Key: this.#objectKey(key),
        Body: data,
        ContentType: options.contentType,
        Metadata: options.metadata,
        ChecksumAlgorithm: "SHA256",
      },
      partSize: options.partSize,
      queueSize: 2,
      // a failed upload is aborted (its parts deleted), never left half-done
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      throw this.#storageError(error, "multipart PutObject", key);
    }
  }

  /** The checksum S3 reports for the stored object (HEAD with checksum mode). */
  async #reportedChecksum(key: string): Promise<string | undefined> {
    return (await this.#headObject(key)).ChecksumSHA256;
  }

  /** HEAD of the object, with its checksum asked for. */
  #headObject(
    key: string,
    options: { notFoundIsMissingObject?: boolean } = {},
  ): Promise<S3.HeadObjectCommandOutput> {
    return this.#send(
      "HeadObject",
      key,
      () =>
        this.#client.send(
          new this.#sdk.HeadObjectCommand({
            Bucket: this.#config.bucket,
            Key: this.#objectKey(key),
            ChecksumMode: "ENABLED",
          }),
        ),
      options,
    );
  }

  #verifyChecksum(key: string, expected: string, reported: string | undefined): void {
    if (reported === undefined) {
      // S3 always reports it; some S3-compatible stores do not.
      this.#log.warn("the object store reported no SHA-256 checksum; upload not verified", {
        uri: this.uri(key),
      });
      return;
    }
    // composite checksums come back as "<base64>-<parts>" from S3
    const value = reported.replace(/-\d+$/, "");
    if (value !== expected) {
      throw new StorageError(
        `S3 checksum mismatch for ${
          this.uri(key)
        }: sent SHA-256 ${expected}, S3 reports ${reported}`,
        { hint: "The object may be corrupt; run the upload again." },
      );
    }
  }

  async #send<T>(
    operation: string,
    key: string,
    request: () => Promise<T>,
    options: { notFoundIsMissingObject?: boolean } = {},
  ): Promise<T> {
    try {
      return await request();
    } catch (error) {
      if (options.notFoundIsMissingObject && isObjectNotFound(error)) throw new MissingObject();
      throw this.#storageError(error, operation, key);
    }
  }

  /** One-line, secret-free StorageError for an SDK or network failure. */
  #storageError(error: unknown, operation: string, key: string): StorageError {
    const { bucket, region } = this.#config;
    const where = key ? this.uri(key) : `s3://${bucket}`;
    const e = error as {
      name?: string;
      code?: string;
      message?: string;
      $metadata?: { httpStatusCode?: number; attempts?: number };
      $response?: { headers?: Record<string, string> };
      cause?: { code?: string };
    };
    const name = e?.name ?? "Error";
    const status = e?.$metadata?.httpStatusCode;
    const code = e?.code ?? e?.cause?.code;
    const endpoint = this.#config.endpoint ?? `https://s3.${region}.amazonaws.com`;
    const headerRegion = e?.$response?.headers?.["x-amz-bucket-region"];

    if (
      name === "CredentialsProviderError" || /Could not load credentials/i.test(e?.message ?? "")
    ) {
      return new StorageError(
        `No AWS credentials found for ${operation} on ${where}`,
        {
          hint:
            "Provide credentials through the standard AWS chain: AWS_PROFILE (shared config), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance/container role.",
          cause: error,
        },
      );
    }
    if (
      name === "PermanentRedirect" || name === "AuthorizationHeaderMalformed" ||
      name === "IllegalLocationConstraintException" || status === 301 ||
      (headerRegion && headerRegion !== region)
    ) {
      return new StorageError(
        `S3 bucket "${bucket}" is not in region ${region}${
          headerRegion ? ` (it is in ${headerRegion})` : ""
        }: ${operation} ${where} was refused`,
        { hint: `Set AWS_REGION to the bucket's region.`, cause: error },
      );
    }
    if (name === "NoSuchBucket" || (operation === "HeadBucket" && status === 404)) {
      return new StorageError(
        `S3 bucket "${bucket}" does not exist (region ${region}, endpoint ${endpoint})`,
        { hint: "Create the bucket or fix S3_BUCKET.", cause: error },
      );
    }
    if (name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch") {
      return new StorageError(
        `S3 rejected the AWS credentials for ${operation} on ${where} (${name})`,
        { hint: "Check the AWS profile or access key in use.", cause: error },
      );
    }
    if (name === "AccessDenied" || status === 403) {
      return new StorageError(
        `S3 access denied: ${operation} on ${where} is not allowed for these AWS credentials`,
        {
          hint:
            "Allow s3:PutObject, s3:GetObject and s3:ListBucket on the bucket/prefix in the IAM policy (see docs/production.md).",
          cause: error,
        },
      );
    }
    if (
      name === "TimeoutError" || name === "RequestTimeout" ||
      (code &&
        /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|EPIPE)$/.test(
          code,
        )) ||
      /ECONNREFUSED|ENOTFOUND|connect|socket hang up|timed? ?out/i.test(e?.message ?? "")
    ) {
      return new StorageError(
        `Cannot reach S3 at ${endpoint} for ${operation} on ${where}: ${code ?? name}`,
        { hint: "Check the network, S3_ENDPOINT and AWS_REGION.", cause: error },
      );
    }
    const attempts = e?.$metadata?.attempts;
    return new StorageError(
      `S3 ${operation} on ${where} failed: ${name}${status ? ` (HTTP ${status})` : ""}${
        attempts ? ` after ${attempts} attempt${attempts === 1 ? "" : "s"}` : ""
      }${
        e?.message && e.message !== name && e.message !== "UnknownError"
          ? `: ${oneLine(e.message, 300)}`
          : ""
      }`,
      { cause: error },
    );
  }
}

/** Internal marker: HEAD found no object. */
class MissingObject extends Error {
  override name = "MissingObject";
}

function isObjectNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NotFound" || e?.name === "NoSuchKey" ||
    (e?.$metadata?.httpStatusCode === 404 && e?.name !== "NoSuchBucket");
}

function isSameContent(stored: ObjectInfo, sha256: string, contentSha256?: string): boolean {
  if (contentSha256) return stored.contentSha256 === contentSha256;
  return stored.sha256 === sha256;
}

function contentTypeOf(key: string): string {
  if (key.endsWith(".parquet")) return "application/vnd.apache.parquet";
  if (key.endsWith(".json")) return "application/json";
  return "application/octet-stream";
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

async function sha256Base64(data: Uint8Array): Promise<string> {
  return toBase64(await sha256Bytes(data));
}

/** S3's composite multipart checksum: SHA-256 of the concatenated part SHA-256s. */
async function compositeSha256Base64(data: Uint8Array, partSize: number): Promise<string> {
  const digests: Uint8Array[] = [];
  for (let offset = 0; offset < data.byteLength; offset += partSize) {
    digests.push(await sha256Bytes(data.subarray(offset, offset + partSize)));
  }
  const all = new Uint8Array(digests.length * 32);
  digests.forEach((d, i) => all.set(d, i * 32));
  return toBase64(await sha256Bytes(all));
}
