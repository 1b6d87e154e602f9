// Packed sequences are a pure function of (seed, sample): a sample holds the same ids, mask
// and word starts whatever batch it travels in and whenever it is asked for, every sequence
// of an epoch is served once, and a document mask numbers only where it is asked for.
import { describe, expect, it } from "vitest";
import { sequenceSource } from "../../corpus/dataset.js";
import type { Collection } from "../../corpus/shards.js";

const special = { pad: 0, cls: 2, sep: 3 };
const wordStart = (_previous: number, id: number) => id % 3 !== 0;

/** A collection of `documents` documents of 5..24 tokens, ids from 10 on. */
function collection(name: string, documents: number, upscale = 1): Collection {
  const offsets = [0];
  const tokens: number[] = [];
  for (let d = 0; d < documents; d++) {
    const length = 5 + ((d * 7) % 20);
    for (let i = 0; i < length; i++) tokens.push(10 + ((d * 13 + i * 5) % 300));
    offsets.push(tokens.length);
  }
  return { name, upscale, tokens: Int32Array.from(tokens), offsets: Float64Array.from(offsets) };
}

describe("packing is pure", () => {
  const collections = [collection("a", 300), collection("b", 120, 1.5)];
  const source = sequenceSource(collections, special, wordStart, { seqLen: 48, packing: "full", documentMask: true });
  const T = 48;

  it("serves a sample the same ids, mask and word starts alone, in any batch, at any time", () => {
    const eight = source.microBatch(11, 1000, 8);
    for (let j = 0; j < 8; j++) {
      const alone = source.microBatch(11, 1000 + j, 1);
      expect(Array.from(alone.inputIds)).toEqual(Array.from(eight.inputIds.subarray(j * T, (j + 1) * T)));
      expect(Array.from(alone.attentionMask)).toEqual(Array.from(eight.attentionMask.subarray(j * T, (j + 1) * T)));
      expect(Array.from(alone.wordStarts)).toEqual(Array.from(eight.wordStarts.subarray(j * T, (j + 1) * T)));
    }
    const again = sequenceSource(collections, special, wordStart, { seqLen: 48, packing: "full", documentMask: true }).microBatch(11, 1000, 8);
    expect(Buffer.from(again.inputIds.buffer).equals(Buffer.from(eight.inputIds.buffer))).toBe(true);
    expect(Array.from(source.microBatch(12, 1000, 8).inputIds)).not.toEqual(Array.from(eight.inputIds)); // another seed, another order
  });

  it("serves every sequence of an epoch once, and the next epoch in another order", () => {
    const N = source.sequences;
    const key = (ids: Int32Array) => ids.join(",");
    const epoch = (e: number) => Array.from({ length: N }, (_, s) => key(source.microBatch(3, e * N + s, 1).inputIds));
    const first = epoch(0);
    const second = epoch(1);
    expect(new Set(first).size).toBe(new Set(second).size);
    expect([...first].sort()).toEqual([...second].sort());
    expect(first).not.toEqual(second);
  });

  it("numbers documents in the mask only with documentMask, and keeps the ids the same", () => {
    const plain = sequenceSource(collections, special, wordStart, { seqLen: 48, packing: "full" }).microBatch(11, 1000, 8);
    const numbered = source.microBatch(11, 1000, 8);
    expect(Array.from(plain.inputIds)).toEqual(Array.from(numbered.inputIds));
    expect(Array.from(plain.attentionMask)).toEqual(Array.from(numbered.attentionMask, (m) => (m > 0 ? 1 : 0)));
    expect(Math.max(...plain.attentionMask)).toBe(1);
    expect(Math.max(...numbered.attentionMask)).toBeGreaterThan(2);
  });
});
