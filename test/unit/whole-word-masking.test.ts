// Whole-word masking (training.masking.wholeWord): every tokenizer type says which pieces
// start a word (WordPiece: not "##"; BPE: after a piece ending in </w>; byte-level BPE: a
// piece starting with the space's byte character), and masking selects a word's pieces all
// together or not at all, in packed and unpacked sequences, with the 80/10/10 and all-[MASK]
// styles as before, as a pure function of (seed, sample). A word cut by the start of its
// sequence is decided at its first piece there.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BpeTokenizer, bpeWords, trainBpe } from "../../corpus/bpe.js";
import { sequenceSource, wordStartRule } from "../../corpus/dataset.js";
import type { Collection } from "../../corpus/shards.js";
import { countWords, normalize, trainWordPiece, WordPieceTokenizer, type Tokenizer } from "../../corpus/tokenizer.js";
import { applyMasking, type UnmaskedBatch } from "../../model/masking.js";
import { sampleText } from "../helpers/training.js";

const lines = readFileSync(sampleText, "utf8").split("\n").filter(Boolean);

async function trained(kind: "wordpiece" | "bpe" | "bytelevel-bpe"): Promise<Tokenizer> {
  if (kind === "wordpiece")
    return new WordPieceTokenizer(trainWordPiece(await countWords([sampleText], { lowercase: true }), { vocabSize: 500, lowercase: true }), true);
  const { tokens, merges } = trainBpe(await countWords([sampleText], { lowercase: true, split: (l) => bpeWords(l, kind, true) }), kind, { vocabSize: 500 });
  return new BpeTokenizer(kind, tokens, merges, true);
}

function collectionOf(tokenizer: Tokenizer): Collection {
  const ids = lines.map((l) => tokenizer.encode(l).ids);
  const offsets = [0];
  for (const d of ids) offsets.push(offsets.at(-1)! + d.length);
  return { name: "sample", upscale: 1, tokens: Int32Array.from(ids.flat()), offsets: Float64Array.from(offsets) };
}

/** Checks that every word of every row is selected whole or not at all; returns the selected share of tokens. */
function expectWholeWords(b: UnmaskedBatch, labels: Int32Array, specialIds: number[]): number {
  let selected = 0;
  let eligible = 0;
  for (let r = 0; r < b.batch; r++) {
    let word: boolean | undefined;
    for (let i = 0; i < b.seqLen; i++) {
      const at = r * b.seqLen + i;
      if (!b.attentionMask[at] || specialIds.includes(b.inputIds[at]!)) {
        word = undefined;
        continue;
      }
      const on = labels[at] !== -100;
      if (b.wordStarts[at] || word === undefined) word = on;
      else expect(on).toBe(word);
      eligible++;
      if (on) selected++;
    }
  }
  return selected / eligible;
}

for (const kind of ["wordpiece", "bpe", "bytelevel-bpe"] as const)
  describe(`whole-word masking with a ${kind} tokenizer`, () => {
    it("knows where words start", async () => {
      const tokenizer = await trained(kind);
      const starts = wordStartRule(tokenizer);
      let pieces = 0;
      let words = 0;
      for (const line of lines.slice(0, 60)) {
        const { ids, wordStarts } = tokenizer.encode(line);
        const ours = ids.map((id, i) => (starts(i > 0 ? ids[i - 1]! : -1, id) ? 1 : 0));
        if (kind === "bytelevel-bpe") {
          // A word is what whitespace separates: punctuation joins the word it follows.
          expect(
            ours.reduce((n, s) => n + s, 0 as number),
            line,
          ).toBe(normalize(line, true).trim().split(/\s+/u).length);
        } else expect(ours, line).toEqual(wordStarts); // the tokenizer's own words
        pieces += ids.length;
        words += ours.reduce((n, s) => n + s, 0 as number);
      }
      expect(pieces / words).toBeGreaterThan(1.3); // a small vocabulary: many words are several pieces
    });

    it("selects words whole, at about the rate, in packed and unpacked sequences, the same alone as in a batch", async () => {
      const tokenizer = await trained(kind);
      const specialIds = Object.values(tokenizer.special);
      const ctx = { seed: 9, firstSample: 40, vocabSize: tokenizer.vocabSize, maskId: tokenizer.special.mask, specialIds };
      for (const packing of ["full", "none"] as const) {
        const source = sequenceSource([collectionOf(tokenizer)], tokenizer.special, wordStartRule(tokenizer), { seqLen: 32, packing });
        const b = source.microBatch(9, 40, 64);
        const neo = applyMasking(b, { style: "neobert", rate: 0.3, wholeWord: true }, ctx);
        const share = expectWholeWords(b, neo.labels, specialIds);
        expect(share).toBeGreaterThan(0.2);
        expect(share).toBeLessThan(0.4);
        for (let i = 0; i < b.inputIds.length; i++) if (neo.labels[i] !== -100) expect(neo.inputIds[i]).toBe(tokenizer.special.mask);

        const bert = applyMasking(b, { style: "bert", rate: 0.15, wholeWord: true }, ctx);
        expectWholeWords(b, bert.labels, specialIds);
        let chosen = 0;
        let masked = 0;
        for (let i = 0; i < b.inputIds.length; i++)
          if (bert.labels[i] !== -100) {
            chosen++;
            if (bert.inputIds[i] === tokenizer.special.mask) masked++;
          }
        expect(masked / chosen).toBeGreaterThan(0.7);
        expect(masked / chosen).toBeLessThan(0.9);

        const T = b.seqLen;
        const alone = source.microBatch(9, 45, 1);
        const one = applyMasking(alone, { style: "bert", rate: 0.15, wholeWord: true }, { ...ctx, firstSample: 45 });
        expect(Array.from(one.labels)).toEqual(Array.from(bert.labels.subarray(5 * T, 6 * T)));
        expect(Array.from(one.inputIds)).toEqual(Array.from(bert.inputIds.subarray(5 * T, 6 * T)));
      }
    });
  });

describe("a word cut by the start of its sequence", () => {
  it("is decided at its first piece in the sequence, and its other pieces follow", () => {
    // [CLS] then two continuation pieces of a word begun in the previous sequence, then words.
    const T = 8;
    const rows = 400;
    const inputIds = new Int32Array(rows * T);
    const wordStarts = new Uint8Array(rows * T);
    for (let r = 0; r < rows; r++) {
      inputIds.set([2, 20, 21, 22, 23, 24, 25, 3], r * T);
      wordStarts.set([0, 0, 0, 1, 0, 1, 1, 0], r * T);
    }
    const b: UnmaskedBatch = {
      batch: rows,
      seqLen: T,
      inputIds,
      attentionMask: new Int32Array(rows * T).fill(1),
      tokenTypeIds: new Int32Array(rows * T),
      wordStarts,
    };
    const m = applyMasking(
      b,
      { style: "neobert", rate: 0.3, wholeWord: true },
      { seed: 1, firstSample: 0, vocabSize: 100, maskId: 4, specialIds: [0, 1, 2, 3, 4] },
    );
    let cut = 0;
    for (let r = 0; r < rows; r++) {
      const on = (i: number) => m.labels[r * T + i] !== -100;
      expect(on(2)).toBe(on(1));
      expect(on(4)).toBe(on(3));
      if (on(1)) cut++;
    }
    expect(cut / rows).toBeGreaterThan(0.2);
    expect(cut / rows).toBeLessThan(0.4);
  });
});
