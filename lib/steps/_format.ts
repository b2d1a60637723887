/**
 * Small formatting helpers shared by the steps' summaries.
 * @module
 */

/** A byte count as `812 B`, `12.3 kB` or `4.5 MB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
