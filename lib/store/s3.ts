/**
 * S3 object store (placeholder: the implementation lands shortly).
 * @module
 */
import { StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { StoreConfig } from "../config.ts";
import type { ObjectStore } from "./object_store.ts";

/** Options of {@link openS3Store}. */
export interface OpenS3StoreOptions {
  log: Logger;
}

/** Opens the S3 object store described by `config`. */
export function openS3Store(
  _config: Extract<StoreConfig, { kind: "s3" }>,
  _options: OpenS3StoreOptions,
): Promise<ObjectStore> {
  return Promise.reject(new StorageError("the S3 store is not implemented yet"));
}
