/**
 * A compact set of strings for counting duplicate ids in large catalogs: it stores a 64-bit
 * fingerprint per id in typed arrays (about 16 bytes per id at most, instead of ~80 for a
 * `Set<string>`), so a 1.2M-row catalog costs ~20 MB. Two different ids share a fingerprint with
 * probability ~n²/2⁶⁵ (about 4·10⁻⁸ at 1.2M ids); the only effect would be one row counted as a
 * duplicate. Lookups that decide a match always compare the real strings elsewhere.
 * @module
 */

/** A growable open-addressing hash set of 64-bit string fingerprints. */
export class FingerprintSet {
  #hi: Uint32Array;
  #lo: Uint32Array;
  #mask: number;
  #size = 0;

  /** Creates a set sized for about `expected` entries. */
  constructor(expected = 1024) {
    let capacity = 1024;
    while (capacity * 0.7 < expected) capacity *= 2;
    this.#hi = new Uint32Array(capacity);
    this.#lo = new Uint32Array(capacity);
    this.#mask = capacity - 1;
  }

  /** Number of distinct fingerprints added. */
  get size(): number {
    return this.#size;
  }

  /** Adds `value`; returns `false` when it (its fingerprint) was already present. */
  add(value: string): boolean {
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    h1 = (h1 ^ (h1 >>> 16)) >>> 0;
    h2 = (Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35) ^ value.length) >>> 0;
    if (h1 === 0 && h2 === 0) h2 = 1; // (0, 0) marks an empty slot
    if (this.#insert(h1, h2)) {
      this.#size++;
      if (this.#size > (this.#mask + 1) * 0.7) this.#grow();
      return true;
    }
    return false;
  }

  #insert(h1: number, h2: number): boolean {
    const hi = this.#hi;
    const lo = this.#lo;
    let slot = (h1 ^ Math.imul(h2, 0x27d4eb2d)) & this.#mask;
    for (;;) {
      const a = hi[slot]!;
      const b = lo[slot]!;
      if (a === 0 && b === 0) {
        hi[slot] = h1;
        lo[slot] = h2;
        return true;
      }
      if (a === h1 && b === h2) return false;
      slot = (slot + 1) & this.#mask;
    }
  }

  #grow(): void {
    const oldHi = this.#hi;
    const oldLo = this.#lo;
    const capacity = (this.#mask + 1) * 2;
    this.#hi = new Uint32Array(capacity);
    this.#lo = new Uint32Array(capacity);
    this.#mask = capacity - 1;
    for (let i = 0; i < oldHi.length; i++) {
      const a = oldHi[i]!;
      const b = oldLo[i]!;
      if (a !== 0 || b !== 0) this.#insert(a, b);
    }
  }
}
