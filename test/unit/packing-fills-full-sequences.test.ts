// Packing fills sequences: on short lines (a dozen tokens, as Azerbaijani text has) more
// than 97% of positions hold a token where one document a sequence leaves most of them
// padding; documents follow each other with one [SEP] between them, in order and whole; a
// document longer than a sequence continues in the next one; the document mask numbers the
// documents of a sequence from 1, and padding is 0.
import { describe, expect, it } from "vitest";
import { realTokenShare, sequenceSource } from "../../corpus/dataset.js";
import type { Collection } from "../../corpus/shards.js";

const special = { pad: 0, cls: 2, sep: 3 };
const starts = () => true;

function fromDocuments(documents: number[][]): Collection {
  const offsets = [0];
  for (const d of documents) offsets.push(offsets.at(-1)! + d.length);
  return { name: "c", upscale: 1, tokens: Int32Array.from(documents.flat()), offsets: Float64Array.from(offsets) };
}

/** Every sequence of the collection in stream order (the permutation undone by sorting on the first stream position). */
function allRows(source: ReturnType<typeof sequenceSource>, T: number): Int32Array[] {
  const batch = source.microBatch(1, 0, source.sequences);
  return Array.from({ length: source.sequences }, (_, j) => batch.inputIds.slice(j * T, (j + 1) * T));
}

describe("packing fills full sequences", () => {
  // 2000 lines of 8..17 tokens: 12.5 on average.
  const lines = Array.from({ length: 2000 }, (_, d) => Array.from({ length: 8 + ((d * 7) % 10) }, (_, i) => 10 + ((d + i) % 500)));
  const corpus = fromDocuments(lines);

  it("fills more than 97% of the positions of 128-token sequences with short lines", () => {
    const packed = realTokenShare([corpus], 128, "full");
    const single = realTokenShare([corpus], 128, "none");
    expect(packed).toBeGreaterThan(0.97);
    expect(single).toBeLessThan(0.15);
    const source = sequenceSource([corpus], special, starts, { seqLen: 128, packing: "full" });
    const batch = source.microBatch(5, 0, source.sequences);
    const real = batch.attentionMask.reduce((n, m) => n + (m !== 0 ? 1 : 0), 0);
    expect(real / batch.attentionMask.length).toBeCloseTo(packed, 10);
  });

  it("puts one [SEP] after every document, in order, nothing lost, and splits long documents across sequences", () => {
    const documents = [[10, 11, 12], Array.from({ length: 50 }, (_, i) => 100 + i), [13, 14], [15], Array.from({ length: 9 }, (_, i) => 200 + i)];
    const T = 16;
    const source = sequenceSource([fromDocuments(documents)], special, starts, { seqLen: T, packing: "full" });
    const stream = documents.flatMap((d) => [...d, special.sep]);
    expect(source.sequences).toBe(Math.ceil(stream.length / (T - 1)));
    const rows = allRows(source, T);
    for (const r of rows) expect(r[0]).toBe(special.cls);
    // Rows in stream order: the one whose content starts the stream first comes first.
    const bodies = rows.map((r) => Array.from(r.subarray(1)).filter((id) => id !== special.pad));
    const ordered = bodies.map((b) => ({ b, at: indexOf(stream, b) })).sort((x, y) => x.at - y.at);
    expect(ordered.flatMap((x) => x.b)).toEqual(stream);
    // The 50-token document spans four sequences; only the last sequence holds padding.
    expect(bodies.filter((b) => b.includes(120)).length).toBe(1);
    expect(bodies.filter((b) => b.some((id) => id >= 100 && id < 150)).length).toBeGreaterThanOrEqual(4);
    expect(rows.filter((r) => r.includes(special.pad)).length).toBe(1);
  });

  it("numbers the documents of a sequence from 1 in the document mask, [CLS] with the first and each [SEP] with its document", () => {
    const T = 12;
    const source = sequenceSource(
      [
        fromDocuments([
          [10, 11, 12],
          [13, 14],
          [15, 16, 17, 18, 19, 20, 21, 22, 23],
        ]),
      ],
      special,
      starts,
      {
        seqLen: T,
        packing: "full",
        documentMask: true,
      },
    );
    const batch = source.microBatch(1, 0, source.sequences);
    const rows = Array.from({ length: source.sequences }, (_, j) => ({
      ids: Array.from(batch.inputIds.subarray(j * T, (j + 1) * T)),
      mask: Array.from(batch.attentionMask.subarray(j * T, (j + 1) * T)),
    }));
    const first = rows.find((r) => r.ids[1] === 10)!;
    expect(first.ids).toEqual([2, 10, 11, 12, 3, 13, 14, 3, 15, 16, 17, 18]);
    expect(first.mask).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3]);
    const last = rows.find((r) => r.ids[1] === 19)!;
    expect(last.ids).toEqual([2, 19, 20, 21, 22, 23, 3, 0, 0, 0, 0, 0]);
    expect(last.mask).toEqual([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
  });

  it("leaves one document a sequence as it was without packing", () => {
    const T = 8;
    const source = sequenceSource([fromDocuments([[10, 11, 12], Array.from({ length: 8 }, (_, i) => 20 + i)])], special, starts, { seqLen: T });
    const rows = allRows(source, T).map((r) => Array.from(r));
    expect(rows.sort()).toEqual(
      [
        [2, 10, 11, 12, 3, 0, 0, 0],
        [2, 20, 21, 22, 23, 24, 25, 3],
        [2, 26, 27, 3, 0, 0, 0, 0],
      ].sort(),
    );
  });
});

function indexOf(haystack: number[], needle: number[]): number {
  for (let i = 0; i + needle.length <= haystack.length; i++) if (needle.every((v, k) => haystack[i + k] === v)) return i;
  return -1;
}
