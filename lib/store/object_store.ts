/**
 * The object-store interface the upload and load steps use: a local folder (`local` profile) or
 * S3 (`prod`). Keys are the same in both: `top_tracks/snapshot_date=YYYY-MM-DD/top_tracks.parquet`.
 * @module
 */

/** What the store knows about one object. */
export interface ObjectInfo {
  key: string;
  bytes: number;
  /** Hex SHA-256 of the object's bytes, when the store knows it. */
  sha256?: string;
  /** Fingerprint of the data (rows without run metadata) recorded at put time, if any. */
  contentSha256?: string;
  lastModified?: Date;
}

/** Options of {@link ObjectStore.put}. */
export interface PutOptions {
  /** Hex SHA-256 of `data` (computed when absent). */
  sha256?: string;
  /**
   * Fingerprint of the data; when the stored object has the same one, nothing is written and
   * the stored object is reported (`skipped: true`).
   */
  contentSha256?: string;
  contentType?: string;
}

/** The receipt of a put, saved in the run folder (`upload/receipt.json`). */
export interface PutReceipt {
  /** `file:///...` or `s3://bucket/key`. */
  uri: string;
  key: string;
  bytes: number;
  /** Hex SHA-256 of the stored object's bytes. */
  sha256: string;
  contentSha256?: string;
  /** True when an identical object was already stored and nothing was written. */
  skipped: boolean;
}

/** The receipt of a put: of the object already stored (`skipped`), or of the one just written. */
export function putReceipt(
  uri: string,
  key: string,
  object: { bytes: number; sha256: string; contentSha256?: string },
  skipped: boolean,
): PutReceipt {
  return {
    uri,
    key,
    bytes: object.bytes,
    sha256: object.sha256,
    ...(object.contentSha256 ? { contentSha256: object.contentSha256 } : {}),
    skipped,
  };
}

/** An object store. */
export interface ObjectStore {
  readonly kind: "folder" | "s3";
  /** URI of a key in this store. */
  uri(key: string): string;
  put(key: string, data: Uint8Array, options?: PutOptions): Promise<PutReceipt>;
  /** Info of a key, or `undefined` when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Objects whose key starts with `prefix`. */
  list(prefix: string): Promise<ObjectInfo[]>;
  get(key: string): Promise<Uint8Array>;
  /** Releases clients (no-op for a folder). */
  close(): Promise<void>;
}
