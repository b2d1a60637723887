/**
 * The object store of the `local` profile: a folder (default `$PIPELINE_DATA_DIR/lake/`) holding
 * the same keys S3 will (`top_tracks/snapshot_date=YYYY-MM-DD/top_tracks.parquet`).
 *
 * Each object is written to a temporary name and renamed into place, then described by a sidecar
 * `<key>.meta.json` (bytes, sha256, content_sha256, size and mtime of the data file it describes).
 * A sidecar that no longer matches its file (edited by hand, crash between the two renames) is
 * ignored and the file's SHA-256 is computed again. Putting an object identical to the stored one
 * (same content fingerprint, or same bytes) writes nothing and returns the stored object's receipt
 * with `skipped: true`.
 * @module
 */

import { join, relative, resolve, sep } from "node:path";
import { isRecord } from "../json.ts";
import { pathToFileURL } from "node:url";
import { StorageError } from "../errors.ts";
import { readJsonIfExists, writeFileAtomic, writeJsonAtomic } from "../fs_atomic.ts";
import { sha256Hex } from "../sha256.ts";
import type { Logger } from "../log.ts";
import {
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutReceipt,
  putReceipt,
} from "./object_store.ts";

/** Suffix of the metadata sidecar written beside each object. */
export const META_SUFFIX = ".meta.json";

/** The sidecar's content. */
interface Sidecar {
  key: string;
  bytes: number;
  sha256: string;
  content_sha256?: string;
  content_type?: string;
  /** mtime (ms) of the data file when the sidecar was written. */
  mtime_ms: number;
  stored_at: string;
}

const SEGMENT = /^[A-Za-z0-9_=.,+@-]+$/;

/**
 * Checks an object key: relative, `/`-separated, no empty, `.` or `..` segment, no segment
 * starting with `.` (temporary files), only URL-safe characters, not ending in `.meta.json`.
 * @throws {StorageError} naming the key and the rule it breaks.
 */
export function validateKey(key: string): string {
  const bad = (why: string) => new StorageError(`Object key "${key}" is not valid: ${why}`);
  if (typeof key !== "string" || key.length === 0) throw bad("it is empty");
  if (key.length > 1024) throw bad("longer than 1024 characters");
  if (key.startsWith("/") || /^[A-Za-z]:/.test(key)) throw bad("it is an absolute path");
  if (key.includes("\\")) throw bad("it contains a backslash (use /)");
  if (key.endsWith(META_SUFFIX)) throw bad(`"${META_SUFFIX}" is reserved for metadata sidecars`);
  for (const segment of key.split("/")) {
    if (segment === "" || segment === "." || segment === "..") {
      throw bad(`it has an empty, "." or ".." segment`);
    }
    if (segment.startsWith(".")) throw bad(`segment "${segment}" starts with "."`);
    if (!SEGMENT.test(segment)) {
      throw bad(`segment "${segment}" has characters other than letters, digits and _=.,+@-`);
    }
  }
  return key;
}

/** Options of {@link FolderStore}. */
export interface FolderStoreOptions {
  log?: Logger;
}

/** An object store in a local folder. */
export class FolderStore implements ObjectStore {
  readonly kind = "folder" as const;
  /** Absolute path of the folder. */
  readonly dir: string;
  #log?: Logger;

  constructor(dir: string, options: FolderStoreOptions = {}) {
    this.dir = resolve(dir);
    this.#log = options.log;
  }

  /** `file:///...` URI of a key. */
  uri(key: string): string {
    return pathToFileURL(this.#path(key)).href;
  }

  /** Absolute path of a key's file. */
  path(key: string): string {
    return this.#path(key);
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<PutReceipt> {
    const path = this.#path(key);
    const sha256 = await sha256Hex(data);
    if (options.sha256 !== undefined && options.sha256 !== sha256) {
      throw new StorageError(
        `Cannot put "${key}": the bytes' sha256 is ${sha256}, the caller said ${options.sha256}`,
      );
    }
    const stored = await this.head(key);
    if (
      stored?.sha256 && (
        stored.sha256 === sha256 ||
        (options.contentSha256 !== undefined && stored.contentSha256 === options.contentSha256)
      )
    ) {
      this.#log?.info(`Identical object already stored at ${key}: nothing written`, {
        uri: this.uri(key),
      });
      return putReceipt(this.uri(key), key, { ...stored, sha256: stored.sha256 }, true);
    }
    await this.#io(`write "${key}" to`, async () => {
      await writeFileAtomic(path, data);
      const stat = await Deno.stat(path);
      const sidecar: Sidecar = {
        key,
        bytes: data.length,
        sha256,
        ...(options.contentSha256 ? { content_sha256: options.contentSha256 } : {}),
        ...(options.contentType ? { content_type: options.contentType } : {}),
        mtime_ms: stat.mtime?.getTime() ?? 0,
        stored_at: new Date().toISOString(),
      };
      await writeJsonAtomic(path + META_SUFFIX, sidecar);
    });
    this.#log?.info(`Stored ${key} (${data.length} bytes)`, { uri: this.uri(key) });
    return putReceipt(
      this.uri(key),
      key,
      { bytes: data.length, sha256, contentSha256: options.contentSha256 },
      false,
    );
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#path(key);
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw this.#wrap(`read "${key}" from`, error);
    }
    if (!stat.isFile) {
      throw new StorageError(`Lake folder ${this.dir}: "${key}" is a folder, not an object`);
    }
    return await this.#info(key, path, stat);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    if (prefix.startsWith("/") || prefix.split("/").includes("..")) {
      throw new StorageError(
        `List prefix "${prefix}" is not valid: expected a relative key prefix`,
      );
    }
    // Walk from the deepest folder the prefix names.
    const slash = prefix.lastIndexOf("/");
    const start = slash < 0 ? "" : prefix.slice(0, slash);
    const out: ObjectInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      const abs = rel ? join(this.dir, rel) : this.dir;
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(abs));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
          return;
        }
        throw this.#wrap("list", error);
      }
      for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        if (entry.name.startsWith(".")) continue;
        const key = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory) {
          if (key.startsWith(prefix) || prefix.startsWith(key + "/")) await walk(key);
        } else if (entry.isFile && !key.endsWith(META_SUFFIX) && key.startsWith(prefix)) {
          const path = join(abs, entry.name);
          out.push(await this.#info(key, path, await Deno.stat(path)));
        }
      }
    };
    await walk(start);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(key: string): Promise<Uint8Array> {
    const path = this.#path(key);
    try {
      return await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        throw new StorageError(`No object "${key}" in the lake folder ${this.dir}`);
      }
      throw this.#wrap(`read "${key}" from`, error);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #path(key: string): string {
    validateKey(key);
    const path = join(this.dir, ...key.split("/"));
    const rel = relative(this.dir, path);
    if (rel.startsWith("..") || rel.startsWith(sep)) {
      throw new StorageError(`Object key "${key}" resolves outside the lake folder ${this.dir}`);
    }
    return path;
  }

  /** Object info from the sidecar when it still describes the file, else from the file itself. */
  async #info(key: string, path: string, stat: Deno.FileInfo): Promise<ObjectInfo> {
    let sidecar: Record<string, unknown> = {};
    try {
      const value = await readJsonIfExists(path + META_SUFFIX);
      if (isRecord(value)) sidecar = value;
    } catch {
      // corrupt sidecar: recompute below
    }
    const mtime = stat.mtime?.getTime() ?? 0;
    // trusted only while it describes the file as it is (size and mtime), field by field
    if (
      sidecar.bytes === stat.size && sidecar.mtime_ms === mtime &&
      typeof sidecar.sha256 === "string" && /^[0-9a-f]{64}$/.test(sidecar.sha256)
    ) {
      return {
        key,
        bytes: stat.size,
        sha256: sidecar.sha256,
        ...(typeof sidecar.content_sha256 === "string" && sidecar.content_sha256
          ? { contentSha256: sidecar.content_sha256 }
          : {}),
        lastModified: stat.mtime ?? undefined,
      };
    }
    const data = await Deno.readFile(path);
    return {
      key,
      bytes: data.length,
      sha256: await sha256Hex(data),
      lastModified: stat.mtime ?? undefined,
    };
  }

  async #io(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (error) {
      throw this.#wrap(what, error);
    }
  }

  #wrap(what: string, error: unknown): StorageError {
    if (error instanceof StorageError) return error;
    const reason = error instanceof Error ? error.message : String(error);
    return new StorageError(`Cannot ${what} the lake folder ${this.dir}: ${reason}`, {
      hint: "Check that PIPELINE_LAKE_DIR (or PIPELINE_DATA_DIR) is a writable folder.",
      cause: error,
    });
  }
}
