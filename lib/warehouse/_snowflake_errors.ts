/**
 * Snowflake's failures as one-line errors that name the target and the fix: a failed login, a
 * failed statement.
 * @module
 */

import type { SnowflakeError } from "snowflake-sdk";
import { ConfigError, StorageError } from "../errors.ts";
import { oneLine } from "../text.ts";
import { qualified, type SnowflakeWarehouseConfig } from "./_snowflake_names.ts";

export function describeTarget(config: SnowflakeWarehouseConfig): string {
  const host = config.host ?? `${config.account}.snowflakecomputing.com`;
  return `${config.protocol ?? "https"}://${host}${config.port ? `:${config.port}` : ""}`;
}

/** Clear error for a failed login. */
export function loginError(
  error: unknown,
  config: SnowflakeWarehouseConfig,
  fingerprint?: string,
): Error {
  if (error instanceof StorageError || error instanceof ConfigError) return error;
  const e = error as SnowflakeError & { response?: { status?: number; statusCode?: number } };
  const code = String(e?.code ?? "");
  const message = oneLine(e?.message ?? String(error));
  const where = describeTarget(config);
  const who = `user ${config.user} on account ${config.account}`;
  const status = e?.response?.status ?? e?.response?.statusCode ?? httpStatusOf(message);
  const causeCode = (e?.cause as { code?: string } | undefined)?.code ?? "";
  if (/ENOTFOUND|EAI_AGAIN/.test(`${causeCode} ${message}`) && !config.host) {
    return new StorageError(
      `Unknown Snowflake account "${config.account}": ${where} does not resolve`,
      {
        hint: "SNOWFLAKE_ACCOUNT is <orgname>-<account_name> (or the account locator with region).",
        cause: error,
      },
    );
  }
  if (status === 403 || status === 404) {
    return new StorageError(
      `Unknown Snowflake account "${config.account}": ${where} refused the login (HTTP ${status})`,
      {
        hint: "SNOWFLAKE_ACCOUNT is <orgname>-<account_name> (or the account locator with region).",
        cause: error,
      },
    );
  }
  if (code === "390144" || /JWT token is invalid/i.test(message)) {
    return new StorageError(
      `Snowflake rejected the key-pair login for ${who} (390144 JWT token is invalid)`,
      {
        hint:
          `The public key set with ALTER USER ${config.user} SET RSA_PUBLIC_KEY must match the private key${
            fingerprint
              ? ` (its fingerprint is ${fingerprint}; compare DESC USER ${config.user} → RSA_PUBLIC_KEY_FP)`
              : ""
          }, and SNOWFLAKE_USER must name that user.`,
        cause: error,
      },
    );
  }
  if (code === "390100" || /Incorrect username or password/i.test(message)) {
    return new StorageError(`Snowflake rejected the password for ${who} (390100)`, {
      hint: "Check SNOWFLAKE_USER and SNOWFLAKE_PASSWORD.",
      cause: error,
    });
  }
  if (/^3901\d\d$|^3903\d\d$/.test(code)) {
    return new StorageError(`Snowflake refused the login for ${who} (${code}): ${message}`, {
      cause: error,
    });
  }
  if (
    code === "401001" ||
    /ECONNREFUSED|ENOTFOUND|ECONNRESET|ETIMEDOUT|Network error|could not reach/i.test(
      `${causeCode} ${message}`,
    )
  ) {
    return new StorageError(`Cannot reach Snowflake at ${where}: ${causeCode || message}`, {
      hint: "Check the network, SNOWFLAKE_ACCOUNT and SNOWFLAKE_HOST/PORT.",
      cause: error,
    });
  }
  return new StorageError(
    `Snowflake login failed for ${who} at ${where}: ${code ? `${code} ` : ""}${message}`,
    {
      cause: error,
    },
  );
}

/** Clear error for a failed statement. */
export function statementError(
  error: unknown,
  sql: string,
  config: SnowflakeWarehouseConfig,
): StorageError {
  const e = error as SnowflakeError;
  const code = String(e?.code ?? "");
  const text = String(e?.message ?? error);
  const message = oneLine(text);
  const what = firstLine(sql);
  const setupHint = "Run `deno task load --setup` (review) then `deno task load --setup --apply`.";
  if (code === "000630" || /statement or warehouse timeout/i.test(message)) {
    return new StorageError(
      `Snowflake statement timed out after ${config.timeoutSeconds} s (SNOWFLAKE_TIMEOUT_SECONDS): ${what}`,
      { cause: error },
    );
  }
  if (/Stage '.*' does not exist or not authorized/i.test(message)) {
    return new StorageError(
      `Snowflake stage ${qualified(config, config.stage)} does not exist or the role cannot use it`,
      { hint: setupHint, cause: error },
    );
  }
  if (
    /Integration '.*' does not exist|not allowed by integration|storage integration/i.test(message)
  ) {
    return new StorageError(
      `Snowflake storage integration ${config.storageIntegration} is missing or does not allow the bucket: ${message}`,
      { hint: setupHint, cause: error },
    );
  }
  if (/File format '.*' does not exist/i.test(message)) {
    return new StorageError(
      `Snowflake file format ${
        qualified(config, config.fileFormat)
      } does not exist or the role cannot use it`,
      { hint: setupHint, cause: error },
    );
  }
  if (/Error assuming AWS_ROLE/i.test(message)) {
    return new StorageError(
      `Snowflake cannot assume the IAM role of storage integration ${config.storageIntegration} (${
        code || "error"
      }): ${message.replace(/^\d{6} \(\w+\): /, "")}`,
      {
        hint: `The role's trust policy (IAM → Roles → ${
          config.awsRoleArn ?? "SNOWFLAKE_AWS_ROLE_ARN"
        } → Trust relationships) must allow sts:AssumeRole to the integration's STORAGE_AWS_IAM_USER_ARN with sts:ExternalId = its STORAGE_AWS_EXTERNAL_ID: compare with \`DESC INTEGRATION ${config.storageIntegration}\` (\`deno task load --setup --apply\` prints the policy to paste; IAM takes a few seconds to apply a change).`,
        cause: error,
      },
    );
  }
  if (/Failed to access remote file: access denied|Access Denied|AccessDenied/i.test(message)) {
    return new StorageError(
      `Snowflake was denied access to the stage's S3 files (${code || "error"}): ${
        message.replace(/^\d{6} \(\w+\): /, "")
      }`,
      {
        hint:
          "The IAM role's permissions policy must allow s3:GetObject and s3:GetObjectVersion on the bucket/prefix's objects and s3:ListBucket on the bucket for that prefix; if it does, check its trust policy against `DESC INTEGRATION` (docs/production.md, \"S3 bucket and IAM role\").",
        cause: error,
      },
    );
  }
  if (/^COPY INTO/i.test(sql.trim())) {
    // Snowflake's COPY error text names the file, line/row and column of the first error
    const firstRows = text.replace(/^\d{6} \(\w+\): /, "").split("\n").map((l) => l.trim())
      .filter(Boolean).slice(0, 4).join(" | ");
    return new StorageError(`COPY INTO failed (${code || "error"}): ${firstRows}`, {
      hint: "Check the Parquet file's columns and types against the raw table.",
      cause: error,
    });
  }
  if (code === "401001" || /Network error|ECONNREFUSED|ECONNRESET/i.test(message)) {
    return new StorageError(`Lost the connection to Snowflake during: ${what}`, { cause: error });
  }
  return new StorageError(
    `Snowflake statement failed (${code || "error"}): ${message} — in: ${what}`,
    {
      cause: error,
    },
  );
}

function httpStatusOf(message: string): number | undefined {
  const m = /\b(?:status(?: code)?|HTTP)\s*:?\s*(\d{3})\b/i.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** The first line of a statement (for messages). */
export function firstLine(sql: string): string {
  const line = sql.trim().split("\n")[0] ?? "";
  return line.length > 120 ? line.slice(0, 117) + "..." : line;
}
