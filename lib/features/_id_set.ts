/**
 * A compact set of strings for counting duplicate ids in large catalogs: it stores a 64-bit
 * fingerprint per id in one typed array (16 bytes per slot at most, instead of ~80 for a
 * `Set<string>`), so a 1.2M-row catalog costs ~32 MB. Two different ids share a fingerprint with
 * probability ~n²/2⁶⁵ (about 4·10⁻⁸ at 1.2M ids); the only effect would be one row counted as a
 * duplicate. Lookups that decide a match always compare the real strings elsewhere.
 * @module
 */

/** A growable open-addressing hash set of 64-bit string fingerprints. */
export class FingerprintSet {
  /** Slot `s` holds (hi, lo) at `2s`, `2s + 1`; (0, 0) is empty. */
  #slots: Uint32Array;
  #mask: number;
  #size = 0;
  readonly #fp = new Uint32Array(2);

  /** Creates a set sized for about `expected` entries. */
  constructor(expected = 1024) {
    let capacity = 1024;
    while (capacity * 0.7 < expected) capacity *= 2;
    this.#slots = new Uint32Array(capacity * 2);
    this.#mask = capacity - 1;
  }

  /** Makes room for about `expected` entries in all (one resize now instead of several). */
  reserve(expected: number): void {
    let capacity = this.#mask + 1;
    while (capacity * 0.7 < expected) capacity *= 2;
    if (capacity > this.#mask + 1) this.#resize(capacity);
  }

  /** Number of distinct fingerprints added. */
  get size(): number {
    return this.#size;
  }

  /** Adds `value`; returns `false` when it (its fingerprint) was already present. */
  add(value: string): boolean {
    const fp = this.#fp;
    fingerprintInto(value, fp);
    if (this.#insert(fp[0]!, fp[1]!)) {
      this.#size++;
      if (this.#size > (this.#mask + 1) * 0.7) this.#grow();
      return true;
    }
    return false;
  }

  #insert(h1: number, h2: number): boolean {
    const slots = this.#slots;
    let slot = (h1 ^ Math.imul(h2, 0x27d4eb2d)) & this.#mask;
    for (;;) {
      const a = slots[2 * slot]!;
      const b = slots[2 * slot + 1]!;
      if (a === 0 && b === 0) {
        slots[2 * slot] = h1;
        slots[2 * slot + 1] = h2;
        return true;
      }
      if (a === h1 && b === h2) return false;
      slot = (slot + 1) & this.#mask;
    }
  }

  #grow(): void {
    this.#resize((this.#mask + 1) * 2);
  }

  #resize(capacity: number): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(capacity * 2);
    this.#mask = capacity - 1;
    for (let i = 0; i < old.length; i += 2) {
      const a = old[i]!;
      const b = old[i + 1]!;
      if (a !== 0 || b !== 0) this.#insert(a, b);
    }
  }
}

/** The fingerprint `FingerprintSet.add(value)` computes, as `[hi, lo]`. */
export function fingerprint(value: string): [number, number] {
  const out = new Uint32Array(2);
  fingerprintInto(value, out);
  return [out[0]!, out[1]!];
}

/** Writes the fingerprint `FingerprintSet.add(value)` computes to `out[0]` (hi), `out[1]` (lo). */
export function fingerprintInto(value: string, out: Uint32Array): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  finish(h1, h2, value.length, out);
}

/**
 * When `buf[s .. s+22)` is a bare Spotify id (22 letters and digits), writes its fingerprint
 * (the same as {@link fingerprintInto} of the id) to `out` and returns `true`.
 */
export function fingerprintBareId(buf: Uint8Array, s: number, out: Uint32Array): boolean {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = s; i < s + 22; i++) {
    const c = buf[i]!;
    const l = c | 32;
    if (!((c >= 48 && c <= 57) || (l >= 97 && l <= 122))) return false;
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  finish(h1, h2, 22, out);
  return true;
}

function finish(h1: number, h2: number, length: number, out: Uint32Array): void {
  out[0] = h1 ^ (h1 >>> 16);
  out[1] = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35) ^ length;
  if (out[0] === 0 && out[1] === 0) out[1] = 1;
}

/**
 * Marks the repeats in a list of fingerprints (`hi[i]`, `lo[i]` for i < n, in file order):
 * `result[i]` is 1 when an earlier entry has the same fingerprint. The same answer as adding
 * them one by one to a {@link FingerprintSet}, but cache-friendly: entries are first
 * partitioned by their top bits (stable, so file order holds within a partition), then each
 * partition, small enough for the CPU cache, is checked with its own small table.
 */
export function markRepeats(hi: Uint32Array, lo: Uint32Array, n: number): Uint8Array {
  const repeat = new Uint8Array(n);
  if (n === 0) return repeat;
  let bits = 1;
  while ((1 << bits) * 2048 < n && bits < 20) bits++;
  const shift = 32 - bits;
  const partitions = 1 << bits;
  const starts = new Uint32Array(partitions + 1);
  for (let i = 0; i < n; i++) {
    const p = (hi[i]! >>> shift) + 1;
    starts[p] = starts[p]! + 1;
  }
  let largest = 0;
  for (let p = 0; p < partitions; p++) {
    largest = Math.max(largest, starts[p + 1]!);
    starts[p + 1] = starts[p + 1]! + starts[p]!;
  }
  // Copy (hi, lo, index) into partition order so that each partition is read sequentially.
  const next = starts.slice(0, partitions);
  const pHi = new Uint32Array(n);
  const pLo = new Uint32Array(n);
  const pIndex = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const h = hi[i]!;
    const p = h >>> shift;
    const k = next[p]!;
    next[p] = k + 1;
    pHi[k] = h;
    pLo[k] = lo[i]!;
    pIndex[k] = i;
  }

  let sizeBits = 4;
  while (1 << sizeBits < largest * 2) sizeBits++;
  const size = 1 << sizeBits;
  const mask = size - 1;
  const slotHi = new Uint32Array(size);
  const slotLo = new Uint32Array(size);
  const stamp = new Uint32Array(size);
  for (let p = 0; p < partitions; p++) {
    const generation = p + 1;
    const end = starts[p + 1]!;
    for (let k = starts[p]!; k < end; k++) {
      const h = pHi[k]!;
      const l = pLo[k]!;
      let slot = (Math.imul(l ^ h, 0x9e3779b1) >>> (32 - sizeBits)) & mask;
      for (;;) {
        if (stamp[slot] !== generation) {
          stamp[slot] = generation;
          slotHi[slot] = h;
          slotLo[slot] = l;
          break;
        }
        if (slotHi[slot] === h && slotLo[slot] === l) {
          repeat[pIndex[k]!] = 1;
          break;
        }
        slot = (slot + 1) & mask;
      }
    }
  }
  return repeat;
}
