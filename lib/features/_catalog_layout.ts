/**
 * The scale of each feature column whose header does not say it, decided from the values at the
 * head of the file (its first MiB), before the catalog is read: a 0–1 feature whose values are
 * (nearly all) above 1 rather than between 0 and 1 is a percentage (the Kaggle "Top 50 Spotify
 * Songs 2019" `Energy`, 0–100); a `key` of note names is read as pitch classes, a `mode` of
 * `Major`/`Minor` as 1/0. A few stray values are bad rows (the range checks reject them); a
 * column split between two readings is an error naming it, never a guess.
 * @module
 */

import { parse } from "csv-parse/sync";
import { ConfigError } from "../errors.ts";
import { FEATURE_COLUMNS, type FeatureName } from "../types.ts";
import { isMissingCell, modeValue, pitchClass, resolveColumns } from "./_catalog_rows.ts";
import type { ColumnMap, FeatureScale } from "./column_map.ts";
import { UNIT_INTERVAL_FEATURES } from "./provider.ts";

/** Bytes of the file's head the values are read from. */
const HEAD_BYTES = 1 << 20;

/**
 * The scale of each feature (by `FEATURE_COLUMNS` index), or undefined when the head cannot be
 * read as CSV (then the catalog's reader reports what is wrong with the file).
 * @throws ConfigError naming the file and the column when a column's values fit no reading.
 */
export async function inferScales(
  path: string,
  columnMap: ColumnMap = {},
): Promise<FeatureScale[] | undefined> {
  let text: string;
  let whole: boolean;
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(HEAD_BYTES);
    let n = 0;
    while (n < buf.length) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    whole = n < buf.length;
    text = new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    file.close();
  }
  if (!whole) text = text.slice(0, text.lastIndexOf("\n") + 1);
  let records: string[][];
  try {
    records = parse(text, {
      bom: true,
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
    }) as string[][];
  } catch {
    return undefined;
  }
  const header = records[0];
  if (!header) return undefined;
  let cols;
  try {
    cols = resolveColumns(header, path, columnMap);
  } catch (error) {
    // the reader resolves the same header and reports what is wrong with it
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
  return FEATURE_COLUMNS.map((name, k) => {
    const explicit = cols.scales[k];
    if (explicit) return explicit;
    const ci = cols.features[k]!;
    if (ci < 0) return "unit";
    const cells: string[] = [];
    for (let r = 1; r < records.length; r++) {
      const cell = records[r]![ci]?.trim() ?? "";
      if (!isMissingCell(cell)) cells.push(cell);
    }
    return decide(name, cells, { file: path, column: header[ci]!.trim() });
  });
}

/**
 * A minority this small (of the larger reading) is taken for bad rows, which the range checks
 * reject; a larger one makes the column ambiguous.
 */
const STRAY_SHARE = 0.1;
/** Values above 1 it takes to read a 0–1 feature as percent. */
const MIN_PERCENT_VALUES = 3;

/** Which of two readings the cells take: the first, the second, or neither (null). */
function majority(first: number, second: number): "first" | "second" | null {
  if (second === 0 || (first > 0 && second <= first * STRAY_SHARE)) return "first";
  if (first === 0 || first <= second * STRAY_SHARE) return "second";
  return null;
}

/** The scale a feature column's cells fit. */
function decide(
  name: FeatureName,
  cells: string[],
  where: { file: string; column: string },
): FeatureScale {
  const ambiguous = (what: string, scales: string) =>
    new ConfigError(
      `Cannot tell how to read ${name} from "${where.file}" (column "${where.column}"): ${what}`,
      {
        hint: `Say it in AUDIO_FEATURES_CSV_COLUMNS, e.g. ${name}=${where.column}:${scales}.`,
      },
    );
  if (name === "key" || name === "mode") {
    const named = cells.filter((c) =>
      (name === "key" ? pitchClass(c) : modeValue(c)) !== undefined
    ).length;
    const numbers = cells.filter((c) => Number.isFinite(Number(c))).length;
    if (named === 0) return "unit";
    const text = name === "key" ? "note" : "mode";
    const pick = majority(numbers, named);
    if (pick === null) {
      throw ambiguous(
        `${named} ${name === "key" ? "note names" : "Major/Minor values"} and ${numbers} numbers`,
        `${text} (or :unit)`,
      );
    }
    return pick === "first" ? "unit" : text;
  }
  if (!UNIT_INTERVAL_FEATURES.includes(name)) return "unit";
  const values = cells.map(Number).filter((v) => Number.isFinite(v));
  // 0–1 readings (0.61) against percent readings (61); 0 and 1 fit both
  const fractions = values.filter((v) => v > 0 && v < 1).length;
  const above = values.filter((v) => v > 1 && v <= 100).length;
  // one or two values above 1 are bad rows of a 0–1 column, not a percent scale
  if (above < MIN_PERCENT_VALUES) return "unit";
  const pick = majority(fractions, above);
  if (pick === null) {
    throw ambiguous(
      `${fractions} values between 0 and 1 and ${above} between 1 and 100 — a 0–1 scale or percent?`,
      "percent (or :unit)",
    );
  }
  return pick === "first" ? "unit" : "percent";
}
