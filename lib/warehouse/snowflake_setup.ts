/**
 * One-time Snowflake setup for `deno task load --setup [--apply]`: prints the SQL for review
 * (role, warehouse, database, schema, grants; the S3 storage integration; a named Parquet file
 * format; the external stage; the raw table) and, with `--apply`, runs it as ACCOUNTADMIN, then
 * reads `DESC INTEGRATION` and prints the exact trust policy the AWS role needs.
 *
 * Every statement is idempotent: `IF NOT EXISTS` for objects whose identity matters (the
 * integration keeps its external id, the stage its name), `ALTER ... SET` to converge their
 * settings, `OR REPLACE` for the file format (a pure definition).
 * @module
 */

import { STREAM_NAMES, STREAMS } from "../streams/registry.ts";
import type { Config, StoreConfig } from "../config.ts";
import { ConfigError, StorageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { loadPrivateKey } from "./_snowflake_key.ts";
import {
  createRawTableSql,
  qualified,
  quoteIdent,
  rawTableName,
  type SnowflakeWarehouseConfig,
  stageLocation,
} from "./_snowflake_names.ts";
import { currentStageUrl, sameStageUrl } from "./snowflake.ts";
import { openSnowflakeSession } from "./snowflake_session.ts";

/** Options of {@link runSnowflakeSetup}. */
export interface RunSnowflakeSetupOptions {
  /** Run the SQL (otherwise only print it). */
  apply: boolean;
  log: Logger;
  /** Where the text goes (default: stdout). */
  write?: (text: string) => void;
}

const STAGE_COMMENT = "external stage over the bucket/prefix";

/** Role the setup runs as with `--apply` (integrations are account-level objects). */
export const SETUP_ROLE = "ACCOUNTADMIN";
const ROLE_ARN_PLACEHOLDER = "<SNOWFLAKE_AWS_ROLE_ARN>";

/** One step of the setup. */
export interface SetupStatement {
  /** What it is for, printed as a comment. */
  comment: string;
  sql: string;
}

/**
 * Prints (and with `apply`, runs) the one-time Snowflake setup SQL.
 *
 * @example
 * await runSnowflakeSetup(config, { apply: false, log }); // review
 * await runSnowflakeSetup(config, { apply: true, log }); // run as ACCOUNTADMIN
 */
export async function runSnowflakeSetup(
  config: Config,
  options: RunSnowflakeSetupOptions,
): Promise<void> {
  const write = options.write ?? ((text: string) => console.log(text));
  if (config.warehouse.kind !== "snowflake" || config.store.kind !== "s3") {
    throw new ConfigError(
      "`load --setup` sets up Snowflake and S3: run it with PIPELINE_PROFILE=prod",
    );
  }
  const sf = config.warehouse;
  const store = config.store;
  const statements = snowflakeSetupSql(sf, store);
  let publicKey: string | undefined;
  if (sf.authenticator === "SNOWFLAKE_JWT") {
    try {
      publicKey = (await loadPrivateKey(sf)).publicKeyBase64;
    } catch {
      publicKey = undefined;
    }
  }

  write(setupHeader(sf, store, options.apply, publicKey));
  write(statements.map((s) => `-- ${s.comment}\n${s.sql};`).join("\n\n"));

  if (!options.apply) {
    write(
      "\n-- Then DESC INTEGRATION gives STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID for the AWS role's trust policy:\n" +
        trustPolicyJson("<STORAGE_AWS_IAM_USER_ARN>", "<STORAGE_AWS_EXTERNAL_ID>") +
        "\n\n-- If the stage already exists with another URL (S3_BUCKET/S3_PREFIX changed), --apply replaces it." +
        "\n-- Review the SQL, then run it with: deno task load --setup --apply",
    );
    return;
  }
  if (!sf.awsRoleArn) {
    throw new ConfigError(
      'SNOWFLAKE_AWS_ROLE_ARN is required for `load --setup --apply`: the IAM role Snowflake assumes to read the bucket (docs/production.md, "S3 bucket and IAM role")',
    );
  }

  const log = options.log.child({ setup: "snowflake" });
  const session = await openSnowflakeSession(sf, {
    log,
    role: SETUP_ROLE,
    noDefaultNamespace: true,
  });
  try {
    // A stage from an earlier S3_BUCKET/S3_PREFIX: CREATE ... IF NOT EXISTS would keep it as it is.
    const url = await currentStageUrl(session, sf).catch(() => undefined);
    if (url !== undefined && !sameStageUrl(url, stageLocation(store))) {
      const note = `The stage ${qualified(sf, sf.stage)} reads ${url}; S3_BUCKET/S3_PREFIX say ${
        stageLocation(store)
      }: replacing it`;
      log.warn(note);
      write(`\n-- ${note} (CREATE OR REPLACE STAGE; its grant is given again below).`);
      const stage = statements.find((st) => st.comment === STAGE_COMMENT)!;
      stage.sql = stage.sql.replace(/^CREATE STAGE IF NOT EXISTS/, "CREATE OR REPLACE STAGE");
    }
    for (const [i, statement] of statements.entries()) {
      log.info(`setup ${i + 1}/${statements.length}: ${statement.comment}`);
      await session.execute(statement.sql);
    }
    const rows = await session.execute(`DESC INTEGRATION ${quoteIdent(sf.storageIntegration)}`);
    const property = (name: string) => {
      const row = rows.find((r) => String(r.property ?? r.PROPERTY).toUpperCase() === name);
      return row ? String(row.property_value ?? row.PROPERTY_VALUE ?? "") : "";
    };
    const userArn = property("STORAGE_AWS_IAM_USER_ARN");
    const externalId = property("STORAGE_AWS_EXTERNAL_ID");
    if (!userArn || !externalId) {
      throw new StorageError(
        `DESC INTEGRATION ${sf.storageIntegration} returned no STORAGE_AWS_IAM_USER_ARN/STORAGE_AWS_EXTERNAL_ID`,
      );
    }
    write(
      `\n-- Setup applied (${statements.length} statements).\n` +
        `-- Now set this as the trust policy of ${sf.awsRoleArn} (IAM → Roles → Trust relationships):\n` +
        trustPolicyJson(userArn, externalId),
    );
  } finally {
    await session.close();
  }
}

/** The setup statements, in order. */
export function snowflakeSetupSql(
  sf: SnowflakeWarehouseConfig,
  store: Extract<StoreConfig, { kind: "s3" }>,
): SetupStatement[] {
  const role = quoteIdent(sf.role ?? "SPOTIFY_PIPELINE");
  const warehouse = quoteIdent(sf.warehouse);
  const database = quoteIdent(sf.database);
  const schema = `${database}.${quoteIdent(sf.schema)}`;
  const user = quoteIdent(sf.user);
  const integration = quoteIdent(sf.storageIntegration);
  const fileFormat = qualified(sf, sf.fileFormat);
  const stage = qualified(sf, sf.stage);
  const location = stageLocation(store);
  const roleArn = sqlString(sf.awsRoleArn ?? ROLE_ARN_PLACEHOLDER);
  const formatName = sqlString(
    [sf.database, sf.schema, sf.fileFormat].map((p) => p.toUpperCase()).join("."),
  );
  return [
    { comment: "role the pipeline runs as", sql: `CREATE ROLE IF NOT EXISTS ${role}` },
    {
      comment: "an extra-small warehouse that suspends after a minute",
      sql:
        `CREATE WAREHOUSE IF NOT EXISTS ${warehouse} WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE`,
    },
    { comment: "database", sql: `CREATE DATABASE IF NOT EXISTS ${database}` },
    {
      comment: "schema of the raw table, stage and file format",
      sql: `CREATE SCHEMA IF NOT EXISTS ${schema}`,
    },
    {
      comment: "warehouse for the role",
      sql: `GRANT USAGE ON WAREHOUSE ${warehouse} TO ROLE ${role}`,
    },
    {
      comment: "database for the role (dbt creates its schema in it)",
      sql: `GRANT USAGE, CREATE SCHEMA ON DATABASE ${database} TO ROLE ${role}`,
    },
    {
      comment: "raw schema for the role",
      sql: `GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA ${schema} TO ROLE ${role}`,
    },
    { comment: "the role for the pipeline's user", sql: `GRANT ROLE ${role} TO USER ${user}` },
    {
      comment: "S3 storage integration: Snowflake assumes the IAM role to read the bucket",
      sql: `CREATE STORAGE INTEGRATION IF NOT EXISTS ${integration}\n` +
        `  TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' ENABLED = TRUE\n` +
        `  STORAGE_AWS_ROLE_ARN = ${roleArn}\n` +
        `  STORAGE_ALLOWED_LOCATIONS = (${sqlString(location)})`,
    },
    {
      comment: "converge the integration's settings (keeps its external id)",
      sql:
        `ALTER STORAGE INTEGRATION ${integration} SET STORAGE_AWS_ROLE_ARN = ${roleArn} STORAGE_ALLOWED_LOCATIONS = (${
          sqlString(location)
        })`,
    },
    {
      comment: "integration for the role",
      sql: `GRANT USAGE ON INTEGRATION ${integration} TO ROLE ${role}`,
    },
    {
      comment: "Parquet file format (logical types: dates, timestamps, decimals)",
      sql: `CREATE OR REPLACE FILE FORMAT ${fileFormat} TYPE = PARQUET USE_LOGICAL_TYPE = TRUE`,
    },
    {
      comment: STAGE_COMMENT,
      sql: `CREATE STAGE IF NOT EXISTS ${stage}\n` +
        `  URL = ${sqlString(location)}\n` +
        `  STORAGE_INTEGRATION = ${integration}\n` +
        `  FILE_FORMAT = (FORMAT_NAME = ${formatName})`,
    },
    {
      comment: "file format and stage for the role",
      sql: `GRANT USAGE ON FILE FORMAT ${fileFormat} TO ROLE ${role}`,
    },
    { comment: "stage for the role", sql: `GRANT USAGE ON STAGE ${stage} TO ROLE ${role}` },
    ...STREAM_NAMES.flatMap((name) => [
      {
        comment: `raw table ${name} (the load step also creates it if missing)`,
        sql: createRawTableSql(sf, STREAMS[name]),
      },
      {
        comment: `raw table ${name} for the role (UPDATE: the user_id migration fills old rows)`,
        sql: `GRANT SELECT, INSERT, UPDATE ON TABLE ${
          qualified(sf, rawTableName(STREAMS[name]))
        } TO ROLE ${role}`,
      },
    ]),
  ];
}

/** The trust policy the AWS role needs so Snowflake's IAM user can assume it. */
export function trustPolicyJson(iamUserArn: string, externalId: string): string {
  return JSON.stringify(
    {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { AWS: iamUserArn },
          Action: "sts:AssumeRole",
          Condition: { StringEquals: { "sts:ExternalId": externalId } },
        },
      ],
    },
    null,
    2,
  );
}

function sqlString(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

function setupHeader(
  sf: SnowflakeWarehouseConfig,
  store: Extract<StoreConfig, { kind: "s3" }>,
  apply: boolean,
  publicKey: string | undefined,
): string {
  const lines = [
    `-- One-time Snowflake setup for account ${sf.account}, S3 location ${stageLocation(store)}`,
    apply
      ? `-- Running as role ${SETUP_ROLE} (user ${sf.user}).`
      : `-- Review it, then run: deno task load --setup --apply (as a user with ${SETUP_ROLE}),`,
    ...(apply ? [] : ["-- or paste it into a worksheet as ACCOUNTADMIN."]),
  ];
  if (publicKey) {
    lines.push(
      `-- The key-pair user needs this public key (from SNOWFLAKE_PRIVATE_KEY${
        sf.privateKeyPath ? "_PATH" : ""
      }); not part of --apply:`,
      `--   ALTER USER ${quoteIdent(sf.user)} SET RSA_PUBLIC_KEY = '${publicKey}';`,
    );
  }
  if (!sf.awsRoleArn) {
    lines.push(
      `-- SNOWFLAKE_AWS_ROLE_ARN is not set: ${ROLE_ARN_PLACEHOLDER} below stands for it.`,
    );
  }
  return lines.join("\n") + "\n";
}
