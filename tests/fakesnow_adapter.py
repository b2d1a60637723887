"""TEST-ONLY protocol adapter in front of fakesnow's server app (never used by product code).

fakesnow (https://github.com/tekumara/fakesnow) runs Snowflake SQL on DuckDB and serves the
Snowflake REST protocol the Python connector speaks. The Node.js driver (npm:snowflake-sdk) and
the pipeline's load step need a few things it does not do. This adapter bridges exactly those
gaps; fakesnow + DuckDB still parse and run every statement, store every object and produce
every result:

Protocol (translation only)
  1. Result sets: fakesnow answers SELECT/DDL/COPY with Arrow (`rowsetBase64`); the Node driver
     reads only JSON rowsets. Arrow is decoded and re-encoded in Snowflake's JSON encodings
     (FIXED/REAL/TEXT as strings, DATE as days since the epoch, TIME/TIMESTAMP_NTZ/LTZ as
     "seconds.fraction", TIMESTAMP_TZ as "seconds.fraction tz" with tz = 1440 + offset minutes,
     BOOLEAN as "1"/"0", VARIANT/ARRAY/OBJECT as JSON text, BINARY as hex).
  2. Envelope: the driver expects `code`, `returned` and `chunks`; they are added.
  3. Errors: fakesnow answers an unhandled statement with HTTP 500, which the driver retries for
     minutes; it is answered as Snowflake answers a failed statement (HTTP 200, success false,
     code + message).

Missing features (implemented here with SQL on fakesnow's own DuckDB)
  4. CREATE STORAGE INTEGRATION has no handler: integrations are stored in a DuckDB table
     (`_fs_global._fs_adapter.integrations`) with a generated IAM user ARN and external id, and
     DESC INTEGRATION reads them back in Snowflake's four-column shape. CREATE STAGE naming a
     storage integration that does not exist fails like Snowflake.
  5. A stage's FILE_FORMAT is ignored by fakesnow, and COPY's FILE_FORMAT = (FORMAT_NAME = ...)
     is not supported: named formats are resolved from fakesnow's own file-format table
     (`_fs_file_formats`), a stage's format is recorded and used when COPY names none.
  6. COPY INTO reads S3 through DuckDB's httpfs, which cannot be downloaded at run time here: it
     is loaded from the `duckdb-extension-httpfs` wheel, with an S3 secret pointing at moto
     (stands for the credentials a storage integration provides in Snowflake).
  7. COPY INTO FROM @stage/<path>: fakesnow resolves only a bare stage name; the path is appended
     to the stage URL. INCLUDE_METADATA = (col = METADATA$FILENAME | METADATA$START_SCAN_TIME)
     is not supported: those target columns are filled per file with the file's path relative to
     the stage and the statement's start time, as Snowflake does.
  8. ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS is not implemented: it is recorded per
     session and enforced by interrupting DuckDB, answered with Snowflake's error 000630.
  9. Access-control and compute statements (CREATE ROLE/WAREHOUSE, GRANT, ...) have no DuckDB
     meaning: they are passed to fakesnow's own `nop_regexes` session feature (no-ops).
 10. fakesnow bug: CREATE TABLE IF NOT EXISTS on an existing table deletes that table's load
     history (so the next COPY loads the same file again). Snowflake leaves the table and its load
     metadata alone and answers "<name> already exists, statement succeeded."; so does the adapter.
 11. DuckDB only allows unqualified TEMPORARY tables/views ("temp" catalog), while dbt-snowflake
     creates `temporary table DB.SCHEMA.x__dbt_tmp` (unit tests, incremental merges): a qualified
     temporary table or view is created as a regular one (it is dropped or replaced by dbt; it is
     not session-scoped in the stand-in).
 12. fakesnow's server answers BEGIN with an error (it describes the last statement as a table
     named BEGIN) and dbt adds a query comment to it: a bare BEGIN/COMMIT/ROLLBACK (comments
     dropped) is run on the session's fakesnow cursor, as fakesnow's Python API runs it, and
     answered "Statement executed successfully.".
 13. Authentication: fakesnow accepts any login. With --public-key USER=PEM the key-pair JWT of
     that user is verified (RS256 signature, iss ACCOUNT.USER.SHA256:<fingerprint>, sub, exp) and
     a bad one is refused with Snowflake's 390144; with FAKESNOW_ADAPTER_PASSWORDS passwords are
     checked (390100); with --account a login naming another account gets HTTP 403, as from
     Snowflake's front door for an unknown account.

Run: .venv/bin/python tests/fakesnow_adapter.py --host 127.0.0.1 --port PORT [--s3-endpoint URL]
"""

from __future__ import annotations

import argparse
import base64
import contextvars
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
import uvicorn
from sqlglot import exp
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from snowflake.connector.errors import ProgrammingError

import fakesnow.copy_into as fs_copy
import fakesnow.cursor as fs_cursor
import fakesnow.server as fs_server
import fakesnow.transforms.stage as fs_stage
from fakesnow.expr import normalise_ident

ADAPTER_SCHEMA = "_fs_global._fs_adapter"

# Statements with no meaning in DuckDB (access control, compute): fakesnow's nop_regexes.
NOP_REGEXES = [
    r"\s*CREATE\s+(OR\s+REPLACE\s+)?ROLE\b",
    r"\s*CREATE\s+(OR\s+REPLACE\s+)?WAREHOUSE\b",
    r"\s*CREATE\s+(OR\s+REPLACE\s+)?USER\b",
    r"\s*ALTER\s+(USER|WAREHOUSE|ROLE)\b",
    r"\s*DROP\s+(ROLE|WAREHOUSE|USER)\b",
    r"\s*GRANT\b",
    r"\s*REVOKE\b",
    r"\s*ALTER\s+(STORAGE\s+)?INTEGRATION\b",
]


class Settings:
    s3_key_id: str = "fakesnow-adapter"
    s3_secret: str = "fakesnow-adapter"
    check_trust: bool = False
    # days the adapter's clock for Snowflake's 64-day load-metadata rule runs ahead of real time
    clock_ahead_days: int = 0
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    accounts: set[str] = set()
    public_keys: dict[str, str] = {}
    passwords: dict[str, str] = {}


SETTINGS = Settings()
# session token -> statement timeout (seconds)
STATEMENT_TIMEOUTS: dict[str, int] = {}
# token of the request being served (for the COPY patch and the timeout)
CURRENT_COPY: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("copy", default=None)


def SnowflakeError(code: str, message: str, sqlstate: str = "42000") -> ProgrammingError:  # noqa: N802
    """A Snowflake-style statement error; fakesnow answers it as a failed statement."""
    return ProgrammingError(msg=message, errno=int(code), sqlstate=sqlstate)


# --------------------------------------------------------------------------------------------
# DuckDB set-up: httpfs from the wheel, the S3 secret, the adapter's tables
# --------------------------------------------------------------------------------------------


def setup_duckdb() -> None:
    conn = fs_server.shared_fs.duck_conn
    import duckdb_extension_httpfs

    ext = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not ext.exists():
        raise SystemExit(f"httpfs extension not found at {ext} (duckdb {duckdb.__version__})")
    conn.execute(f"LOAD '{ext}'")
    if SETTINGS.s3_endpoint:
        endpoint = re.sub(r"^https?://", "", SETTINGS.s3_endpoint).rstrip("/")
        use_ssl = SETTINGS.s3_endpoint.startswith("https://")
        conn.execute(
            f"CREATE OR REPLACE SECRET adapter_s3 (TYPE S3, KEY_ID '{SETTINGS.s3_key_id}', SECRET '{SETTINGS.s3_secret}', "
            f"REGION '{SETTINGS.s3_region}', ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL {str(use_ssl).lower()})"
        )
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ADAPTER_SCHEMA}")
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {ADAPTER_SCHEMA}.integrations (
            name VARCHAR PRIMARY KEY, type VARCHAR, provider VARCHAR, enabled BOOLEAN,
            role_arn VARCHAR, allowed_locations VARCHAR, blocked_locations VARCHAR,
            iam_user_arn VARCHAR, external_id VARCHAR, created_on TIMESTAMPTZ)"""
    )
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {ADAPTER_SCHEMA}.stages (
            database_name VARCHAR, schema_name VARCHAR, name VARCHAR,
            storage_integration VARCHAR, file_format VARCHAR,
            PRIMARY KEY (database_name, schema_name, name))"""
    )


def adapter_conn() -> duckdb.DuckDBPyConnection:
    return fs_server.shared_fs.duck_conn.cursor()


# --------------------------------------------------------------------------------------------
# COPY INTO: stage paths, named file formats, INCLUDE_METADATA (patched into fakesnow)
# --------------------------------------------------------------------------------------------

_original_copy_into = fs_copy.copy_into
_original_inserts = fs_copy._inserts


def split_stage_reference(var: str) -> tuple[str, str]:
    """'"DB"."S"."STAGE"/a/b/' -> ('"DB"."S"."STAGE"', 'a/b/') (quotes respected)."""
    in_quotes = False
    for i, ch in enumerate(var):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "/" and not in_quotes:
            return var[:i], var[i + 1 :]
    return var, ""


def resolve_file_format(name: str, database: str | None, schema: str | None) -> dict[str, Any]:
    catalog, schema_name, fmt = fs_stage.parts_from_var(name, database, schema)
    row = (
        adapter_conn()
        .execute(
            "SELECT options FROM _fs_global._fs_information_schema._fs_file_formats "
            "WHERE database_name = ? AND schema_name = ? AND name = ?",
            [catalog, schema_name, fmt],
        )
        .fetchone()
    )
    if not row:
        raise SnowflakeError(
            "002003", f"SQL compilation error:\nFile format '{catalog}.{schema_name}.{fmt}' does not exist or not authorized.", "02000"
        )
    return json.loads(row[0])


def format_property(options: dict[str, Any]) -> exp.CopyParameter:
    return exp.CopyParameter(
        this=exp.Var(this="FILE_FORMAT"),
        expressions=[exp.Property(this=exp.Var(this="TYPE"), value=exp.Var(this=str(options["TYPE"]).upper()))],
    )


def patched_copy_into(duck_conn, current_database, current_schema, expr: exp.Copy, params=None):  # noqa: ANN001, ANN201
    source = expr.args["files"][0]
    stage_key: tuple[str, str, str] | None = None
    stage_url = ""
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Var) and source.this.this.startswith("@"):
        name, path = split_stage_reference(source.this.this[1:])
        stage_key = fs_stage.parts_from_var(name, current_database, current_schema)
        stage_url = fs_copy.stage_url_from_var(name, duck_conn, current_database, current_schema)
        if not stage_url.endswith("/"):
            stage_url += "/"
        url = stage_url + path.lstrip("/")
        expr.args["files"][0] = exp.Table(this=exp.Literal.string(url))

    metadata: dict[str, str] = {}
    params_list = list(expr.args.get("params") or [])
    new_params = []
    has_format = False
    for param in params_list:
        var = param.this.name.upper() if isinstance(param.this, exp.Var) else ""
        if var == "INCLUDE_METADATA":
            tuple_ = param.expression
            items = tuple_.expressions if isinstance(tuple_, exp.Tuple) else [tuple_.this if isinstance(tuple_, exp.Paren) else tuple_]
            for eq in items:
                column = eq.this.name if isinstance(eq.this, exp.Column) else str(eq.this)
                field = eq.expression.name.upper() if isinstance(eq.expression, exp.Column) else str(eq.expression).upper()
                if field not in ("METADATA$FILENAME", "METADATA$START_SCAN_TIME"):
                    raise SnowflakeError("009999", f"{field} in INCLUDE_METADATA is not supported by the test adapter", "0A000")
                metadata[column.upper()] = field
            continue
        if var == "FILE_FORMAT":
            has_format = True
            props = {p.this.name.upper(): p.args.get("value") for p in param.expressions if isinstance(p, exp.Property)}
            if "FORMAT_NAME" in props and "TYPE" not in props:
                value = props["FORMAT_NAME"]
                name = value.this if isinstance(value, exp.Literal) else value.sql(dialect="snowflake")
                param = format_property(resolve_file_format(name, current_database, current_schema))
        new_params.append(param)
    if not has_format and stage_key:
        row = (
            adapter_conn()
            .execute(
                f"SELECT file_format FROM {ADAPTER_SCHEMA}.stages WHERE database_name = ? AND schema_name = ? AND name = ?",
                list(stage_key),
            )
            .fetchone()
        )
        if row and row[0]:
            fmt = json.loads(row[0])
            options = resolve_file_format(fmt["FORMAT_NAME"], current_database, current_schema) if "FORMAT_NAME" in fmt else fmt
            new_params.append(format_property(options))
    uncertain = False
    kept = []
    for param in new_params:
        var = param.this.name.upper() if isinstance(param.this, exp.Var) else ""
        if var == "LOAD_UNCERTAIN_FILES":  # fakesnow does not know it: handled here
            value = param.expression
            uncertain = value is not None and value.sql(dialect="snowflake").upper() == "TRUE"
            continue
        kept.append(param)
    new_params = kept
    force = any(isinstance(p.this, exp.Var) and p.this.name.upper() == "FORCE" for p in new_params)
    if stage_url and not uncertain and not force:
        files_param = next(
            (p for p in new_params if isinstance(p.this, exp.Var) and p.this.name.upper() == "FILES"), None
        )
        if files_param is not None:
            base = url if url.endswith("/") else url + "/"
            names = [lit.name for lit in files_param.find_all(exp.Literal)]
            certain = [n for n in names if not load_status_uncertain(duck_conn, base + n)]
            if not certain:
                sql = "SELECT 'Copy executed with 0 files processed.' AS status"
                duck_conn.execute(sql)
                return sql
            if len(certain) < len(names):
                new_params[new_params.index(files_param)] = exp.CopyParameter(
                    this=exp.Var(this="FILES"), expressions=[exp.Literal.string(n) for n in certain]
                )
    expr.set("params", new_params)
    if metadata and not any(
        isinstance(p.this, exp.Var) and p.this.name.upper() == "MATCH_BY_COLUMN_NAME" for p in new_params
    ):
        raise SnowflakeError(
            "001008", "SQL compilation error:\nINCLUDE_METADATA can only be used with MATCH_BY_COLUMN_NAME.", "22023"
        )
    if stage_key and SETTINGS.check_trust:
        assume_integration_role(stage_key)
    token = CURRENT_COPY.set(
        {"metadata": metadata, "stage_url": stage_url, "start": dt.datetime.now(dt.timezone.utc).isoformat()}
    )
    try:
        return _original_copy_into(duck_conn, current_database, current_schema, expr, params)
    except (duckdb.Error, ProgrammingError) as error:
        # S3 answered 403 to httpfs (the adapter's credentials may not read the bucket): what
        # Snowflake says when its role may not read the stage's files.
        text = str(error)
        if "403" in text or "AccessDenied" in text:
            raise SnowflakeError(
                "091003",
                "Failure using stage area. Cause: [Access Denied (Status Code: 403; Error Code: AccessDenied)]",
                "22000",
            ) from None
        raise
    finally:
        CURRENT_COPY.reset(token)


def moto_client(service: str):  # noqa: ANN201
    """A boto3 client for moto (every AWS service on the S3 endpoint)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=SETTINGS.s3_endpoint,
        region_name=SETTINGS.s3_region,
        aws_access_key_id=SETTINGS.s3_key_id,
        aws_secret_access_key=SETTINGS.s3_secret,
    )


def load_status_uncertain(duck_conn, file_url: str) -> bool:  # noqa: ANN001
    """Snowflake's rule: load metadata lives 64 days; a file with none whose LAST_MODIFIED is older
    than that has an uncertain load status and is skipped without a word unless the COPY says
    LOAD_UNCERTAIN_FILES = TRUE (or FORCE). The file's age is read from S3 (moto); the adapter's
    clock may run ahead (--clock-ahead-days)."""
    if not SETTINGS.clock_ahead_days:
        return False
    duck_conn.execute("SELECT 1 FROM _fs_information_schema._fs_load_history WHERE FILE_NAME = ? LIMIT 1", [file_url])
    if duck_conn.fetchone():
        return False
    from urllib.parse import urlparse

    parts = urlparse(file_url)
    modified = moto_client("s3").head_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["LastModified"]
    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=SETTINGS.clock_ahead_days)
    return (now - modified) > dt.timedelta(days=64)


def assume_integration_role(stage_key: tuple[str, str, str]) -> None:
    """What Snowflake does before reading a stage with a storage integration: sts:AssumeRole on the
    integration's role as its IAM user, with its external id. The trust policy is read from moto's
    IAM; a refusal is reported with Snowflake's own texts (error 003167)."""
    conn = adapter_conn()
    row = conn.execute(
        f"SELECT storage_integration FROM {ADAPTER_SCHEMA}.stages WHERE database_name = ? AND schema_name = ? AND name = ?",
        list(stage_key),
    ).fetchone()
    if not row or not row[0]:
        return
    integ = conn.execute(
        f"SELECT role_arn, iam_user_arn, external_id FROM {ADAPTER_SCHEMA}.integrations WHERE name = ?", [row[0]]
    ).fetchone()
    if not integ:
        return
    role_arn, iam_user_arn, external_id = integ
    not_authorized = SnowflakeError(
        "003167",
        "Error assuming AWS_ROLE:\n"
        f"User: {iam_user_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        "42601",
    )
    import botocore.exceptions

    try:
        role = moto_client("iam").get_role(RoleName=str(role_arn).rsplit("/", 1)[-1])["Role"]
    except botocore.exceptions.ClientError as error:
        raise not_authorized from error
    doc = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(doc, str):
        import urllib.parse

        doc = json.loads(urllib.parse.unquote(doc))
    principal_ok = False
    external_ok = False
    for st in doc.get("Statement", []):
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        aws = (st.get("Principal") or {}).get("AWS", [])
        aws = [aws] if isinstance(aws, str) else aws
        if st.get("Effect") != "Allow" or "sts:AssumeRole" not in actions or iam_user_arn not in aws:
            continue
        principal_ok = True
        wanted = ((st.get("Condition") or {}).get("StringEquals") or {}).get("sts:ExternalId")
        wanted = [wanted] if isinstance(wanted, str) else wanted
        if wanted is None or external_id in wanted:
            external_ok = True
    if not principal_ok:
        raise not_authorized
    if not external_ok:
        raise SnowflakeError(
            "003167",
            "SQL execution error: Error assuming AWS_ROLE. Please verify the role and externalId are configured "
            "correctly in your AWS policy.",
            "42601",
        )


def patched_inserts(expr, params, urls, parquet_info=None):  # noqa: ANN001, ANN201
    inserts = _original_inserts(expr, params, urls, parquet_info)
    state = CURRENT_COPY.get()
    if not state or not state["metadata"]:
        return inserts
    for insert, url in zip(inserts, urls, strict=True):
        select = insert.expression
        relative = url[len(state["stage_url"]) :] if state["stage_url"] and url.startswith(state["stage_url"]) else url
        values = {
            "METADATA$FILENAME": exp.Literal.string(relative),
            "METADATA$START_SCAN_TIME": exp.Cast(
                this=exp.Literal.string(state["start"]), to=exp.DataType.build("TIMESTAMPTZ")
            ),
        }
        new = []
        for projection in select.expressions:
            alias = projection.alias_or_name.upper()
            if alias in state["metadata"]:
                new.append(exp.Alias(this=values[state["metadata"][alias]], alias=exp.Identifier(this=alias, quoted=True)))
            else:
                new.append(projection)
        select.set("expressions", new)
    return inserts


fs_cursor.copy_into = patched_copy_into
fs_copy._inserts = patched_inserts


# --------------------------------------------------------------------------------------------
# Statements the adapter handles itself (storage integrations, statement timeout, stages)
# --------------------------------------------------------------------------------------------


def prop_value(value: exp.Expression | None) -> Any:  # noqa: ANN401
    if value is None:
        return None
    if isinstance(value, exp.Literal):
        return value.this
    if isinstance(value, exp.Boolean):
        return value.this
    if isinstance(value, (exp.Tuple, exp.Paren)):
        items = value.expressions if isinstance(value, exp.Tuple) else [value.this]
        return [prop_value(i) for i in items]
    if isinstance(value, exp.Var):
        return value.this
    return value.sql(dialect="snowflake")


def integration_name(ident: exp.Expression) -> str:
    if isinstance(ident, exp.Table):
        ident = ident.this
    if isinstance(ident, exp.Identifier):
        return ident.this if ident.quoted else ident.this.upper()
    return normalise_ident(ident.sql(dialect="snowflake"))


def create_integration(expression: exp.Create) -> str:
    name = integration_name(expression.this)
    props = {
        p.this.name.upper(): prop_value(p.args.get("value"))
        for p in (expression.args.get("properties").expressions if expression.args.get("properties") else [])
        if isinstance(p, exp.Property) and isinstance(p.this, exp.Var)
    }
    conn = adapter_conn()
    exists = conn.execute(f"SELECT 1 FROM {ADAPTER_SCHEMA}.integrations WHERE name = ?", [name]).fetchone()
    if exists and expression.args.get("exists"):
        return f"{name} already exists, statement succeeded."
    if exists and not expression.args.get("replace"):
        raise SnowflakeError("002002", f"SQL compilation error:\nObject '{name}' already exists.", "42710")
    digest = hashlib.sha256(name.encode()).hexdigest()
    iam_user_arn = f"arn:aws:iam::{int(digest[:10], 16) % 10**12:012d}:user/fake-{digest[:8]}-s"
    external_id = f"FAKESNOW_SFCRole=1_{base64.b64encode(bytes.fromhex(digest[8:32])).decode()}"
    allowed = props.get("STORAGE_ALLOWED_LOCATIONS") or []
    blocked = props.get("STORAGE_BLOCKED_LOCATIONS") or []
    conn.execute(
        f"INSERT OR REPLACE INTO {ADAPTER_SCHEMA}.integrations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            name,
            str(props.get("TYPE", "")),
            str(props.get("STORAGE_PROVIDER", "")),
            bool(props.get("ENABLED", False)),
            props.get("STORAGE_AWS_ROLE_ARN"),
            ",".join(allowed if isinstance(allowed, list) else [allowed]),
            ",".join(blocked if isinstance(blocked, list) else [blocked]),
            iam_user_arn,
            external_id,
        ],
    )
    return f"Integration {name} successfully created."


def describe_integration(expression: exp.Describe) -> list[list[str | None]]:
    name = integration_name(expression.this)
    row = adapter_conn().execute(f"SELECT * FROM {ADAPTER_SCHEMA}.integrations WHERE name = ?", [name]).fetchone()
    if not row:
        raise SnowflakeError("002003", f"SQL compilation error:\nIntegration '{name}' does not exist or not authorized.", "02000")
    _, _type, provider, enabled, role_arn, allowed, blocked, iam_user_arn, external_id, _ = row
    return [
        ["ENABLED", "Boolean", str(enabled).lower(), "false"],
        ["STORAGE_PROVIDER", "String", provider, None],
        ["STORAGE_ALLOWED_LOCATIONS", "List", allowed, "[]"],
        ["STORAGE_BLOCKED_LOCATIONS", "List", blocked, "[]"],
        ["STORAGE_AWS_IAM_USER_ARN", "String", iam_user_arn, None],
        ["STORAGE_AWS_ROLE_ARN", "String", role_arn, None],
        ["STORAGE_AWS_EXTERNAL_ID", "String", external_id, None],
        ["COMMENT", "String", "", None],
    ]


def record_stage(expression: exp.Create, database: str | None, schema: str | None) -> None:
    table = expression.this if isinstance(expression.this, exp.Table) else expression.find(exp.Table)
    catalog = normalise_ident(table.catalog) if table.catalog else database
    schema_name = normalise_ident(table.db) if table.db else schema
    name = table.this.this if table.this.quoted else table.this.this.upper()
    integration = None
    file_format = None
    for p in expression.args.get("properties").expressions if expression.args.get("properties") else []:
        if isinstance(p, exp.Property) and isinstance(p.this, exp.Var) and p.this.name.upper() == "STORAGE_INTEGRATION":
            integration = integration_name(p.args["value"]) if not isinstance(p.args["value"], exp.Var) else p.args["value"].this.upper()
        elif isinstance(p, exp.FileFormatProperty):
            file_format = json.dumps(
                {q.this.name.upper(): prop_value(q.args.get("value")) for q in p.expressions if isinstance(q, exp.Property)}
            )
    conn = adapter_conn()
    if integration is not None:
        if not conn.execute(f"SELECT 1 FROM {ADAPTER_SCHEMA}.integrations WHERE name = ?", [integration]).fetchone():
            raise SnowflakeError(
                "002003", f"SQL compilation error:\nIntegration '{integration}' does not exist or not authorized.", "02000"
            )
    conn.execute(
        f"INSERT OR REPLACE INTO {ADAPTER_SCHEMA}.stages VALUES (?, ?, ?, ?, ?)",
        [catalog, schema_name, name, integration, file_format],
    )


def unqualify_temporary(statement: exp.Expression | None) -> str | None:
    """SQL of a qualified CREATE TEMPORARY TABLE/VIEW made a regular one; None if not such."""
    if not isinstance(statement, exp.Create) or str(statement.args.get("kind") or "").upper() not in ("TABLE", "VIEW"):
        return None
    props = statement.args.get("properties")
    temporary = [p for p in (props.expressions if props else []) if isinstance(p, exp.TemporaryProperty)]
    table = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
    if not temporary or not isinstance(table, exp.Table) or not (table.args.get("db") or table.args.get("catalog")):
        return None
    for p in temporary:
        p.pop()
    return statement.sql(dialect="snowflake")


def ident_name(ident: exp.Expression | str | None, default: str | None) -> str | None:
    if ident is None or ident == "":
        return default
    if isinstance(ident, exp.Identifier):
        return ident.this if ident.quoted else ident.this.upper()
    return normalise_ident(str(ident))


def existing_table(statement: exp.Create, database: str | None, schema: str | None) -> str | None:
    """The table's name when CREATE TABLE names a table that exists, else None."""
    table = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
    if not isinstance(table, exp.Table):
        return None
    catalog = ident_name(table.args.get("catalog"), database)
    schema_name = ident_name(table.args.get("db"), schema)
    name = ident_name(table.args.get("this"), None)
    row = (
        adapter_conn()
        .execute(
            "SELECT 1 FROM information_schema.tables WHERE upper(table_catalog) = upper(?) "
            "AND table_schema = ? AND table_name = ?",
            [catalog, schema_name, name],
        )
        .fetchone()
    )
    return name if row else None


# --------------------------------------------------------------------------------------------
# Arrow -> Snowflake JSON rowset
# --------------------------------------------------------------------------------------------


def seconds_fraction(total_ns: int, scale: int = 9) -> str:
    sign = "-" if total_ns < 0 else ""
    total_ns = abs(total_ns)
    frac = f"{total_ns % 1_000_000_000:09d}"[:scale] if scale else ""
    return f"{sign}{total_ns // 1_000_000_000}" + (f".{frac}" if frac else "")


def to_json_value(value: Any, sf_type: str, scale: int | None) -> str | None:  # noqa: ANN401, PLR0911
    if value is None:
        return None
    if sf_type == "boolean":
        return "1" if value else "0"
    if sf_type == "date":
        return str((value - dt.date(1970, 1, 1)).days)
    if sf_type in ("timestamp_ntz", "timestamp_ltz", "timestamp_tz"):
        epoch, fraction = value["epoch"], value["fraction"]
        text = seconds_fraction(epoch * 1_000_000_000 + fraction, 9 if scale is None else scale)
        if sf_type == "timestamp_tz":
            return f"{text} {value.get('timezone', 1440)}"
        return text
    if sf_type == "time":
        return seconds_fraction(int(value), 9 if scale is None else scale)
    if sf_type == "binary":
        return bytes(value).hex().upper()
    if sf_type == "real":
        return repr(float(value))
    if sf_type in ("variant", "array", "object"):
        return value if isinstance(value, str) else json.dumps(value)
    return str(value)


def arrow_to_rowset(b64: str, rowtype: list[dict[str, Any]]) -> list[list[str | None]]:
    if not b64:
        return []
    reader = pa.ipc.open_stream(base64.b64decode(b64))
    table = reader.read_all()
    columns = [c.to_pylist() for c in table.columns]
    rows = []
    for i in range(table.num_rows):
        rows.append([to_json_value(columns[j][i], rowtype[j]["type"], rowtype[j].get("scale")) for j in range(len(rowtype))])
    return rows


# --------------------------------------------------------------------------------------------
# HTTP handlers
# --------------------------------------------------------------------------------------------


async def read_json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


def with_body(request: Request, payload: dict[str, Any]) -> Request:
    data = json.dumps(payload).encode()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k.lower() not in (b"content-encoding", b"content-length")]
    return Request(scope, receive)


def failure(code: str, message: str, sqlstate: str = "42000", query_id: str | None = None) -> JSONResponse:
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": sqlstate, "queryId": query_id or str(uuid.uuid4())},
            "code": code,
            "message": message,
            "success": False,
        }
    )


def result(rowtype: list[dict[str, Any]], rows: list[list[str | None]], extra: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(
        {
            "data": {
                "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
                "rowtype": rowtype,
                "rowset": rows,
                "total": len(rows),
                "returned": len(rows),
                "queryId": str(uuid.uuid4()),
                "queryResultFormat": "json",
                "chunks": [],
                **(extra or {}),
            },
            "code": None,
            "message": None,
            "success": True,
        }
    )


def text_column(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "database": "",
        "schema": "",
        "table": "",
        "nullable": True,
        "type": "text",
        "byteLength": 16777216,
        "length": 16777216,
        "scale": None,
        "precision": None,
        "collation": None,
    }


def check_login(data: dict[str, Any]) -> Response | None:
    account = str(data.get("ACCOUNT_NAME") or "").upper()
    user = str(data.get("LOGIN_NAME") or "").upper()
    if SETTINGS.accounts and account not in SETTINGS.accounts:
        # Snowflake's front door for an account that does not exist
        return PlainTextResponse("Forbidden", status_code=403)
    authenticator = str(data.get("AUTHENTICATOR") or "SNOWFLAKE").upper()
    if authenticator == "SNOWFLAKE_JWT" and SETTINGS.public_keys:
        if not verify_jwt(str(data.get("TOKEN") or ""), account, user):
            return failure("390144", "JWT token is invalid.", "08004")
    if authenticator == "SNOWFLAKE" and SETTINGS.passwords:
        if SETTINGS.passwords.get(user) != data.get("PASSWORD"):
            return failure("390100", "Incorrect username or password was specified.", "08004")
    return None


def verify_jwt(token: str, account: str, user: str) -> bool:
    import jwt
    from cryptography.hazmat.primitives import serialization

    pem = SETTINGS.public_keys.get(user)
    if not pem:
        return False
    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    try:
        # the Node driver writes iat/exp in milliseconds, which Snowflake accepts: check exp here
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            options={"require": ["iss", "sub", "exp", "iat"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return False
    exp_s = claims["exp"] / 1000 if claims["exp"] > 10**11 else claims["exp"]
    if exp_s < time.time():
        return False
    expected_account = account.split(".")[0]
    return claims["iss"].upper() == f"{expected_account}.{user}.{fingerprint}".upper() and claims["sub"].upper() == f"{expected_account}.{user}"


async def login(request: Request) -> Response:
    payload = await read_json(request)
    data = payload.setdefault("data", {})
    refused = check_login(data)
    if refused is not None:
        return refused
    session = data.setdefault("SESSION_PARAMETERS", {})
    session["nop_regexes"] = NOP_REGEXES
    response = await fs_server.login_request(with_body(request, payload))
    body = json.loads(response.body)
    if body.get("success"):
        body["code"] = None
        body["message"] = None
        body["data"].setdefault("masterToken", body["data"]["token"])
        body["data"].setdefault("validityInSeconds", 3600)
        body["data"].setdefault("masterValidityInSeconds", 14400)
        body["data"].setdefault("sessionId", abs(hash(body["data"]["token"])) % 10**12)
    return JSONResponse(body)


def session_token(request: Request) -> str:
    auth = request.headers.get("Authorization") or ""
    return auth[17:-1]


async def query(request: Request) -> Response:
    payload = await read_json(request)
    sql = payload.get("sqlText") or ""
    token = session_token(request)
    if token not in fs_server.sessions:
        return failure("390104", "User must login again to access the service.", "08001")
    conn = fs_server.sessions[token]
    bare = re.fullmatch(r"\s*(BEGIN|COMMIT|ROLLBACK)\b\s*(/\*.*?\*/\s*)*;?\s*", sql, re.I | re.S)
    if bare:
        try:
            await run_in_threadpool(conn.cursor().execute, bare[1].upper())
        except ProgrammingError as e:
            return failure(f"{e.errno:06d}", e.msg, e.sqlstate or "42000")
        return result([text_column("status")], [["Statement executed successfully."]])
    try:
        statement = sqlglot.parse_one(sql, read="snowflake")
    except sqlglot.errors.ParseError:
        statement = None

    try:
        if isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() == "STORAGE INTEGRATION":
            return result([text_column("status")], [[create_integration(statement)]])
        if isinstance(statement, exp.Describe) and "INTEGRATION" in str(statement.args.get("kind") or "").upper():
            columns = ["property", "property_type", "property_value", "property_default"]
            return result([text_column(c) for c in columns], describe_integration(statement))
        if isinstance(statement, exp.Alter) and str(statement.args.get("kind") or "").upper() == "SESSION":
            items = [i for a in statement.args.get("actions") or [] for i in a.expressions]
            handled = False
            for item in items:
                eq = item.this
                if isinstance(eq, exp.EQ) and eq.this.name.upper() == "STATEMENT_TIMEOUT_IN_SECONDS":
                    STATEMENT_TIMEOUTS[token] = int(eq.expression.name)
                    handled = True
            if handled and len(items) == 1:
                return result([text_column("status")], [["Statement executed successfully."]])
        if isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() == "STAGE":
            record_stage(statement, conn.database, conn.schema)
        if (
            isinstance(statement, exp.Create)
            and str(statement.args.get("kind") or "").upper() == "TABLE"
            and statement.args.get("exists")
            and (name := existing_table(statement, conn.database, conn.schema))
        ):
            return result([text_column("status")], [[f"{name} already exists, statement succeeded."]])
    except ProgrammingError as e:
        return failure(f"{e.errno:06d}", e.msg, e.sqlstate or "42000")

    if (rewritten := unqualify_temporary(statement)) is not None:
        payload["sqlText"] = rewritten

    timeout = STATEMENT_TIMEOUTS.get(token)
    timed_out = threading.Event()
    timer = None
    if timeout:
        def interrupt() -> None:
            timed_out.set()
            conn._duck_conn.interrupt()  # noqa: SLF001

        timer = threading.Timer(timeout, interrupt)
        timer.start()
    try:
        response = await fs_server.query_request(with_body(request, payload))
    finally:
        if timer:
            timer.cancel()
    body = json.loads(response.body)
    if timed_out.is_set() and (not body.get("success") or response.status_code >= 500):
        return failure(
            "000630",
            f"Statement reached its statement or warehouse timeout of {timeout} second(s) and was canceled.",
            "57014",
        )
    if response.status_code >= 500 or not body.get("success"):
        message = str(body.get("message") or "")
        return failure(str(body.get("code") or "000603"), message or "Internal error", (body.get("data") or {}).get("sqlState") or "XX000")
    data = body["data"]
    if "rowsetBase64" in data:
        rows = arrow_to_rowset(data.pop("rowsetBase64"), data["rowtype"])
        data["rowset"] = rows
        data["queryResultFormat"] = "json"
    data.setdefault("rowset", [])
    data["returned"] = len(data["rowset"])
    data["total"] = data.get("total", len(data["rowset"])) or len(data["rowset"])
    data.setdefault("chunks", [])
    body["code"] = None
    body["message"] = None
    return JSONResponse(body)


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


def build_app() -> Starlette:
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/session/v1/login-request", login, methods=["POST"]),
        Route("/queries/v1/query-request", query, methods=["POST"]),
    ]
    # everything else (session delete/heartbeat, abort, monitoring) goes to fakesnow as is
    routes += [r for r in fs_server.routes if r.path not in ("/session/v1/login-request", "/queries/v1/query-request")]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description="TEST-ONLY protocol adapter in front of fakesnow")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--s3-endpoint", help="S3 endpoint (moto) that external stages read through httpfs")
    parser.add_argument("--s3-region", default="us-east-1")
    parser.add_argument("--account", action="append", default=[], help="known account (repeatable)")
    parser.add_argument("--public-key", action="append", default=[], help="USER=path of a PEM public key")
    parser.add_argument("--s3-key-id", default="fakesnow-adapter", help="the key stages read S3 with")
    parser.add_argument("--s3-secret", default="fakesnow-adapter")
    parser.add_argument(
        "--clock-ahead-days",
        type=int,
        default=0,
        help="run the clock of the 64-day load-metadata rule this many days ahead (files look older)",
    )
    parser.add_argument(
        "--check-trust",
        action="store_true",
        help="at COPY, assume the integration's AWS role as STS would: the role must exist in moto's IAM "
        "and trust the integration's IAM user with its external id",
    )
    args = parser.parse_args()
    SETTINGS.check_trust = args.check_trust
    SETTINGS.s3_key_id = args.s3_key_id
    SETTINGS.s3_secret = args.s3_secret
    SETTINGS.clock_ahead_days = args.clock_ahead_days
    SETTINGS.s3_endpoint = args.s3_endpoint
    SETTINGS.s3_region = args.s3_region
    SETTINGS.accounts = {a.upper() for a in args.account}
    SETTINGS.public_keys = {
        user.upper(): Path(path).read_text() for user, path in (item.split("=", 1) for item in args.public_key)
    }
    SETTINGS.passwords = {k.upper(): v for k, v in json.loads(os.environ.get("FAKESNOW_ADAPTER_PASSWORDS", "{}")).items()}
    setup_duckdb()
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
