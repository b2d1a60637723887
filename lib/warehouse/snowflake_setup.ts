/**
 * One-time Snowflake setup for `deno task load --setup [--apply]` (placeholder).
 * @module
 */
import { StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Config } from "../config.ts";

/** Options of {@link runSnowflakeSetup}. */
export interface RunSnowflakeSetupOptions {
  /** Run the SQL (otherwise only print it). */
  apply: boolean;
  log: Logger;
}

/** Prints (and with `apply`, runs) the one-time Snowflake setup SQL. */
export function runSnowflakeSetup(
  _config: Config,
  _options: RunSnowflakeSetupOptions,
): Promise<void> {
  return Promise.reject(new StorageError("the Snowflake setup is not implemented yet"));
}
