/**
 * A byte-level CSV record reader for large audio-features catalogs: it finds record and field
 * boundaries in the file's bytes without building strings, so the catalog scan can parse the
 * numbers and hash the ids straight from the bytes and decode only the rows it needs.
 *
 * It reads exactly what csv-parse reads with the options the catalog uses (`bom`,
 * `relax_column_count`, `relax_quotes`, `skip_empty_lines`): RFC 4180 quoting with `""` escapes,
 * quoted line breaks, a UTF-8 byte-order mark, `\n` or `\r\n` records (whichever comes first, as
 * csv-parse discovers it), empty lines skipped, and csv-parse's line numbers (every CR or LF
 * counts, except the LF of a CRLF record delimiter). Anything else — a lone CR delimiter, text
 * after a closing quote, an unclosed quote, a record over 1 MiB, a UTF-16 file — throws
 * {@link Unsupported}, and the caller reads the file with csv-parse instead, so results are the
 * same either way.
 * @module
 */

import { foldText } from "./normalize.ts";

/** The file uses CSV the fast reader does not handle exactly like csv-parse. */
export class Unsupported extends Error {
  override name = "Unsupported";
}

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

const MODE_UNKNOWN = 0;
const MODE_LF = 1;
const MODE_CRLF = 2;

/** Bytes read (and content-hashed) at a time. */
export const BLOCK_BYTES = 4 << 20;
/** Longest record the fast reader keeps across blocks (csv-parse's `max_record_size`). */
export const MAX_RECORD_BYTES = 1 << 20;

const NEED_MORE = -1;

/**
 * The current record. Field `k` spans `buf[fieldStart(k) .. fieldEnd(k))` (inside the quotes
 * when quoted); `ends[k]` is the position of the delimiter after it. Valid only during the
 * `onRecord` call.
 */
export interface RecordView {
  buf: Uint8Array;
  ends: Int32Array;
  /**
   * For the fields marked numeric (see {@link RecordReader.numeric}): the value when the field
   * is a plain decimal (`-12.345`, at most 15 digits) read while finding its end, `-Infinity`
   * when empty, NaN otherwise (the caller then reads it with {@link parseNumber}).
   */
  numbers: Float64Array;
  /** Whether `numbers` was filled for this record (the reader had numeric fields set). */
  numbered: boolean;
  /** When `anyQuoted`: 0 plain, 1 quoted, 2 quoted with `""` escapes inside. */
  quoted: Uint8Array;
  anyQuoted: boolean;
  /** Number of fields. */
  count: number;
  /** csv-parse's `context.lines` for this record (1-based, the line where it ends). */
  line: number;
  /** File offset of the record's first byte. */
  offset: number;
  /** Bytes of the record, its delimiter included. */
  length: number;
  /** Position of the record's first byte in `buf`. */
  pos: number;
}

/** Where field `k` starts in `view.buf` (after the opening quote). */
export function fieldStart(view: RecordView, k: number): number {
  const s = k === 0 ? view.pos : view.ends[k - 1]! + 1;
  return view.anyQuoted && view.quoted[k] !== 0 ? s + 1 : s;
}

/** Where field `k` ends in `view.buf` (before the closing quote). */
export function fieldEnd(view: RecordView, k: number): number {
  const e = view.ends[k]!;
  return view.anyQuoted && view.quoted[k] !== 0 ? e - 1 : e;
}

/** Options of {@link RecordReader.readFile}. */
export interface ReadFileOptions {
  /** Called for every record (the header included), synchronously. */
  onRecord: (record: RecordView) => void;
  /** Called with every block read, before its records (e.g. to hash the content). */
  onBlock?: (bytes: Uint8Array, fileOffset: number) => void;
  signal?: AbortSignal;
  /** File offset to read from (default 0; a byte-order mark is only looked for at 0). */
  start?: number;
  /** Offset of the first record (default `start`); within the first block. */
  first?: number;
  /**
   * Stop before the record that starts exactly here. When a record runs across it instead, the
   * reader goes on to the end of the file and says so ({@link ReadResult.crossed}).
   */
  end?: number;
  /** Stop after this many records (e.g. 1 to read the header). */
  maxRecords?: number;
}

/** What {@link RecordReader.readFile} read. */
export interface ReadResult {
  /** Bytes read from the file. */
  bytes: number;
  /** Offset just after the last record read. */
  stoppedAt: number;
  /** A record ran across `end`: the reader went on to the end of the file. */
  crossed: boolean;
  /** csv-parse's line number at `stoppedAt`. */
  lines: number;
}

/** Options of the {@link RecordReader} constructor. */
export interface RecordReaderOptions {
  /** Records end with `\r\n` (`true`) or `\n` (`false`); default: as the first one does. */
  crlf?: boolean;
}

/** Reads CSV records from a file or a byte range, csv-parse compatible (see the module doc). */
export class RecordReader {
  #mode = MODE_UNKNOWN;
  #lines = 1;
  #view: RecordView = {
    buf: new Uint8Array(0),
    ends: new Int32Array(256),
    numbers: new Float64Array(256),
    numbered: false,
    quoted: new Uint8Array(256),
    anyQuoted: false,
    count: 0,
    line: 1,
    offset: 0,
    length: 0,
    pos: 0,
  };

  /** Fields (by index) whose numbers are read while tokenizing: 1 = numeric. */
  numeric: Uint8Array = new Uint8Array(0);

  constructor(options: RecordReaderOptions = {}) {
    if (options.crlf !== undefined) this.#mode = options.crlf ? MODE_CRLF : MODE_LF;
  }

  /** Streams a file (or the part `start`/`first`/`end` say) record by record. */
  async readFile(file: Deno.FsFile, options: ReadFileOptions): Promise<ReadResult> {
    const { onRecord, onBlock, signal, start = 0, maxRecords = Infinity } = options;
    let end = options.end ?? Infinity;
    // One spare byte after the data holds a sentinel line feed.
    const buf = new Uint8Array(MAX_RECORD_BYTES + BLOCK_BYTES + 1);
    const view = this.#view;
    view.buf = buf;
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    let carry = 0;
    let total = 0;
    let records = 0;
    let crossed = false;
    let pos = (options.first ?? start) - start;
    for (let firstBlock = true;; firstBlock = false) {
      signal?.throwIfAborted();
      let n = 0;
      while (n < BLOCK_BYTES) {
        const got = await file.read(buf.subarray(carry + n, carry + BLOCK_BYTES));
        if (got === null) break;
        n += got;
      }
      if (n > 0) onBlock?.(buf.subarray(carry, carry + n), start + total);
      const eof = n < BLOCK_BYTES;
      const base = start + total - carry;
      total += n;
      const limit = carry + n;
      buf[limit] = LF;
      if (firstBlock) {
        if (start === 0 && limit >= 2 && buf[0] === 0xff && buf[1] === 0xfe) {
          throw new Unsupported("UTF-16 byte-order mark");
        }
        if (start === 0 && limit >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
          pos = 3;
        }
      } else pos = 0;
      while (pos < limit) {
        const at = base + pos;
        if (at >= end) {
          if (at === end) return { bytes: total, stoppedAt: at, crossed, lines: this.#lines };
          crossed = true;
          end = Infinity;
        }
        const next = this.#tokenize(buf, pos, limit, eof);
        if (next === NEED_MORE) break;
        if (view.count > 0) {
          view.offset = at;
          view.length = next - pos;
          onRecord(view);
          if (++records >= maxRecords) {
            return { bytes: total, stoppedAt: base + next, crossed, lines: this.#lines };
          }
        }
        pos = next;
      }
      if (eof) return { bytes: total, stoppedAt: base + pos, crossed, lines: this.#lines };
      carry = limit - pos;
      if (carry > MAX_RECORD_BYTES) {
        throw new Unsupported(`a record over ${MAX_RECORD_BYTES} bytes near line ${this.#lines}`);
      }
      buf.copyWithin(0, pos, limit);
    }
  }

  /**
   * Reads the one record in `bytes` (a record's bytes as {@link RecordView.offset} and
   * `length` located them, in a file whose records end with `\r\n` when `crlf`).
   */
  parseRecord(bytes: Uint8Array, options: { crlf: boolean; line: number }): RecordView {
    this.#mode = options.crlf ? MODE_CRLF : MODE_LF;
    this.#lines = options.line;
    const buf = new Uint8Array(bytes.length + 1);
    buf.set(bytes);
    buf[bytes.length] = LF;
    const view = this.#view;
    view.buf = buf;
    const next = this.#tokenize(buf, 0, bytes.length, true);
    if (next !== bytes.length || view.count === 0) throw new Unsupported("not one record");
    view.offset = 0;
    view.length = next;
    return view;
  }

  /** Whether the file's records end with `\r\n` (known after the first record). */
  get crlf(): boolean {
    return this.#mode === MODE_CRLF;
  }

  #grow(): void {
    const v = this.#view;
    const ends = new Int32Array(v.ends.length * 2);
    ends.set(v.ends);
    const quoted = new Uint8Array(ends.length);
    quoted.set(v.quoted);
    const numbers = new Float64Array(ends.length);
    numbers.set(v.numbers);
    v.ends = ends;
    v.quoted = quoted;
    v.numbers = numbers;
  }

  /**
   * Finds the record starting at `pos` (`buf[limit]` must be a line feed: the sentinel);
   * returns the position after its delimiter, or `NEED_MORE` when the record continues past
   * `limit` and more bytes will come. Sets `count` 0 for a skipped empty line.
   */
  #tokenize(buf: Uint8Array, pos: number, limit: number, eof: boolean): number {
    const view = this.#view;
    if (view.anyQuoted) {
      view.quoted.fill(0);
      view.anyQuoted = false;
    }
    let ends = view.ends;
    let numbers = view.numbers;
    let cap = ends.length;
    const numeric = this.numeric;
    const numericFields = numeric.length;
    let f = 0;
    let i = pos;
    let breaks = 0; // CR/LF bytes inside fields: csv-parse counts each as a line
    let after: number; // position after the record delimiter
    let delimited = 1; // 0 when the record ends at the end of the file
    if (numericFields > 0 && numeric[0] !== 0) i = readDecimal(buf, i, numbers, 0);
    for (;;) {
      // Most bytes are above the comma; a tight loop skips them (V8 compiles it best).
      let b: number;
      while ((b = buf[i]!) > COMMA) i++;
      if (b === COMMA) {
        ends[f] = i++;
        if (++f === cap) {
          this.#grow();
          ends = view.ends;
          numbers = view.numbers;
          cap = ends.length;
        }
        if (f < numericFields && numeric[f] !== 0) i = readDecimal(buf, i, numbers, f);
        continue;
      }
      if (b === LF) {
        if (i >= limit) {
          if (!eof) return NEED_MORE;
          ends[f] = i;
          after = i;
          delimited = 0;
          break;
        }
        if (this.#mode === MODE_CRLF) {
          throw new Unsupported(`a line feed without carriage return at line ${this.#lines}`);
        }
        this.#mode = MODE_LF;
        ends[f] = i;
        after = i + 1;
        break;
      }
      if (b === CR) {
        if (this.#mode === MODE_LF) {
          breaks++;
          i++;
          continue;
        }
        if (i + 1 >= limit && !eof) return NEED_MORE;
        if (i + 1 >= limit || buf[i + 1] !== LF) {
          throw new Unsupported(`a carriage return without line feed at line ${this.#lines}`);
        }
        this.#mode = MODE_CRLF;
        ends[f] = i;
        after = i + 2;
        break;
      }
      if (b === QUOTE && i === (f === 0 ? pos : ends[f - 1]! + 1)) {
        // A quoted field: find the closing quote (`""` is an escaped quote).
        let j = i + 1;
        let escaped = false;
        for (;;) {
          j = buf.indexOf(QUOTE, j);
          if (j < 0 || j >= limit) {
            if (!eof) return NEED_MORE;
            throw new Unsupported(`an unclosed quote at line ${this.#lines}`);
          }
          if (j + 1 >= limit && !eof) return NEED_MORE;
          if (j + 1 < limit && buf[j + 1] === QUOTE) {
            escaped = true;
            j += 2;
            continue;
          }
          break;
        }
        for (let k = i + 1; k < j; k++) {
          const c = buf[k]!;
          if (c === LF || c === CR) breaks++;
        }
        view.quoted[f] = escaped ? 2 : 1;
        view.anyQuoted = true;
        const k = j + 1;
        if (k >= limit) {
          // The end of the file (NEED_MORE was returned above otherwise).
          ends[f] = k;
          after = k;
          delimited = 0;
          break;
        }
        const n = buf[k]!;
        ends[f] = k;
        if (n === COMMA) {
          if (++f === cap) {
            this.#grow();
            ends = view.ends;
            numbers = view.numbers;
            cap = ends.length;
          }
          i = k + 1;
          if (f < numericFields && numeric[f] !== 0) i = readDecimal(buf, i, numbers, f);
          continue;
        }
        if (n === LF && this.#mode !== MODE_CRLF) {
          this.#mode = MODE_LF;
          after = k + 1;
          break;
        }
        if (n === CR && this.#mode !== MODE_LF) {
          if (k + 1 >= limit && !eof) return NEED_MORE;
          if (k + 1 < limit && buf[k + 1] === LF) {
            this.#mode = MODE_CRLF;
            after = k + 2;
            break;
          }
        }
        throw new Unsupported(`text after a closing quote at line ${this.#lines}`);
      }
      // Any other byte, a quote inside an unquoted field included (relax_quotes), is data.
      i++;
    }
    view.numbered = numericFields > 0;
    const empty = f === 0 && !view.anyQuoted && ends[0] === pos;
    view.count = empty ? 0 : f + 1;
    view.pos = pos;
    view.line = this.#lines + breaks;
    this.#lines += breaks + delimited;
    return after;
  }
}

/**
 * Reads a plain decimal (`-?digits[.digits]`, at most 15 digits) starting at `i` into
 * `numbers[f]` when the field ends right after it (delimiter, CR or LF): the same double as
 * {@link parseNumber}. `-Infinity` for an empty field, NaN for anything else. Returns where it
 * stopped (the tokenizer goes on from there: none of the bytes taken is special to CSV).
 */
function readDecimal(buf: Uint8Array, i: number, numbers: Float64Array, f: number): number {
  const start = i;
  let c = buf[i]!;
  const negative = c === 45;
  if (negative) c = buf[++i]!;
  let mantissa = 0;
  let digits = 0;
  while ((c - 48) >>> 0 <= 9) {
    mantissa = mantissa * 10 + (c - 48);
    digits++;
    c = buf[++i]!;
  }
  let scale = 0;
  if (c === 46) {
    c = buf[++i]!;
    while ((c - 48) >>> 0 <= 9) {
      mantissa = mantissa * 10 + (c - 48);
      scale++;
      c = buf[++i]!;
    }
    digits += scale;
  }
  // A CR ends the field only before an LF: elsewhere (an LF file) it is part of the field.
  if (c === COMMA || c === LF || (c === CR && buf[i + 1] === LF)) {
    if (digits > 0 && digits <= 15) {
      const value = scale === 0 ? mantissa : mantissa / POW10[scale]!;
      numbers[f] = negative ? -value : value;
      return i;
    }
    if (i === start) {
      numbers[f] = -Infinity;
      return i;
    }
  }
  numbers[f] = NaN;
  return i;
}

const DECODER = new TextDecoder();

/** Field `i` of a record as a string, as csv-parse gives it (quotes removed, `""` → `"`). */
export function fieldText(view: RecordView, i: number): string {
  if (i >= view.count) return "";
  const s = fieldStart(view, i);
  const e = fieldEnd(view, i);
  const buf = view.buf;
  let text: string;
  if (e - s <= 64) {
    // Short fields: build ASCII directly (TextDecoder costs more than it saves here).
    text = "";
    for (let k = s; k < e; k++) {
      const c = buf[k]!;
      if (c >= 0x80) {
        text = DECODER.decode(buf.subarray(s, e));
        break;
      }
      text += String.fromCharCode(c);
    }
  } else text = DECODER.decode(buf.subarray(s, e));
  return view.anyQuoted && view.quoted[i] === 2 ? text.replaceAll('""', '"') : text;
}

/** Every field of a record as strings (what csv-parse hands to `on_record`). */
export function recordTexts(view: RecordView): string[] {
  const out = new Array<string>(view.count);
  for (let i = 0; i < view.count; i++) out[i] = fieldText(view, i);
  return out;
}

const POW10 = new Float64Array(23).map((_, i) => Number(`1e${i}`));

/** Marker (NaN): the bytes are not a number the fast path reads exactly; use `Number()`. */
export const SLOW = NaN;
/** Marker: the field is empty after trimming (the fast path never yields an infinity). */
export const EMPTY = -Infinity;

/**
 * Reads a plain decimal number (`-7.5`, `0.000185`, `1.01E-06`) from bytes exactly as
 * `Number(text.trim())` would: up to 15 digits and a power of ten within ±22, so one correctly
 * rounded multiplication or division gives the same double (Clinger's fast path). Returns
 * {@link EMPTY} for an empty field and {@link SLOW} for anything else (non-ASCII, `Infinity`,
 * hex, more digits), which the caller parses with `Number()`.
 */
export function parseNumber(buf: Uint8Array, s: number, e: number): number {
  // Trim what String.prototype.trim would (ASCII part: space, \t \n \v \f \r).
  while (s < e && (buf[s] === 32 || (buf[s]! - 9) >>> 0 <= 4)) s++;
  while (e > s && (buf[e - 1] === 32 || (buf[e - 1]! - 9) >>> 0 <= 4)) e--;
  if (s === e) return EMPTY;
  let i = s;
  let c = buf[i]!;
  const negative = c === 45;
  if (negative || c === 43) i++;
  let mantissa = 0;
  const digitsStart = i;
  while (i < e && (c = buf[i]! - 48) >>> 0 <= 9) {
    mantissa = mantissa * 10 + c;
    i++;
  }
  let digits = i - digitsStart;
  let scale = 0;
  if (i < e && buf[i] === 46) {
    const fractionStart = ++i;
    while (i < e && (c = buf[i]! - 48) >>> 0 <= 9) {
      mantissa = mantissa * 10 + c;
      i++;
    }
    scale = i - fractionStart;
    digits += scale;
  }
  // Leading zeros count as digits here: such numbers just take the slow path.
  if (digits === 0 || digits > 15) return SLOW;
  let exponent = 0;
  if (i < e) {
    c = buf[i]!;
    if (c !== 101 && c !== 69) return SLOW;
    i++;
    let expNegative = false;
    if (i < e && (buf[i] === 45 || buf[i] === 43)) {
      expNegative = buf[i] === 45;
      i++;
    }
    const expStart = i;
    while (i < e && (c = buf[i]! - 48) >>> 0 <= 9) {
      exponent = exponent * 10 + c;
      if (exponent > 1000) return SLOW;
      i++;
    }
    if (i === expStart || i !== e) return SLOW;
    if (expNegative) exponent = -exponent;
  }
  const power = exponent - scale;
  let value: number;
  if (mantissa === 0 || power === 0) value = mantissa;
  else if (power > 0 && power <= 22) value = mantissa * POW10[power]!;
  else if (power < 0 && power >= -22) value = mantissa / POW10[-power]!;
  else return SLOW;
  return negative ? -value : value;
}

/**
 * Hash of a folded artist key, computed either from the key string or, for plain ASCII, from
 * the raw bytes of the name (see {@link foldHashBytes}): the two agree.
 */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 15)) >>> 0 || 1;
}

/** `foldText()` of single code points, computed on first use. */
const CODE_POINT_FOLDS = new Map<number, string>();

/**
 * {@link keyHash} of `foldText()` of the UTF-8 text in `buf[s .. e)`, without decoding it:
 * `foldText()` works one code point at a time (NFKD, marks dropped, lower case, letters and
 * digits kept), so the fold of each code point is memoized and fed to the hash. The one
 * context-dependent case, capital sigma (lower case `ς` at the end of a word, `σ` elsewhere),
 * and invalid UTF-8 return -1: the caller then folds the decoded text. Returns 0 when nothing is
 * left after folding.
 */
export function foldHashBytes(buf: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5;
  let n = 0;
  for (let i = s; i < e;) {
    let c = buf[i]!;
    if (c < 0x80) {
      i++;
      if (c >= 65 && c <= 90) c += 32;
      else if (c === 38) {
        h = Math.imul(h ^ 97, 0x01000193);
        h = Math.imul(h ^ 110, 0x01000193);
        h = Math.imul(h ^ 100, 0x01000193);
        n += 3;
        continue;
      } else if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57))) continue;
      h = Math.imul(h ^ c, 0x01000193);
      n++;
      continue;
    }
    let cp: number;
    let len: number;
    if ((c & 0xe0) === 0xc0) {
      cp = c & 0x1f;
      len = 2;
    } else if ((c & 0xf0) === 0xe0) {
      cp = c & 0x0f;
      len = 3;
    } else if ((c & 0xf8) === 0xf0) {
      cp = c & 0x07;
      len = 4;
    } else return -1;
    if (i + len > e) return -1;
    for (let k = 1; k < len; k++) {
      const b = buf[i + k]!;
      if ((b & 0xc0) !== 0x80) return -1;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (
      (len === 2 && cp < 0x80) ||
      (len === 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len === 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      cp === 0x3a3
    ) return -1;
    i += len;
    let fold = CODE_POINT_FOLDS.get(cp);
    if (fold === undefined) {
      fold = foldText(String.fromCodePoint(cp));
      CODE_POINT_FOLDS.set(cp, fold);
    }
    for (let k = 0; k < fold.length; k++) {
      h = Math.imul(h ^ fold.charCodeAt(k), 0x01000193);
      n++;
    }
  }
  if (n === 0) return 0;
  return (h ^ (h >>> 15)) >>> 0 || 1;
}
