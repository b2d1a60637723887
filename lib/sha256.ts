/**
 * SHA-256, once: of bytes or text, as bytes or hex; async (Web Crypto) for data, sync
 * (`node:crypto`) for the short keys that need one where no `await` fits (lake keys, cache names).
 * @module
 */

import { createHash } from "node:crypto";

const encoder = new TextEncoder();

/** The SHA-256 digest of bytes or text (UTF-8). */
export async function sha256Bytes(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** Hex SHA-256 of bytes or text (UTF-8). */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  return toHex(await sha256Bytes(data));
}

/** Hex SHA-256 of text (UTF-8), synchronously. */
export function sha256HexSync(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
