// Token shards are memory-mapped through the corpus/native addon: opening a 32 MB collection
// does not put 32 MB into the heap's ArrayBuffers, and the tokens read back exactly.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openShards, shardsAreMapped, writeShards } from "../../corpus/shards.js";
import { removeDir, tempDir } from "../helpers/cluster.js";

describe("token shards", () => {
  const dir = tempDir();
  afterAll(() => removeDir(dir));

  it("are mapped, not read into memory", async () => {
    expect(shardsAreMapped, "corpus/native was not built: run npm run build:native").toBe(true);
    const out = join(dir, "shards");
    const documents = 64;
    const perDocument = 128 * 1024; // 64 × 128k int32 = 32 MB
    await writeShards(out, { tokenizerHash: "test", vocabSize: 1000 }, [{ name: "az", upscale: 1 }], async (_, w) => {
      for (let d = 0; d < documents; d++) w.addDocument(Int32Array.from({ length: perDocument }, (_, i) => (d * 7 + i) % 1000));
    });
    const before = process.memoryUsage().arrayBuffers;
    const { collections } = openShards(out);
    const grown = process.memoryUsage().arrayBuffers - before;
    const tokens = collections[0]!.tokens;
    expect(tokens.length).toBe(documents * perDocument);
    expect(grown).toBeLessThan(tokens.byteLength / 8); // a read would add the whole file
    const file = readFileSync(join(out, "az", "tokens.bin"));
    expect(Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength).equals(file)).toBe(true);
    expect(Array.from(collections[0]!.offsets.slice(0, 3))).toEqual([0, perDocument, 2 * perDocument]);
  });
});
