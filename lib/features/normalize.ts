/**
 * Title and artist normalization for matching tracks by name when their ids differ (a re-release,
 * a remaster, another market's copy): case, accents, punctuation and spacing are ignored,
 * "feat. ..." / "(with ...)" credits dropped, and version suffixes such as "- Remastered 2011",
 * "- 2014 Remaster" or "- Live" removed for the looser of the two keys.
 *
 * Two keys per title, tried in order: the *full* key (credits dropped, version kept) so that
 * "Song - Live" finds the live recording when the catalog has it, then the *base* key (version
 * dropped) so that it still finds "Song" when it does not.
 * @module
 */

/** Letters NFKD does not decompose, folded to ASCII. */
const SPECIAL_LETTERS: Record<string, string> = {
  "ø": "o",
  "æ": "ae",
  "œ": "oe",
  "ß": "ss",
  "ł": "l",
  "đ": "d",
  "ð": "d",
  "þ": "th",
  "ı": "i",
};
const SPECIAL_RE = /[øæœßłđðþı]/g;
const MARKS_RE = /\p{M}+/gu;
const APOSTROPHES_RE = /['’‘`´]/g;
const NOT_ALNUM_RE = /[^\p{L}\p{N}]+/gu;
const ASCII_SIMPLE_RE = /^[\x20-\x7e]*$/;
const ASCII_NOT_ALNUM_RE = /[^a-z0-9]+/g;

/**
 * Folds text to a comparison key: compatibility-decomposed, accents removed, lower case, `&` read
 * as "and", apostrophes dropped, then only letters and digits kept (no spaces, so "AC/DC",
 * "AC DC" and "ACDC" agree).
 * @example foldText("Beyoncé & JAY-Z") // "beyonceandjayz"
 */
export function foldText(text: string): string {
  if (ASCII_SIMPLE_RE.test(text)) {
    // Fast path for plain ASCII (most rows): no decomposition needed.
    return text.toLowerCase().replaceAll("&", "and").replace(ASCII_NOT_ALNUM_RE, "");
  }
  return text
    .normalize("NFKD")
    .replace(MARKS_RE, "")
    .toLowerCase()
    .replace(SPECIAL_RE, (c) => SPECIAL_LETTERS[c] ?? c)
    .replaceAll("&", "and")
    .replace(APOSTROPHES_RE, "")
    .replace(NOT_ALNUM_RE, "");
}

/** "(feat. X)", "[ft. X]", "(featuring X)", "(with X)". */
const CREDIT_BRACKETED_RE = /\s*[([]\s*(?:feat\.?|ft\.?|featuring|with)\s[^)\]]*[)\]]/giu;
/** " feat. X ..." or " - ft. X" to the end ("with" alone is too common in titles to drop). */
const CREDIT_TRAILING_RE = /\s+(?:[-–—]\s*)?(?:feat\.|ft\.|feat\b|featuring\b)\s.*$/iu;

const VERSION_WORDS = String.raw`(?:` +
  [
    // Remasters: "Remastered", "Remastered 2011", "2014 Remaster", "2009 Digital Remaster",
    // "Remastered Version", "2011 Remastered Edition"
    String.raw`(?:\d{4}\s+)?(?:digital(?:ly)?\s+)?remaster(?:ed)?(?:\s+(?:\d{4}|version|edition))*`,
    String.raw`re-?recorded(?:\s+\d{4})?`,
    // Live: "Live", "Live at Wembley 1986", "Live Version", "En Directo"
    String.raw`live(?:\s[^()[\]]*)?`,
    String.raw`en\s+(?:directo|vivo)`,
    String.raw`ao\s+vivo`,
    // Edits and mixes of the same recording
    String.raw`(?:radio|single|album|clean|explicit|original|edit)\s+(?:edit|version|mix)`,
    String.raw`(?:\d{4}\s+)?(?:mono|stereo)(?:\s+(?:version|mix|remaster(?:ed)?))?`,
    String.raw`bonus\s+track`,
  ].join("|") +
  String.raw`)`;
/** " - <version>" at the end. */
const VERSION_DASH_RE = new RegExp(String.raw`\s+[-–—]\s+${VERSION_WORDS}\s*$`, "iu");
/** "(<version>)" or "[<version>]" at the end. */
const VERSION_BRACKET_RE = new RegExp(String.raw`\s*[([]\s*${VERSION_WORDS}\s*[)\]]\s*$`, "iu");

/** Removes featured-artist credits from a title ("Song (feat. X)" → "Song"). */
export function stripCredits(title: string): string {
  return title.replace(CREDIT_BRACKETED_RE, "").replace(CREDIT_TRAILING_RE, "").trim();
}

/**
 * Removes trailing version suffixes of the same song ("- Remastered 2011", "- 2014 Remaster",
 * "(Live)", "- Radio Edit", "- Mono"), repeatedly. Remixes, acoustic and instrumental versions
 * are different recordings and are kept.
 */
export function stripVersion(title: string): string {
  let current = title.trim();
  for (;;) {
    const next = current.replace(VERSION_DASH_RE, "").replace(VERSION_BRACKET_RE, "").trim();
    if (next === current || next === "") return current;
    current = next;
  }
}

/** The two title keys: `full` (credits dropped) and `base` (credits and version dropped). */
export interface TitleKeys {
  full: string;
  base: string;
}

/** Title keys of a track name; empty strings when nothing is left to compare. */
export function titleKeys(title: string): TitleKeys {
  const credited = stripCredits(title);
  const full = foldText(credited);
  const base = foldText(stripVersion(credited));
  return { full, base: base || full };
}

/** Comparison key of an artist name. */
export function artistKey(artist: string): string {
  return foldText(artist);
}

/**
 * The name keys of a (title, primary artist) pair, for lookups: `f:` + full title key and
 * `b:` + base title key, each joined to the artist key. Empty when title or artist folds to
 * nothing (such tracks are never matched by name).
 */
export function nameKeys(title: string, artist: string): { full: string; base: string } | null {
  const a = artistKey(artist);
  if (!a) return null;
  const t = titleKeys(title);
  if (!t.full) return null;
  return { full: `f:${t.full}\u0000${a}`, base: `b:${t.base}\u0000${a}` };
}

/**
 * Joins an already folded title key and artist key into a lookup key (see {@link nameKeys}).
 */
export function joinKey(kind: "f" | "b", titleKey: string, artistKeyValue: string): string {
  return `${kind}:${titleKey}\u0000${artistKeyValue}`;
}
