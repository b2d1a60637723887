/**
 * Snowflake warehouse loader (placeholder: the implementation lands shortly).
 * @module
 */
import { StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { StoreConfig, WarehouseConfig } from "../config.ts";
import type { Warehouse } from "./warehouse.ts";

/** Options of {@link openSnowflakeWarehouse}. */
export interface OpenSnowflakeWarehouseOptions {
  log: Logger;
  /** The object store the stage points at (S3 bucket and prefix). */
  store: StoreConfig;
}

/** Connects to Snowflake and returns a loader into the raw table. */
export function openSnowflakeWarehouse(
  _config: Extract<WarehouseConfig, { kind: "snowflake" }>,
  _options: OpenSnowflakeWarehouseOptions,
): Promise<Warehouse> {
  return Promise.reject(new StorageError("the Snowflake warehouse is not implemented yet"));
}
