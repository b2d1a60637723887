/**
 * The text reader of a catalog: npm:csv-parse, one record of strings at a time, through the
 * shared row logic. Used for the files the byte reader does not read (see csv_catalog.ts), and
 * by tests as the reference. Imported only when needed.
 * @module
 */

import { CsvError, Parser } from "csv-parse";
import { ConfigError } from "../errors.ts";
import type { CatalogMatcher } from "./_catalog_rows.ts";

/** Reads the whole file with csv-parse into `m` (header first, then every row). */
export async function scanText(
  m: CatalogMatcher,
  options: { signal?: AbortSignal },
): Promise<void> {
  await streamCsv(m.path, {
    signal: options.signal,
    onRecord: (record, line) => {
      if (m.header === null) m.setHeader(record);
      else m.row(record, line);
    },
    onBytes: (n) => m.stats.bytes += n,
  });
  m.finishStats();
}

interface StreamCsvOptions {
  signal?: AbortSignal;
  onRecord: (record: string[], line: number) => void;
  onBytes: (n: number) => void;
}

/** Feeds the file through csv-parse chunk by chunk, calling `onRecord` synchronously per row. */
async function streamCsv(path: string, options: StreamCsvOptions): Promise<void> {
  const { signal, onRecord, onBytes } = options;
  let failure: unknown;
  let lastLine = 1;
  const parser = new Parser({
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    // An unclosed quote would otherwise swallow the rest of the file into one field.
    max_record_size: 1 << 20,
    on_record: (record: string[], context) => {
      lastLine = context.lines;
      onRecord(record, context.lines);
      return null;
    },
  });
  const finished = new Promise<void>((resolve) => {
    parser.once("finish", () => resolve());
    parser.once("error", (error) => {
      failure ??= error;
      resolve();
    });
  });
  const file = await Deno.open(path, { read: true });
  try {
    for await (const chunk of file.readable) {
      if (failure !== undefined) break;
      signal?.throwIfAborted();
      onBytes(chunk.byteLength);
      if (!parser.write(chunk) && failure === undefined) {
        await new Promise<void>((resolve) => {
          parser.once("drain", resolve);
          parser.once("error", () => resolve());
        });
      }
    }
    if (failure === undefined) {
      parser.end();
      await finished;
    }
  } finally {
    parser.destroy();
    try {
      file.close();
    } catch (error) {
      // The readable stream closes the file when it ends or is cancelled.
      if (!(error instanceof Deno.errors.BadResource)) failure ??= error;
    }
  }
  if (failure !== undefined) {
    if (failure instanceof ConfigError) throw failure;
    if (failure instanceof CsvError) {
      throw new ConfigError(
        `Cannot read audio features from "${path}": malformed CSV near line ${lastLine} (${failure.message})`,
      );
    }
    throw failure;
  }
}
