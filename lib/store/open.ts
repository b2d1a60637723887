/**
 * Opens the configured object store: the lake folder (`local`) or S3 (`prod`). The S3 module and
 * the AWS SDK are imported only when the store is S3.
 * @module
 */

import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { FolderStore } from "./folder.ts";
import type { ObjectStore } from "./object_store.ts";

/** Options of {@link openObjectStore}. */
export interface OpenObjectStoreOptions {
  log: Logger;
}

/** The object store of `config.store`. */
export async function openObjectStore(
  config: Config,
  options: OpenObjectStoreOptions,
): Promise<ObjectStore> {
  const store = config.store;
  if (store.kind === "folder") return new FolderStore(store.dir, { log: options.log });
  const { openS3Store } = await import("./s3.ts");
  return await openS3Store(store, { log: options.log });
}
