/**
 * Local stand-ins for the prod services, started by the tests on 127.0.0.1 with free ports:
 * moto (S3, and IAM when asked) and fakesnow (Snowflake, behind the test-only protocol adapter
 * `tests/fakesnow_adapter.py`). Both run from the project's venv (`.venv/bin/`).
 * @module
 */

import { fileURLToPath as fromFileUrl } from "node:url";

/** A running stand-in. */
export interface StandIn {
  /** Base URL, e.g. `http://127.0.0.1:43211`. */
  url: string;
  host: string;
  port: number;
  /** Everything the process wrote to stdout/stderr so far (for failure messages). */
  output(): string;
  /** Stops the process and waits for it to exit. */
  stop(): Promise<void>;
}

/** Root of the project (this file is `tests/stand_ins.ts`). */
export const PROJECT_ROOT: string = fromFileUrl(new URL("..", import.meta.url)).replace(/\/$/, "");
const VENV_BIN = `${PROJECT_ROOT}/.venv/bin`;
const HOST = "127.0.0.1";

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * AWS settings for a child process talking to moto: fixed test keys, and no shared files or
 * instance metadata, so the SDK's credential chain sees only these.
 */
export const TEST_AWS_ENV: Readonly<Record<string, string>> = {
  AWS_ACCESS_KEY_ID: "testing-key-id",
  AWS_SECRET_ACCESS_KEY: "testing-secret-key",
  AWS_CONFIG_FILE: "/nonexistent/aws-config",
  AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
  AWS_EC2_METADATA_DISABLED: "true",
};

/** Creates a bucket in a moto server (path-style, fixed test keys). */
export async function createBucket(moto: StandIn, bucket: string): Promise<void> {
  const out = await new Deno.Command(`${VENV_BIN}/python`, {
    args: [
      "-c",
      `import boto3, sys; boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x").create_bucket(Bucket=sys.argv[2])`,
      moto.url,
      bucket,
    ],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** Options of {@link startMoto}. */
export interface StartMotoOptions {
  /**
   * Enforce IAM authentication and authorization after this many unauthenticated requests
   * (moto's `INITIAL_NO_AUTH_ACTION_COUNT`); unset = no auth checks.
   */
  enforceIamAfter?: number;
}

/** Starts `moto_server -H 127.0.0.1 -p PORT` and waits until it answers. */
export function startMoto(options: StartMotoOptions = {}): Promise<StandIn> {
  const port = freePort();
  const env: Record<string, string> = { PYTHONUNBUFFERED: "1" };
  if (options.enforceIamAfter !== undefined) {
    env.INITIAL_NO_AUTH_ACTION_COUNT = String(options.enforceIamAfter);
  }
  return spawnAndWait({
    name: "moto_server",
    command: `${VENV_BIN}/moto_server`,
    args: ["-H", HOST, "-p", String(port)],
    port,
    env,
    readyPath: "/moto-api/",
  });
}

/** Options of {@link startFakesnow}. */
export interface StartFakesnowOptions {
  /** S3 endpoint (moto) that external stages read through DuckDB's httpfs. */
  s3Endpoint?: string;
  /** Region DuckDB signs S3 requests with (default us-east-1). */
  s3Region?: string;
  /**
   * Accounts the adapter knows; a login naming another account is refused the way Snowflake's
   * front door refuses an unknown account (HTTP 403). Unset = any account.
   */
  accounts?: string[];
  /** Users whose key-pair logins are verified: user name → PEM public key (SPKI). */
  publicKeys?: Record<string, string>;
  /** Users whose password logins are verified: user name → password. */
  passwords?: Record<string, string>;
  /**
   * Assume the storage integration's AWS role at each COPY, as Snowflake does: the role must be
   * in moto's IAM and trust the integration's IAM user with its external id.
   */
  checkTrust?: boolean;
  /**
   * Days the clock of Snowflake's 64-day load-metadata rule runs ahead: files never loaded whose
   * S3 LAST_MODIFIED looks older than 64 days are skipped without a word unless the COPY says
   * LOAD_UNCERTAIN_FILES = TRUE, as Snowflake does.
   */
  clockAheadDays?: number;
  /** The AWS key the stand-in's stages read S3 with (as Snowflake's role does); default a fixed one. */
  s3Key?: { id: string; secret: string };
}

/**
 * Starts fakesnow's server app behind the test-only protocol adapter (`tests/fakesnow_adapter.py`)
 * and waits until it answers.
 */
export async function startFakesnow(options: StartFakesnowOptions = {}): Promise<StandIn> {
  const port = freePort();
  const args = [
    fromFileUrl(new URL("./fakesnow_adapter.py", import.meta.url)),
    "--host",
    HOST,
    "--port",
    String(port),
  ];
  const tempFiles: string[] = [];
  if (options.s3Endpoint) args.push("--s3-endpoint", options.s3Endpoint);
  if (options.s3Region) args.push("--s3-region", options.s3Region);
  if (options.checkTrust) args.push("--check-trust");
  if (options.clockAheadDays) args.push("--clock-ahead-days", String(options.clockAheadDays));
  if (options.s3Key) {
    args.push("--s3-key-id", options.s3Key.id, "--s3-secret", options.s3Key.secret);
  }
  for (const account of options.accounts ?? []) args.push("--account", account);
  for (const [user, pem] of Object.entries(options.publicKeys ?? {})) {
    const file = await Deno.makeTempFile({ suffix: ".pub.pem" });
    await Deno.writeTextFile(file, pem);
    tempFiles.push(file);
    args.push("--public-key", `${user}=${file}`);
  }
  const passwords = options.passwords ?? {};
  const env: Record<string, string> = { PYTHONUNBUFFERED: "1" };
  if (Object.keys(passwords).length) env.FAKESNOW_ADAPTER_PASSWORDS = JSON.stringify(passwords);
  const standIn = await spawnAndWait({
    name: "fakesnow adapter",
    command: `${VENV_BIN}/python`,
    args,
    port,
    env,
    readyPath: "/healthz",
  });
  return {
    ...standIn,
    async stop() {
      await standIn.stop();
      for (const file of tempFiles) await Deno.remove(file).catch(() => {});
    },
  };
}

interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  port: number;
  env: Record<string, string>;
  readyPath: string;
  /** Give up after this long (the stand-ins start in 1-5 s on a quiet machine). */
  startTimeoutMs?: number;
}

async function spawnAndWait(options: SpawnOptions): Promise<StandIn> {
  const { name, command, args, port, env, readyPath, startTimeoutMs = 60_000 } = options;
  const child = new Deno.Command(command, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      if (output.length > 200_000) output = output.slice(-100_000);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5000);
      await status;
      clearTimeout(timer);
    }
    await drained;
  };

  const url = `http://${HOST}:${port}`;
  const deadline = Date.now() + startTimeoutMs;
  while (true) {
    if (exited) {
      await drained;
      throw new Error(`${name} exited before it was ready:\n${output}`);
    }
    try {
      const response = await fetch(url + readyPath);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not answer on ${url} within ${startTimeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, host: HOST, port, output: () => output, stop };
}

/** A generated RSA key pair for Snowflake key-pair auth. */
export interface TestKeyPair {
  /** Encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`). */
  privateKeyPem: string;
  /** Its passphrase. */
  passphrase: string;
  /** SPKI PEM public key (what `ALTER USER ... SET RSA_PUBLIC_KEY` takes, without the armor). */
  publicKeyPem: string;
}

/** Generates a 2048-bit RSA key pair, the private key encrypted like `openssl pkcs8 -v2 aes256`. */
export async function generateKeyPair(passphrase = "test-passphrase-0123"): Promise<TestKeyPair> {
  const { generateKeyPairSync } = await import("node:crypto");
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: {
      type: "pkcs8",
      format: "pem",
      cipher: "aes-256-cbc",
      passphrase,
    },
  });
  return { privateKeyPem: privateKey, passphrase, publicKeyPem: publicKey };
}

/** Options of {@link prodEnv}. */
export interface ProdEnvOptions {
  dataDir: string;
  /** moto's URL (S3_ENDPOINT). */
  s3Endpoint: string;
  bucket: string;
  /** fakesnow adapter (SNOWFLAKE_HOST/PORT/PROTOCOL); a dummy closed port when absent. */
  snowflake?: StandIn;
  /** Path of the private key file (SNOWFLAKE_PRIVATE_KEY_PATH). */
  privateKeyPath?: string;
  passphrase?: string;
  /** Extra or overriding variables. */
  extra?: Record<string, string>;
}

/**
 * Environment for `loadConfig({ env, envFile: false })` in the prod profile, pointing at the
 * stand-ins. Writes a placeholder Spotify token store (prod requires one to exist).
 */
export async function prodEnv(options: ProdEnvOptions): Promise<Record<string, string>> {
  const tokensFile = `${options.dataDir}/spotify_tokens.json`;
  try {
    await Deno.stat(tokensFile);
  } catch {
    await Deno.mkdir(options.dataDir, { recursive: true });
    await Deno.writeTextFile(
      tokensFile,
      JSON.stringify({
        access_token: "test-access-token-0123456789",
        refresh_token: "test-refresh-token-0123456789",
        expires_at: new Date(Date.now() + 3600_000).toISOString(),
        scope: "user-top-read",
      }),
      { mode: 0o600 },
    );
  }
  let keyPath = options.privateKeyPath;
  if (!keyPath) {
    keyPath = `${options.dataDir}/snowflake_key.p8`;
    try {
      await Deno.stat(keyPath);
    } catch {
      const pair = await generateKeyPair("unused-passphrase");
      await Deno.writeTextFile(keyPath, pair.privateKeyPem, { mode: 0o600 });
    }
  }
  return {
    PIPELINE_PROFILE: "prod",
    PIPELINE_DATA_DIR: options.dataDir,
    PIPELINE_LOG_LEVEL: "warn",
    SPOTIFY_CLIENT_ID: "test-client-id",
    SPOTIFY_TOKENS_FILE: tokensFile,
    S3_BUCKET: options.bucket,
    AWS_REGION: "us-east-1",
    S3_ENDPOINT: options.s3Endpoint,
    S3_FORCE_PATH_STYLE: "true",
    SNOWFLAKE_ACCOUNT: "TESTACCT",
    SNOWFLAKE_USER: "PIPELINE_USER",
    SNOWFLAKE_PRIVATE_KEY_PATH: keyPath,
    ...(options.passphrase ? { SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: options.passphrase } : {}),
    SNOWFLAKE_HOST: options.snowflake?.host ?? HOST,
    SNOWFLAKE_PORT: String(options.snowflake?.port ?? freePort()),
    SNOWFLAKE_PROTOCOL: "http",
    SNOWFLAKE_TIMEOUT_SECONDS: "20",
    ...options.extra,
  };
}

/** Sets AWS chain variables for the duration of `body`, restoring the previous values after. */
export async function withAwsEnv<T>(
  vars: Record<string, string | undefined>,
  body: () => Promise<T>,
): Promise<T> {
  const names = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
    ...Object.keys(vars),
  ];
  const saved = new Map(names.map((n) => [n, Deno.env.get(n)]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  };
  apply({ ...TEST_AWS_ENV, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, ...vars });
  try {
    return await body();
  } finally {
    apply(Object.fromEntries(saved));
  }
}

/** Awaits `fn`, asserts it rejects with an instance of `type`, and returns the error. */
export async function rejectsWith<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new Error(
      `expected ${type.name}, got ${error instanceof Error ? error.name : typeof error}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  }
  throw new Error(`expected ${type.name}, but the promise resolved`);
}

const binaries = new Map<string, Promise<string>>();

/**
 * The binary of a Deno version, fetched from npm (`npx deno@<version>`) once per process; the
 * binary itself, not npx's wrapper, so that a signal reaches the program it runs.
 */
export function denoBinary(version: string): Promise<string> {
  let found = binaries.get(version);
  if (!found) {
    found = (async () => {
      const out = await new Deno.Command("npx", {
        args: ["-y", `deno@${version}`, "eval", "console.log(Deno.execPath())"],
        // an older Deno reads the system's CA store only when told (npm through a proxy)
        env: { DENO_TLS_CA_STORE: "system", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const path = new TextDecoder().decode(out.stdout).trim();
      if (!out.success || !path) {
        throw new Error(`npx deno@${version} failed: ${new TextDecoder().decode(out.stderr)}`);
      }
      return path;
    })();
    binaries.set(version, found);
  }
  return found;
}

/** The IAM role the prod tests' storage integration names. */
export const TEST_ROLE_ARN = "arn:aws:iam::123456789012:role/snowflake-spotify-reader";

/** Options of {@link startProdStandIns}. */
export interface ProdStandInsOptions {
  bucket: string;
  /** Prefix of the temp data folder. */
  dataDirPrefix?: string;
  moto?: StartMotoOptions;
  fakesnow?: Partial<StartFakesnowOptions>;
  /** Runs once moto is up (and the bucket made), before fakesnow starts; adds to its options. */
  prepare?: (moto: StandIn) => Promise<Partial<StartFakesnowOptions>>;
}

/** The prod stand-ins of a test; `await using` stops them and removes the data folder. */
export interface ProdStandIns {
  moto: StandIn;
  fakesnow: StandIn;
  pair: Awaited<ReturnType<typeof generateKeyPair>>;
  dataDir: string;
  keyPath: string;
  /** The prod env over both stand-ins, the key pair's private key file, and `S3_PREFIX`. */
  env(prefix?: string): Promise<Record<string, string>>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * moto with the bucket, a key pair whose public key fakesnow verifies for PIPELINE_USER, and the
 * prod settings over both (the set-up every prod test starts from).
 */
export async function startProdStandIns(options: ProdStandInsOptions): Promise<ProdStandIns> {
  const moto = await startMoto(options.moto);
  const dataDir = await Deno.makeTempDir({ prefix: options.dataDirPrefix ?? "prod_" });
  let fakesnow: StandIn | undefined;
  try {
    const pair = await generateKeyPair();
    const keyPath = `${dataDir}/rsa_key.p8`;
    await Deno.writeTextFile(keyPath, pair.privateKeyPem, { mode: 0o600 });
    await createBucket(moto, options.bucket);
    const prepared = await options.prepare?.(moto);
    fakesnow = await startFakesnow({
      s3Endpoint: moto.url,
      accounts: ["TESTACCT"],
      publicKeys: { PIPELINE_USER: pair.publicKeyPem },
      ...options.fakesnow,
      ...prepared,
    });
    const sf = fakesnow;
    return {
      moto,
      fakesnow: sf,
      pair,
      dataDir,
      keyPath,
      env: (prefix = "lake") =>
        prodEnv({
          dataDir,
          s3Endpoint: moto.url,
          bucket: options.bucket,
          snowflake: sf,
          privateKeyPath: keyPath,
          passphrase: pair.passphrase,
          extra: { S3_PREFIX: prefix, SNOWFLAKE_AWS_ROLE_ARN: TEST_ROLE_ARN },
        }),
      async [Symbol.asyncDispose]() {
        await sf.stop();
        await moto.stop();
        await Deno.remove(dataDir, { recursive: true });
      },
    };
  } catch (error) {
    await fakesnow?.stop();
    await moto.stop();
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }
}
