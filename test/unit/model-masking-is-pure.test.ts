// Masking is a pure function of (seed, sample, position): the same sample masks the same way
// in any batch it travels in, special tokens and padding are never selected, the rate holds,
// and whole-word masking takes words whole.
import { describe, expect, it } from "vitest";
import { applyMasking, type UnmaskedBatch } from "../../model/masking.js";

const T = 64;
function batch(rows: number, firstId = 10): UnmaskedBatch {
  const inputIds = new Int32Array(rows * T);
  const attentionMask = new Int32Array(rows * T);
  const wordStarts = new Uint8Array(rows * T);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < T; i++) {
      const at = r * T + i;
      inputIds[at] = i === 0 ? 2 : i === T - 8 ? 3 : i > T - 8 ? 0 : firstId + ((r * 31 + i * 7) % 500);
      attentionMask[at] = i > T - 8 ? 0 : 1;
      wordStarts[at] = i % 3 === 1 ? 1 : 0;
    }
  return { batch: rows, seqLen: T, inputIds, attentionMask, tokenTypeIds: new Int32Array(rows * T), wordStarts };
}
const ctx = { seed: 5, firstSample: 100, vocabSize: 600, maskId: 4, specialIds: [0, 1, 2, 3, 4] };

describe("masking", () => {
  it("gives a sample the same mask whether it travels alone or in a batch", () => {
    const four = applyMasking(batch(4), { style: "bert", rate: 0.15, wholeWord: false }, ctx);
    const b = batch(4);
    const third: UnmaskedBatch = {
      ...b,
      batch: 1,
      inputIds: b.inputIds.slice(2 * T, 3 * T),
      attentionMask: b.attentionMask.slice(2 * T, 3 * T),
      tokenTypeIds: new Int32Array(T),
      wordStarts: b.wordStarts.slice(2 * T, 3 * T),
    };
    const alone = applyMasking(third, { style: "bert", rate: 0.15, wholeWord: false }, { ...ctx, firstSample: 102 });
    expect(Array.from(alone.labels)).toEqual(Array.from(four.labels.slice(2 * T, 3 * T)));
    expect(Array.from(alone.inputIds)).toEqual(Array.from(four.inputIds.slice(2 * T, 3 * T)));
    const other = applyMasking(batch(4), { style: "bert", rate: 0.15, wholeWord: false }, { ...ctx, firstSample: 104 });
    expect(Array.from(other.labels)).not.toEqual(Array.from(four.labels)); // a later step masks differently
  });

  it("never selects special tokens or padding, keeps the rate, and follows the 80/10/10 rule", () => {
    const b = batch(200);
    const m = applyMasking(b, { style: "bert", rate: 0.15, wholeWord: false }, ctx);
    let selected = 0,
      masked = 0,
      kept = 0,
      eligible = 0;
    for (let i = 0; i < b.inputIds.length; i++) {
      const special = b.inputIds[i]! < 5 || !b.attentionMask[i];
      if (!special) eligible++;
      if (m.labels[i] === -100) continue;
      expect(special).toBe(false);
      expect(m.labels[i]).toBe(b.inputIds[i]);
      selected++;
      if (m.inputIds[i] === 4) masked++;
      else if (m.inputIds[i] === b.inputIds[i]) kept++;
    }
    expect(selected / eligible).toBeGreaterThan(0.13);
    expect(selected / eligible).toBeLessThan(0.17);
    expect(masked / selected).toBeGreaterThan(0.76);
    expect(masked / selected).toBeLessThan(0.84);
    expect(kept / selected).toBeGreaterThan(0.07);
    const neo = applyMasking(b, { style: "neobert", rate: 0.2, wholeWord: false }, ctx);
    for (let i = 0; i < b.inputIds.length; i++) if (neo.labels[i] !== -100) expect(neo.inputIds[i]).toBe(4);
  });

  it("takes whole words with wholeWord", () => {
    const b = batch(50);
    const m = applyMasking(b, { style: "neobert", rate: 0.3, wholeWord: true }, ctx);
    for (let i = 1; i < b.inputIds.length; i++) {
      const continuation = !b.wordStarts[i] && i % T !== 0 && b.inputIds[i]! >= 5 && b.attentionMask[i] && b.inputIds[i - 1]! >= 5;
      if (continuation) expect(m.labels[i] !== -100).toBe(m.labels[i - 1] !== -100);
    }
  });
});
