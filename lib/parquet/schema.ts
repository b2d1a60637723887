/**
 * The explicit Arrow schema of the `top_tracks` Parquet files, the matching DuckDB column types
 * of the raw table, and the lake key of a snapshot's file.
 *
 * One list ({@link TOP_TRACKS_COLUMNS}) drives the Arrow schema, the row conversion, the content
 * fingerprint and the raw table's DDL, so they cannot drift apart.
 * @module
 */

import {
  Bool,
  type DataType,
  DateDay,
  Field,
  Float64,
  Int32,
  List,
  Schema,
  TimestampMicrosecond,
  Utf8,
} from "apache-arrow";
import type { EnrichedRow } from "../types.ts";

/** How a column's values are converted from a row (and which Arrow type holds them). */
export type ColumnKind = "date" | "timestamp" | "utf8" | "int32" | "float64" | "bool" | "utf8_list";

/** One column of the `top_tracks` files. */
export interface ColumnSpec {
  name: keyof EnrichedRow;
  kind: ColumnKind;
  nullable: boolean;
  /** DuckDB type of the column in `raw.top_tracks`. */
  duckdb: string;
}

/** Version of the file layout; part of the content fingerprint and the Parquet metadata. */
export const TOP_TRACKS_SCHEMA_VERSION = "top_tracks/1";

/**
 * The columns of a `top_tracks` Parquet file, in file order: the fetched row's fields, its audio
 * features, then where they came from (the same order as the Snowflake raw table).
 */
export const TOP_TRACKS_COLUMNS: readonly ColumnSpec[] = [
  { name: "snapshot_date", kind: "date", nullable: false, duckdb: "DATE" },
  { name: "time_range", kind: "utf8", nullable: false, duckdb: "VARCHAR" },
  { name: "rank", kind: "int32", nullable: false, duckdb: "INTEGER" },
  { name: "track_id", kind: "utf8", nullable: false, duckdb: "VARCHAR" },
  { name: "track_name", kind: "utf8", nullable: false, duckdb: "VARCHAR" },
  { name: "artist_ids", kind: "utf8_list", nullable: false, duckdb: "VARCHAR[]" },
  { name: "artist_names", kind: "utf8_list", nullable: false, duckdb: "VARCHAR[]" },
  { name: "album_id", kind: "utf8", nullable: true, duckdb: "VARCHAR" },
  { name: "album_name", kind: "utf8", nullable: true, duckdb: "VARCHAR" },
  { name: "album_release_date", kind: "utf8", nullable: true, duckdb: "VARCHAR" },
  { name: "duration_ms", kind: "int32", nullable: false, duckdb: "INTEGER" },
  { name: "explicit", kind: "bool", nullable: false, duckdb: "BOOLEAN" },
  { name: "popularity", kind: "int32", nullable: true, duckdb: "INTEGER" },
  { name: "isrc", kind: "utf8", nullable: true, duckdb: "VARCHAR" },
  { name: "fetched_at", kind: "timestamp", nullable: false, duckdb: "TIMESTAMP WITH TIME ZONE" },
  { name: "run_id", kind: "utf8", nullable: false, duckdb: "VARCHAR" },
  { name: "danceability", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "energy", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "key", kind: "int32", nullable: true, duckdb: "INTEGER" },
  { name: "loudness", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "mode", kind: "int32", nullable: true, duckdb: "INTEGER" },
  { name: "speechiness", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "acousticness", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "instrumentalness", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "liveness", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "valence", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "tempo", kind: "float64", nullable: true, duckdb: "DOUBLE" },
  { name: "time_signature", kind: "int32", nullable: true, duckdb: "INTEGER" },
  { name: "features_source", kind: "utf8", nullable: false, duckdb: "VARCHAR" },
  { name: "match_method", kind: "utf8", nullable: false, duckdb: "VARCHAR" },
];

/** Columns left out of the content fingerprint: they change on every run, the data does not. */
export const RUN_METADATA_COLUMNS: readonly string[] = ["run_id", "fetched_at"];

/** The Arrow type of a column kind. */
export function arrowType(kind: ColumnKind): DataType {
  switch (kind) {
    case "date":
      return new DateDay();
    case "timestamp":
      return new TimestampMicrosecond("UTC");
    case "utf8":
      return new Utf8();
    case "int32":
      return new Int32();
    case "float64":
      return new Float64();
    case "bool":
      return new Bool();
    case "utf8_list":
      return new List(new Field("item", new Utf8(), false));
  }
}

/** The explicit Arrow schema of a `top_tracks` file. */
export function topTracksSchema(): Schema {
  return new Schema(
    TOP_TRACKS_COLUMNS.map((c) => new Field(c.name, arrowType(c.kind), c.nullable)),
  );
}

/** Parquet key-value metadata key holding the content fingerprint. */
export const CONTENT_SHA256_KEY = "content_sha256";

/**
 * The lake key of a snapshot's file, the same in the folder store and S3.
 * @example topTracksKey("2026-01-31") // "top_tracks/snapshot_date=2026-01-31/top_tracks.parquet"
 */
export function topTracksKey(snapshotDate: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(snapshotDate)) {
    throw new RangeError(`snapshot date "${snapshotDate}" is not YYYY-MM-DD`);
  }
  return `top_tracks/snapshot_date=${snapshotDate}/top_tracks.parquet`;
}
