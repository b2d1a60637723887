/**
 * Column specs: one list per stream drives the Arrow schema of its Parquet files
 * (`lib/parquet/schema.ts`), the row checks, the content fingerprint, the DuckDB and Snowflake raw tables, and a test that dbt's source yml
 * lists the same columns. The type of each column in each system follows from its kind, here.
 * @module
 */

/** How a column's values are checked and converted (and which Arrow type holds them). */
export type ColumnKind = "date" | "timestamp" | "utf8" | "int32" | "float64" | "bool" | "utf8_list";

/** One column of a stream's Parquet files and raw table. */
export interface ColumnSpec {
  name: string;
  kind: ColumnKind;
  nullable: boolean;
  /** What the column holds (dbt's source yml describes the same column). */
  description?: string;
}

/** DuckDB type of each column kind (raw tables). */
const DUCKDB_TYPES: Record<ColumnKind, string> = {
  date: "DATE",
  timestamp: "TIMESTAMP WITH TIME ZONE",
  utf8: "VARCHAR",
  int32: "INTEGER",
  float64: "DOUBLE",
  bool: "BOOLEAN",
  utf8_list: "VARCHAR[]",
};

/** Snowflake type of each column kind (raw tables; Parquet lists load as ARRAY). */
const SNOWFLAKE_TYPES: Record<ColumnKind, string> = {
  date: "DATE",
  timestamp: "TIMESTAMP_TZ",
  utf8: "VARCHAR",
  int32: "NUMBER(38,0)",
  float64: "FLOAT",
  bool: "BOOLEAN",
  utf8_list: "ARRAY",
};

/** The DuckDB type of a column. */
export function duckdbType(column: Pick<ColumnSpec, "kind">): string {
  return DUCKDB_TYPES[column.kind];
}

/** The Snowflake type of a column. */
export function snowflakeType(column: Pick<ColumnSpec, "kind">): string {
  return SNOWFLAKE_TYPES[column.kind];
}

/** The load metadata every raw table has after the Parquet columns. */
export const LOAD_METADATA_COLUMNS: readonly ColumnSpec[] = [
  {
    name: "source_file",
    kind: "utf8",
    nullable: true,
    description: "The loaded file (object-store URI or key).",
  },
  {
    name: "loaded_at",
    kind: "timestamp",
    nullable: true,
    description: "When the load ran; the same for every row of one file load.",
  },
];
