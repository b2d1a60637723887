/**
 * The explicit Arrow schema of a stream's Parquet files, from the stream's column list
 * (`lib/streams/`), so the schema, the row checks, the fingerprint and the raw tables' DDL
 * cannot drift apart.
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
import type { ColumnKind, ColumnSpec } from "../streams/columns.ts";
import type { StreamDef } from "../streams/stream.ts";

export type { ColumnKind, ColumnSpec };
export { TOP_TRACKS_COLUMNS, topTracksKey } from "../streams/top_tracks.ts";

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

/** The explicit Arrow schema of a stream's files. */
export function streamSchema(stream: Pick<StreamDef, "columns">): Schema {
  return new Schema(
    stream.columns.map((c) => new Field(c.name, arrowType(c.kind), c.nullable)),
  );
}

/** Parquet key-value metadata key holding the content fingerprint. */
export const CONTENT_SHA256_KEY = "content_sha256";
