/**
 * A Snowflake session with npm:snowflake-sdk, imported here lazily so tasks that never load data
 * never load the driver: the credentials resolved, the login bounded, every statement run with a
 * bounded wait and its failure mapped to a one-line error.
 * @module
 */

import type { Connection, ConnectionOptions } from "snowflake-sdk";
import { StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { authOptions } from "./_snowflake_key.ts";
import { describeTarget, firstLine, loginError, statementError } from "./_snowflake_errors.ts";
import type { SnowflakeWarehouseConfig } from "./_snowflake_names.ts";

/** Login retries after a network error (the driver's default 7 takes minutes). */
const LOGIN_RETRIES = 1;
/** Grace on top of the server-side statement timeout before the client gives up. */
const CLIENT_GRACE_MS = 10_000;

/** Options of {@link openSnowflakeSession}. */
export interface OpenSnowflakeSessionOptions {
  log: Logger;
  /** Role to use instead of SNOWFLAKE_ROLE (the setup runs as ACCOUNTADMIN). */
  role?: string;
  /** Connect without a database/schema (the setup creates them). */
  noDefaultNamespace?: boolean;
}

/** A connected Snowflake session: runs statements with a bounded wait, maps errors. */
export interface SnowflakeSession {
  /** Runs one statement; `binds` are sent as bind values. Rows as objects keyed by column. */
  execute(
    sql: string,
    binds?: (string | number | boolean | null)[],
  ): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/**
 * Opens a Snowflake session: loads the driver, resolves the credentials, connects with bounded
 * retries and sets `STATEMENT_TIMEOUT_IN_SECONDS`.
 */
export async function openSnowflakeSession(
  config: SnowflakeWarehouseConfig,
  options: OpenSnowflakeSessionOptions,
): Promise<SnowflakeSession> {
  const log = options.log.child({ warehouse: "snowflake" });
  for (const secret of [config.password, config.token, config.privateKeyPassphrase]) {
    log.addSecret(secret);
  }
  const auth = await authOptions(config);
  if (auth.privateKey) log.addSecret(auth.privateKey);
  await gzipRequestsConsistently();
  const sdk = (await import("snowflake-sdk")).default;
  sdk.configure({ logLevel: "OFF", additionalLogToConsole: false });

  const timeoutMs = config.timeoutSeconds * 1000;
  const connectionOptions: ConnectionOptions = {
    account: config.account,
    username: config.user,
    ...auth,
    ...(options.role ?? config.role ? { role: options.role ?? config.role } : {}),
    warehouse: config.warehouse,
    ...(options.noDefaultNamespace ? {} : { database: config.database, schema: config.schema }),
    ...(config.host ? { host: config.host } : {}),
    ...(config.port ? { port: config.port } : {}),
    ...(config.protocol ? { protocol: config.protocol } : {}),
    application: "spotify_pipeline",
    // HTTP timeout per request: longer than the server-side statement timeout, so a slow statement
    // ends with Snowflake's own timeout error (000630) instead of a client timeout, which the
    // driver would retry. Few login retries: an unreachable host fails in seconds.
    timeout: timeoutMs + CLIENT_GRACE_MS,
    sfRetryMaxLoginRetries: LOGIN_RETRIES,
  } as ConnectionOptions;
  const connection = sdk.createConnection(connectionOptions);
  const where = describeTarget(config);
  try {
    await withDeadline(
      new Promise<void>((resolve, reject) =>
        connection.connect((error) => error ? reject(error) : resolve())
      ),
      timeoutMs + CLIENT_GRACE_MS,
      () =>
        new StorageError(
          `Snowflake did not answer the login within ${config.timeoutSeconds} s (${where})`,
        ),
    );
  } catch (error) {
    destroy(connection);
    throw loginError(error, config, auth.fingerprint);
  }
  log.debug("connected to Snowflake", { account: config.account, user: config.user });
  const session = new Session(connection, config, log);
  try {
    // an integer from the validated config (statement parameters are not bindable)
    await session.execute(
      `ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = ${Math.trunc(config.timeoutSeconds)}`,
    );
  } catch (error) {
    await session.close();
    throw error;
  }
  return session;
}

/** A connected session. */
class Session implements SnowflakeSession {
  #connection: Connection;
  #config: SnowflakeWarehouseConfig;
  #log: Logger;
  #closed = false;

  constructor(connection: Connection, config: SnowflakeWarehouseConfig, log: Logger) {
    this.#connection = connection;
    this.#config = config;
    this.#log = log;
  }

  execute(
    sql: string,
    binds?: (string | number | boolean | null)[],
  ): Promise<Record<string, unknown>[]> {
    // the server cancels at timeoutSeconds (STATEMENT_TIMEOUT_IN_SECONDS); the client stops waiting
    // once the HTTP timeout has passed too (the driver retries network failures of a statement in
    // the background: its retry count is not configurable in snowflake-sdk 2.3.6)
    const timeoutMs = this.#config.timeoutSeconds * 1000 + 2 * CLIENT_GRACE_MS;
    let statementHandle: { cancel(cb?: (error: unknown) => void): void } | undefined;
    this.#log.debug("snowflake statement", { sql: firstLine(sql) });
    const run = new Promise<Record<string, unknown>[]>((resolve, reject) => {
      statementHandle = this.#connection.execute({
        sqlText: sql,
        ...(binds ? { binds } : {}),
        complete: (error, _statement, rows) => {
          if (error) reject(statementError(error, sql, this.#config));
          else resolve((rows ?? []) as Record<string, unknown>[]);
        },
      });
    });
    return withDeadline(run, timeoutMs, () => {
      statementHandle?.cancel(() => {});
      return new StorageError(
        `Snowflake statement did not finish within ${this.#config.timeoutSeconds} s: ${
          firstLine(sql)
        }`,
        { hint: "Raise SNOWFLAKE_TIMEOUT_SECONDS or check the warehouse." },
      );
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => {
      try {
        this.#connection.destroy(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

let requestsFixed = false;

/**
 * snowflake-sdk 2.3 gzips each request body in `zlib.gzip`'s callback and sets
 * `Content-Encoding: gzip` there, but builds the request from the uncompressed body before that
 * callback runs (`lib/http/base.js`, `prepareRequestOptions`): whether the header reaches the
 * wire is a race. On Node and Deno 2.9 the callback comes after the request is sent (plain body,
 * no header); on Deno 2.5 (Deno Deploy's runtime) it comes in between — a plain JSON body
 * labelled gzip, which Snowflake cannot read, so every login fails. The SDK's own axios instance
 * is wrapped here so each body leaves gzipped with its header, whatever the timing.
 */
async function gzipRequestsConsistently(): Promise<void> {
  if (requestsFixed) return;
  requestsFixed = true;
  const { gzipSync } = await import("node:zlib");
  type Instance = { request: (config: Record<string, unknown>) => Promise<unknown> };
  // a CommonJS module with `exports.default = axios`: Deno's default export is `exports`
  const mod = await import("snowflake-sdk/dist/lib/http/axios_instance.js") as unknown as {
    default: Instance | { default: Instance };
  };
  const instance = "default" in mod.default ? mod.default.default : mod.default;
  const request = instance.request.bind(instance);
  instance.request = (config) => {
    const data = config.data;
    const isGzip = data instanceof Uint8Array && data[0] === 0x1f && data[1] === 0x8b;
    if (data !== undefined && data !== null && !isGzip) {
      // a Buffer from gzipSync, as the SDK's own gzip gives
      config.data = gzipSync(
        typeof data === "string" || data instanceof Uint8Array ? data : JSON.stringify(data),
      );
      const headers = (config.headers ?? {}) as Record<string, string>;
      headers["Content-Encoding"] = "gzip";
      config.headers = headers;
    }
    return request(config);
  };
}

function destroy(connection: Connection): void {
  try {
    connection.destroy(() => {});
  } catch {
    // not connected
  }
}

/** Rejects with `onTimeout()` when `promise` has not settled after `ms`. */
function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
