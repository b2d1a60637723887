/**
 * Opens the configured warehouse: the DuckDB file (`local`) or Snowflake (`prod`). Each is
 * imported only when used, so DuckDB's native binding and snowflake-sdk never load together.
 * @module
 */

import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Warehouse } from "./warehouse.ts";

/** Options of {@link openWarehouse}. */
export interface OpenWarehouseOptions {
  log: Logger;
}

/** The warehouse of `config.warehouse`; close it when done. */
export async function openWarehouse(
  config: Config,
  options: OpenWarehouseOptions,
): Promise<Warehouse> {
  const warehouse = config.warehouse;
  if (warehouse.kind === "duckdb") {
    const { openDuckDbWarehouse } = await import("./duckdb.ts");
    return await openDuckDbWarehouse(warehouse, { log: options.log });
  }
  const { openSnowflakeWarehouse } = await import("./snowflake.ts");
  return await openSnowflakeWarehouse(warehouse, { log: options.log, store: config.store });
}
