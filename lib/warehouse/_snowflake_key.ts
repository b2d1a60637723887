/**
 * Snowflake credentials: the connection options of each authenticator, and the service user's
 * private key (a file or PEM, PKCS#8, decrypted up front) with its public key's fingerprint.
 * @module
 */

import { ConfigError } from "../errors.ts";
import type { SnowflakeWarehouseConfig } from "./_snowflake_names.ts";

export interface AuthOptions {
  authenticator: string;
  privateKey?: string;
  password?: string;
  token?: string;
  /** `SHA256:<base64>` of the public key (what Snowflake shows as RSA_PUBLIC_KEY_FP). */
  fingerprint?: string;
}

/** Connection options for the configured authenticator; decrypts the private key up front. */
export async function authOptions(config: SnowflakeWarehouseConfig): Promise<AuthOptions> {
  switch (config.authenticator) {
    case "SNOWFLAKE_JWT": {
      const { privateKey, fingerprint } = await loadPrivateKey(config);
      return { authenticator: "SNOWFLAKE_JWT", privateKey, fingerprint };
    }
    case "SNOWFLAKE":
      return { authenticator: "SNOWFLAKE", password: config.password };
    case "PROGRAMMATIC_ACCESS_TOKEN":
      return { authenticator: "PROGRAMMATIC_ACCESS_TOKEN", token: config.token };
    case "OAUTH":
      return { authenticator: "OAUTH", token: config.token };
  }
}

/** A loaded private key: unencrypted PKCS#8 PEM and its public key's fingerprint. */
export interface LoadedPrivateKey {
  privateKey: string;
  fingerprint: string;
  /** Base64 DER (SPKI) public key, as `ALTER USER ... SET RSA_PUBLIC_KEY` takes it. */
  publicKeyBase64: string;
}

/**
 * Reads the key-pair private key (file or PEM text), decrypting it with the passphrase.
 * @throws {ConfigError} naming the setting when the key is missing, unreadable, not a private
 *   key, encrypted without a passphrase, or the passphrase is wrong.
 */
export async function loadPrivateKey(config: SnowflakeWarehouseConfig): Promise<LoadedPrivateKey> {
  const source = config.privateKeyPath
    ? `SNOWFLAKE_PRIVATE_KEY_PATH ("${config.privateKeyPath}")`
    : "SNOWFLAKE_PRIVATE_KEY";
  let pem: string;
  if (config.privateKeyPath) {
    try {
      pem = await Deno.readTextFile(config.privateKeyPath);
    } catch (error) {
      throw new ConfigError(
        `${source}: cannot read the private key file (${
          error instanceof Error ? error.name : error
        })`,
      );
    }
  } else if (config.privateKey) {
    // a PEM in an env var often arrives with literal "\n"
    pem = config.privateKey.includes("\\n")
      ? config.privateKey.replaceAll("\\n", "\n")
      : config.privateKey;
  } else {
    throw new ConfigError(
      "SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY is required for key-pair auth",
    );
  }
  const encrypted = pem.includes("ENCRYPTED PRIVATE KEY") || /Proc-Type: 4,ENCRYPTED/.test(pem);
  if (!/-----BEGIN (ENCRYPTED |RSA )?PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError(
      `${source} is not a PEM private key (expected "-----BEGIN PRIVATE KEY-----" or "-----BEGIN ENCRYPTED PRIVATE KEY-----", PKCS#8)`,
    );
  }
  if (encrypted && !config.privateKeyPassphrase) {
    throw new ConfigError(
      `${source} is encrypted: set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE`,
    );
  }
  const crypto = await import("node:crypto");
  let key: import("node:crypto").KeyObject;
  try {
    key = crypto.createPrivateKey({
      key: pem,
      format: "pem",
      ...(encrypted ? { passphrase: config.privateKeyPassphrase } : {}),
    });
  } catch {
    throw new ConfigError(
      encrypted
        ? `${source}: cannot decrypt the private key: SNOWFLAKE_PRIVATE_KEY_PASSPHRASE is wrong`
        : `${source}: cannot read the private key (corrupt or unsupported PEM)`,
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new ConfigError(
      `${source}: Snowflake key-pair auth needs an RSA key, found ${key.asymmetricKeyType}`,
    );
  }
  const der = crypto.createPublicKey(key).export({ type: "spki", format: "der" });
  const fingerprint = "SHA256:" + crypto.createHash("sha256").update(der).digest("base64");
  return {
    privateKey: key.export({ type: "pkcs8", format: "pem" }) as string,
    fingerprint,
    publicKeyBase64: der.toString("base64"),
  };
}
