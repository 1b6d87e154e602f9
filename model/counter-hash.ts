// The counter-based hash behind dropout and masking: a pure function of (seed, counter),
// so a mask can be recomputed anywhere (backward, another actor, another backend) without
// being stored or sent. Every backend uses this exact rule.

/** A well-mixed 32-bit value for (seed, counter): murmur3's finaliser over a Weyl step. */
export function counterHash(seed: number, counter: number): number {
  let h = (seed ^ Math.imul(counter >>> 0, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Dropout keeps element `i` when its hash, as a fraction of 2^32, is at least p. */
export function dropoutKeeps(seed: number, counter: number, p: number): boolean {
  return counterHash(seed, counter) >= p * 4294967296;
}
