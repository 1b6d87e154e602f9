// Training data: sequences cut from the token shards, chosen for each global sample index by
// a seeded permutation, as a pure function of (seed, sample).
//
// Owns: how documents become sequences ([CLS] up to seqLen-2 tokens [SEP], then [PAD]; a
// long document gives several sequences, none crosses a document boundary), the mix of
// collections by their upscale ratios, and the order samples are drawn in: epoch
// e = floor(s / N) walks a permutation of all N sequences keyed by (seed, e), computed by a
// Feistel network with cycle-walking, so no table of N entries is ever built or shuffled.
// Never: masks (model/masking.ts does, in the data-loader) or keeps state between calls.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { counterHash } from "../model/counter-hash.js";
import type { UnmaskedBatch } from "../model/masking.js";
import { UserError } from "../runtime/errors.js";
import { openShards } from "./shards.js";
import { loadTokenizer } from "./load-tokenizer.js";
import type { SpecialIds } from "./tokenizer.js";

export interface TrainingData {
  vocabSize: number;
  special: SpecialIds;
  seqLen: number;
  tokenizerHash: string;
  /** Sequences in one epoch (collections repeated by their upscale ratios). */
  sequences: number;
  microBatch(seed: number, firstSample: number, count: number): UnmaskedBatch;
  close(): void;
}

export function openTrainingData(shardsDir: string, seqLen: number): TrainingData {
  const tokenizerFile = join(shardsDir, "tokenizer.json");
  if (!existsSync(tokenizerFile)) throw new UserError(`${shardsDir} has no tokenizer.json beside its shards: prepare it with \`aze-run data prepare\`.`);
  const tokenizer = loadTokenizer(tokenizerFile);
  const { manifest, collections } = openShards(shardsDir);
  if (manifest.tokenizerHash !== tokenizer.hash)
    throw new UserError(`${shardsDir}: the shards were made with another tokenizer than its tokenizer.json: prepare the folder again.`);
  const isContinuation = Uint8Array.from(tokenizer.tokens, (t) => (t.startsWith("##") ? 1 : 0));
  const span = seqLen - 2;
  // The sequence table: (collection, start token, length) for every sequence of an epoch.
  const table: number[] = [];
  collections.forEach((c, ci) => {
    const own: number[] = [];
    for (let d = 0; d + 1 < c.offsets.length; d++)
      for (let at = c.offsets[d]!; at < c.offsets[d + 1]!; at += span) own.push(ci, at, Math.min(span, c.offsets[d + 1]! - at));
    const n = own.length / 3;
    const copies = Math.floor(c.upscale);
    const extra = 3 * Math.round((c.upscale - copies) * n);
    // One element at a time: spreading millions of entries into push() overflows the stack.
    for (let k = 0; k < copies; k++) for (const v of own) table.push(v);
    for (let i = 0; i < extra; i++) table.push(own[i]!);
  });
  const sequences = table.length / 3;
  if (sequences === 0) throw new UserError(`${shardsDir} holds no tokens.`);
  const { pad, cls, sep } = tokenizer.special;

  return {
    vocabSize: tokenizer.vocabSize,
    special: tokenizer.special,
    seqLen,
    tokenizerHash: tokenizer.hash,
    sequences,
    microBatch(seed, firstSample, count) {
      const n = count * seqLen;
      const inputIds = new Int32Array(n).fill(pad);
      const attentionMask = new Int32Array(n);
      const wordStarts = new Uint8Array(n);
      for (let j = 0; j < count; j++) {
        const s = firstSample + j;
        const epoch = Math.floor(s / sequences);
        const q = permute(s - epoch * sequences, sequences, counterHash(seed, epoch));
        const [ci, start, length] = [table[3 * q]!, table[3 * q + 1]!, table[3 * q + 2]!];
        const tokens = collections[ci]!.tokens;
        const row = j * seqLen;
        inputIds[row] = cls;
        for (let i = 0; i < length; i++) {
          const id = tokens[start + i]!;
          inputIds[row + 1 + i] = id;
          wordStarts[row + 1 + i] = isContinuation[id] ? 0 : 1;
        }
        inputIds[row + 1 + length] = sep;
        attentionMask.fill(1, row, row + length + 2);
      }
      return { batch: count, seqLen, inputIds, attentionMask, tokenTypeIds: new Int32Array(n), wordStarts };
    },
    close() {},
  };
}

/**
 * A bijection of [0, n) keyed by `key`: a 4-round Feistel network over the smallest even
 * power of two ≥ n, walking the cycle until the value falls inside [0, n).
 */
export function permute(index: number, n: number, key: number): number {
  let bits = 2;
  while (2 ** bits < n) bits += 2;
  const half = bits / 2;
  const mask = 2 ** half - 1;
  let x = index;
  do {
    let left = Math.floor(x / 2 ** half);
    let right = x & mask;
    for (let round = 0; round < 4; round++) {
      const f = counterHash(key + round, right) & mask;
      [left, right] = [right, (left ^ f) & mask];
    }
    x = left * 2 ** half + right;
  } while (x >= n);
  return x;
}
