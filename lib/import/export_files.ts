/**
 * The files of a privacy export as a user hands them over: files, folders, or the zip Spotify
 * sends, in any mix. A zip is read in place (random access on the file, npm:@zip.js/zip.js; no
 * extraction to disk); each JSON file is read whole, one at a time, so memory is bounded by the
 * largest file, not the export. Everything that is not JSON (the PDF, images, ...) is listed as
 * skipped; whether a JSON file is a streaming history is decided from its content by the reader.
 * @module
 */

import { basename, join } from "node:path";
import {
  dedupeHistory,
  type HistoryCounts,
  HistoryFileError,
  type HistoryFormat,
  type HistoryRow,
  parseHistoryFile,
} from "./history.ts";

/** One JSON file of an export (a file, or an entry of a zip). */
export interface ExportFile {
  /** Where it is: the path, or `<zip path>!<entry>`. */
  name: string;
  /** What rows record as their source: the file name, or `<zip name>!<entry>` (no local folders). */
  label: string;
  /** Uncompressed size in bytes. */
  size: number;
  /** Its text (UTF-8). */
  text(): Promise<string>;
}

/** A file that is not read, and why. */
export interface SkippedFile {
  name: string;
  reason: string;
}

/** Largest JSON file read (Spotify's files are ~12 MB; a 1 GB one is not an export file). */
export const MAX_EXPORT_FILE_BYTES = 512 * 1024 * 1024;

/**
 * The JSON files under `paths` (files, folders walked in name order, zips), each once, and the
 * files left out. Throws a {@link HistoryFileError} naming the path when a path does not exist or
 * a `.zip` is not a readable zip.
 */
export async function listExportFiles(
  paths: readonly string[],
): Promise<ExportListing> {
  const files: ExportFile[] = [];
  const skipped: SkippedFile[] = [];
  const closers: (() => void)[] = [];
  const seen = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new HistoryFileError(`Cannot import ${path}: no such file or folder`);
      }
      throw error;
    }
    if (info.isDirectory) {
      const names = [];
      for await (const e of Deno.readDir(path)) names.push(e.name);
      for (const name of names.sort()) await visit(join(path, name));
      return;
    }
    const real = await Deno.realPath(path);
    if (seen.has(real)) return;
    seen.add(real);
    if (!info.isFile) {
      skipped.push({ name: path, reason: "not a regular file" });
    } else if (/\.zip$/i.test(path)) {
      const inside = await zipEntries(path);
      files.push(...inside.files);
      skipped.push(...inside.skipped);
      closers.push(inside.close);
    } else if (/\.json$/i.test(path)) {
      files.push(jsonFile(path, info.size));
    } else {
      skipped.push({ name: path, reason: "not JSON" });
    }
  };
  try {
    for (const path of paths) await visit(path);
  } catch (error) {
    for (const close of closers) close();
    throw error;
  }
  return {
    files,
    skipped,
    close: () => {
      for (const close of closers) close();
    },
  };
}

/** What {@link listExportFiles} found; `close()` releases the zips once their files are read. */
export interface ExportListing {
  files: ExportFile[];
  skipped: SkippedFile[];
  close(): void;
}

function jsonFile(path: string, size: number): ExportFile {
  return {
    name: path,
    label: basename(path),
    size,
    text: async () => {
      if (size > MAX_EXPORT_FILE_BYTES) {
        throw new HistoryFileError(
          `Cannot import ${path}: ${size} bytes is over ${MAX_EXPORT_FILE_BYTES} (not an export file)`,
        );
      }
      return await Deno.readTextFile(path);
    },
  };
}

/** The JSON entries of a zip, read in place. */
async function zipEntries(
  path: string,
): Promise<{ files: ExportFile[]; skipped: SkippedFile[]; close(): void }> {
  const zip = await import("@zip.js/zip.js");
  zip.configure({ useWebWorkers: false });

  /** Random access on the zip file: zip.js reads the central directory, then each entry. */
  class FileReader extends zip.Reader<string> {
    #file?: Deno.FsFile;
    override async init(): Promise<void> {
      this.#file = await Deno.open(path);
      this.size = (await this.#file.stat()).size;
    }
    override async readUint8Array(index: number, length: number): Promise<Uint8Array> {
      const out = new Uint8Array(length);
      await this.#file!.seek(index, Deno.SeekMode.Start);
      let at = 0;
      while (at < length) {
        const n = await this.#file!.read(out.subarray(at));
        if (n === null) break;
        at += n;
      }
      return out.subarray(0, at);
    }
    close(): void {
      this.#file?.close();
    }
  }

  const reader = new FileReader(path);
  let entries: Awaited<ReturnType<InstanceType<typeof zip.ZipReader>["getEntries"]>>;
  try {
    entries = await new zip.ZipReader(reader).getEntries();
  } catch (error) {
    reader.close();
    throw new HistoryFileError(
      `Cannot import ${path}: not a readable zip (${(error as Error).message})`,
      "unreadable",
    );
  }
  const files: ExportFile[] = [];
  const skipped: SkippedFile[] = [];
  for (const entry of entries) {
    const name = `${path}!${entry.filename}`;
    if (entry.directory) continue;
    if (!/\.json$/i.test(entry.filename) || basename(entry.filename).startsWith("._")) {
      skipped.push({ name, reason: "not JSON" });
      continue;
    }
    files.push({
      name,
      label: `${basename(path)}!${entry.filename}`,
      size: entry.uncompressedSize,
      async text() {
        if (entry.uncompressedSize > MAX_EXPORT_FILE_BYTES) {
          throw new HistoryFileError(
            `Cannot import ${name}: ${entry.uncompressedSize} bytes is over ${MAX_EXPORT_FILE_BYTES} (not an export file)`,
          );
        }
        try {
          return await entry.getData!(new zip.TextWriter());
        } catch (error) {
          throw new HistoryFileError(
            `Cannot import ${name}: the zip entry cannot be read (${(error as Error).message})`,
          );
        }
      },
    });
  }
  return { files, skipped, close: () => reader.close() };
}

/** One file's outcome in {@link readExport}. */
export interface ReadFileReport {
  name: string;
  format: HistoryFormat;
  counts: HistoryCounts;
}

/** Options of {@link readExport}. */
export interface ReadExportOptions {
  /** Whose history it is. */
  userId: string;
}

/**
 * Reads every streaming-history file under `paths`: JSON files that are not a streaming history
 * (playlists, the profile, ...) are listed as skipped; a history file that cannot be read (cut
 * short, a bad value) stops the import with a {@link HistoryFileError} naming it, and nothing of
 * the export is returned. The rows come back de-duplicated across files.
 */
export async function readExport(
  paths: readonly string[],
  options: ReadExportOptions,
): Promise<{
  files: ReadFileReport[];
  skipped: SkippedFile[];
  rows: HistoryRow[];
  duplicates: number;
}> {
  const listing = await listExportFiles(paths);
  const files: ReadFileReport[] = [];
  const skipped = [...listing.skipped];
  const all: HistoryRow[] = [];
  try {
    for (const file of listing.files) {
      let read;
      try {
        read = parseHistoryFile(await file.text(), {
          file: file.name,
          sourceFile: file.label,
          userId: options.userId,
        });
      } catch (error) {
        if (error instanceof HistoryFileError && error.problem === "not_history") {
          skipped.push({ name: file.name, reason: "not a streaming history" });
          continue;
        }
        throw error;
      }
      files.push({ name: file.name, format: read.format, counts: read.counts });
      for (const row of read.rows) all.push(row);
    }
  } finally {
    listing.close();
  }
  const { rows, duplicates } = dedupeHistory(all);
  return { files, skipped, rows, duplicates };
}
