// Whatever groups each compute actor holds, combining along aligned blocks and then the
// fixed tree gives the same float32 bits as summing all groups along the tree directly.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alignedBlocks, assignGroups, blockKey, isAlignedBlock, reduceTree, shardRanges } from "../../model/reduction-tree.js";

const add = (a: Float32Array, b: Float32Array) => a.map((x, i) => x + b[i]!);

describe("reduction tree", () => {
  it("gives identical bits for every dealing of groups to actors", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 4, 8, 16), fc.integer({ min: 1, max: 7 }), fc.integer(), (G, actors, seed) => {
        let x = seed >>> 0 || 7;
        const rand = () => {
          x = (x * 1664525 + 1013904223) >>> 0;
          return (x / 2 ** 32 - 0.5) * 2 ** ((x >>> 27) - 8);
        };
        const grads = Array.from({ length: G }, () => Float32Array.from({ length: 33 }, rand));
        const leaves = new Map(grads.map((g, i) => [blockKey({ lo: i, hi: i + 1 }), g]));
        const reference = reduceTree(leaves, 0, G, add)!;

        const ids = Array.from({ length: actors }, (_, i) => `c${i}`);
        const shuffled = Array.from({ length: G }, (_, i) => i).sort(() => rand());
        const received = new Map<string, Float32Array>();
        for (const [, held] of assignGroups(shuffled, ids)) {
          const own = new Map(held.map((g) => [blockKey({ lo: g, hi: g + 1 }), grads[g]!]));
          for (const b of alignedBlocks(held, G)) {
            expect(isAlignedBlock(b, G)).toBe(true);
            received.set(blockKey(b), reduceTree(own, b.lo, b.hi, add)!);
          }
        }
        const distributed = reduceTree(received, 0, G, add)!;
        expect(Buffer.from(distributed.buffer).equals(Buffer.from(reference.buffer))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("tiles held groups with the largest aligned blocks", () => {
    expect(alignedBlocks([0, 1, 2, 3, 5], 8)).toEqual([
      { lo: 0, hi: 4 },
      { lo: 5, hi: 6 },
    ]);
    expect(alignedBlocks([1, 2], 4)).toEqual([
      { lo: 1, hi: 2 },
      { lo: 2, hi: 3 },
    ]);
  });

  it("cuts shards on chunk boundaries and refuses more shards than chunks", () => {
    expect(shardRanges(4096 * 5, 2, 4096)).toEqual([
      { start: 0, end: 8192 },
      { start: 8192, end: 20480 },
    ]);
    expect(() => shardRanges(4096 * 2, 3, 4096)).toThrow(/at most 2 shards/);
  });
});
