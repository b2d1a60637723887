/**
 * Text for messages: one line, bounded.
 * @module
 */

/** `text` on one line (runs of white space as one space), at most `max` characters. */
export function oneLine(text: string, max = 400): string {
  return text.replace(/\s+/g, " ").trim().slice(0, max);
}
