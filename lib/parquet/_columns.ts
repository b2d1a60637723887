/**
 * Builds Arrow column data straight into typed arrays that are reused from one batch to the next.
 *
 * Reuse matters on large backfills: fresh buffers for every batch live long enough to be promoted
 * to V8's old generation and are then only freed by a full GC, so memory grew with the row count
 * (measured: +470 MB at 1M rows with fresh buffers, flat with reused ones). The Arrow data a
 * batch returns is valid until the next call of {@link ColumnEncoder.encode}.
 * @module
 */

import { type Data, type DataType, makeData, Utf8 } from "apache-arrow";
import type { Row } from "../streams/stream.ts";
import { checkValue, dateMs } from "./rows.ts";
import { arrowType, type ColumnSpec } from "./schema.ts";

const DAY_MS = 86_400_000;
const encoder = new TextEncoder();

/** Encodes one column of successive batches of rows (at most `capacity` rows a batch). */
export class ColumnEncoder {
  readonly column: ColumnSpec;
  #type: DataType;
  #capacity: number;
  #validity: Uint8Array;
  #int32?: Int32Array;
  #float64?: Float64Array;
  #int64?: BigInt64Array;
  #bits?: Uint8Array;
  #strings?: StringBuffer;
  #listOffsets?: Int32Array;

  constructor(column: ColumnSpec, capacity: number) {
    this.column = column;
    this.#type = arrowType(column.kind);
    this.#capacity = capacity;
    this.#validity = new Uint8Array((capacity + 7) >> 3);
    switch (column.kind) {
      case "int32":
      case "date":
        this.#int32 = new Int32Array(capacity);
        break;
      case "float64":
        this.#float64 = new Float64Array(capacity);
        break;
      case "timestamp":
        this.#int64 = new BigInt64Array(capacity);
        break;
      case "bool":
        this.#bits = new Uint8Array((capacity + 7) >> 3);
        break;
      case "utf8":
        this.#strings = new StringBuffer(capacity);
        break;
      case "utf8_list":
        this.#listOffsets = new Int32Array(capacity + 1);
        this.#strings = new StringBuffer(capacity * 2);
        break;
    }
  }

  /** Arrow data of this column for the rows at `indexes` (values are checked on the way). */
  encode(rows: readonly Row[], indexes: readonly number[]): Data {
    const n = indexes.length;
    if (n > this.#capacity) throw new RangeError(`batch of ${n} rows > ${this.#capacity}`);
    const column = this.column;
    const validity = this.#validity.subarray(0, (n + 7) >> 3);
    validity.fill(0);
    this.#bits?.fill(0);
    this.#strings?.reset();
    let nullCount = 0;
    for (let k = 0; k < n; k++) {
      const i = indexes[k]!;
      const value = checkValue(rows[i]!, i, column);
      if (value === null) nullCount++;
      else validity[k >> 3]! |= 1 << (k & 7);
      switch (column.kind) {
        case "int32":
          this.#int32![k] = value === null ? 0 : value as number;
          break;
        case "date":
          this.#int32![k] = value === null ? 0 : dateMs(value as string) / DAY_MS;
          break;
        case "float64":
          this.#float64![k] = value === null ? 0 : value as number;
          break;
        case "timestamp":
          this.#int64![k] = value === null ? 0n : timestampMicros(value as string);
          break;
        case "bool":
          if (value === true) this.#bits![k >> 3]! |= 1 << (k & 7);
          break;
        case "utf8":
          this.#strings!.push(value === null ? "" : value as string);
          break;
        case "utf8_list": {
          const list = (value ?? []) as string[];
          for (const s of list) this.#strings!.push(s);
          this.#listOffsets![k + 1] = this.#listOffsets![k]! + list.length;
          break;
        }
      }
    }
    const base = {
      type: this.#type,
      length: n,
      nullCount,
      nullBitmap: nullCount ? validity : undefined,
    };
    switch (column.kind) {
      case "int32":
      case "date":
        return makeData({ ...base, data: this.#int32!.subarray(0, n) } as never);
      case "float64":
        return makeData({ ...base, data: this.#float64!.subarray(0, n) } as never);
      case "timestamp":
        return makeData({ ...base, data: this.#int64!.subarray(0, n) } as never);
      case "bool":
        return makeData({ ...base, data: this.#bits!.subarray(0, (n + 7) >> 3) } as never);
      case "utf8":
        return makeData(
          {
            ...base,
            valueOffsets: this.#strings!.offsets(),
            data: this.#strings!.bytes(),
          } as never,
        );
      case "utf8_list": {
        const child = makeData({
          type: new Utf8(),
          length: this.#strings!.count,
          nullCount: 0,
          valueOffsets: this.#strings!.offsets(),
          data: this.#strings!.bytes(),
        });
        return makeData(
          { ...base, valueOffsets: this.#listOffsets!.subarray(0, n + 1), child } as never,
        );
      }
    }
  }
}

/** Microseconds since the epoch of an ISO-8601 timestamp, keeping digits beyond milliseconds. */
export function timestampMicros(iso: string): bigint {
  const ms = Date.parse(iso);
  const fraction = /T\d{2}:\d{2}:\d{2}\.(\d+)/.exec(iso)?.[1] ?? "";
  const extra = fraction.length > 3 ? Number(fraction.slice(3, 6).padEnd(3, "0")) : 0;
  return BigInt(ms) * 1000n + BigInt(extra);
}

/** UTF-8 bytes and offsets of a list of strings; buffers grow as needed and are kept. */
class StringBuffer {
  #bytes: Uint8Array;
  #length = 0;
  #offsets: Int32Array;
  #count = 0;

  constructor(expected: number) {
    this.#bytes = new Uint8Array(Math.max(1024, expected * 32));
    this.#offsets = new Int32Array(expected + 1);
  }

  get count(): number {
    return this.#count;
  }

  reset(): void {
    this.#length = 0;
    this.#count = 0;
  }

  push(s: string): void {
    const need = this.#length + s.length * 3;
    if (need > this.#bytes.length) {
      const bigger = new Uint8Array(Math.max(need, this.#bytes.length * 2));
      bigger.set(this.#bytes.subarray(0, this.#length));
      this.#bytes = bigger;
    }
    if (this.#count + 1 >= this.#offsets.length) {
      const bigger = new Int32Array(this.#offsets.length * 2);
      bigger.set(this.#offsets);
      this.#offsets = bigger;
    }
    this.#length += encoder.encodeInto(s, this.#bytes.subarray(this.#length)).written;
    this.#offsets[++this.#count] = this.#length;
  }

  offsets(): Int32Array {
    return this.#offsets.subarray(0, this.#count + 1);
  }

  bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }
}
