/**
 * Atomic file writes: data goes to a temporary name beside the target, is flushed, then renamed
 * over it, so a reader sees either the old file or the whole new one, never half of it.
 * @module
 */

import { dirname, join } from "node:path";
import { StorageError } from "./errors.ts";

/** Options of {@link writeFileAtomic}. */
export interface WriteAtomicOptions {
  /** File mode, applied when the temporary file is created (e.g. `0o600` for secrets). */
  mode?: number;
  /** Create the parent folder if missing (default true). */
  mkdir?: boolean;
}

/** Writes `data` to `path` atomically (temp name + fsync + rename). */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteAtomicOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await writeChunksAtomic(path, [bytes], options);
}

/**
 * Writes a sequence of chunks (e.g. a stream of row groups) to `path` atomically: every chunk goes
 * to a temporary name beside the target, which is flushed and renamed into place only when the
 * sequence ended; on any error the temporary file is removed and the target left as it was.
 */
export async function writeChunksAtomic(
  path: string,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  options: WriteAtomicOptions = {},
): Promise<void> {
  try {
    await writeChunks(path, chunks, options);
  } catch (error) {
    if (!isNoSpace(error)) throw error;
    // A full disk (or quota) is a storage failure to fix, not a bug: one line naming the folder.
    throw new StorageError(
      `No space left on the device holding ${dirname(path)} (${
        (error as { code?: string }).code
      } writing ${basename(path)})`,
      {
        hint:
          "Free space on that device, then `deno task pipeline --resume`: nothing written is lost.",
        cause: error,
      },
    );
  }
}

/** Whether an error is a full disk (ENOSPC) or an exceeded quota (EDQUOT). */
export function isNoSpace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

async function writeChunks(
  path: string,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  options: WriteAtomicOptions,
): Promise<void> {
  const { mode, mkdir = true } = options;
  if (mkdir) await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${crypto.randomUUID().slice(0, 8)}.${basename(path)}.tmp`);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: mode ?? 0o644 });
  try {
    for await (const chunk of chunks) {
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    }
    await file.sync();
  } catch (error) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  file.close();
  try {
    if (mode !== undefined) await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/** Writes `value` as pretty JSON to `path` atomically. */
export async function writeJsonAtomic(
  path: string,
  value: unknown,
  options: WriteAtomicOptions = {},
): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", options);
}

/** Reads and parses a JSON file (unknown until its reader checks it); a missing file: `undefined`. */
export async function readJsonIfExists(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return JSON.parse(text);
}

function basename(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}

/** A path that exists but is not a regular file (a folder, a FIFO, a device...). */
export class NotARegularFileError extends Error {
  override name = "NotARegularFileError";
  readonly path: string;
  constructor(path: string) {
    super(`${path} is not a regular file`);
    this.path = path;
  }
}

/**
 * Reads a file only if it is a regular file: a FIFO or a device planted in its place would
 * otherwise block the read forever (holding the run lock).
 * @throws {NotARegularFileError} for anything but a regular file; Deno's errors otherwise.
 */
export async function readRegularFile(path: string): Promise<Uint8Array> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new NotARegularFileError(path);
  return await Deno.readFile(path);
}

/** {@link readRegularFile} as UTF-8 text. */
export async function readRegularTextFile(path: string): Promise<string> {
  return new TextDecoder().decode(await readRegularFile(path));
}
