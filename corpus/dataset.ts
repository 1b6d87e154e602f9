// Training data: sequences cut from the token shards, chosen for each global sample index by
// a seeded permutation, as a pure function of (seed, sample).
//
// Owns: how documents become sequences, the mix of collections by their upscale ratios, and
// the order samples are drawn in: epoch e = floor(s / N) walks a permutation of all N
// sequences keyed by (seed, e), computed by a Feistel network with cycle-walking, so no table
// of N entries is ever built or shuffled. Two layouts (`data.packing`):
// - "none": one document per sequence, [CLS] up to seqLen-2 tokens [SEP], then [PAD]; a long
//   document gives several sequences, none crosses a document boundary.
// - "full": each collection read as one stream, every document followed by [SEP], cut into
//   windows of seqLen-1 tokens, each after a [CLS]; only a collection's last window is padded.
//   With `documentMask` the attention mask holds the document's number within the sequence
//   (1, 2, …; 0 for padding) so attention stays inside each document (model/kernels.ts).
// Also owns which tokens start a word (for whole-word masking), per tokenizer type.
// Never: masks (model/masking.ts does, in the data-loader) or keeps state between calls.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { counterHash } from "../model/counter-hash.js";
import type { UnmaskedBatch } from "../model/masking.js";
import { UserError } from "../runtime/errors.js";
import { BpeTokenizer, byteToChar } from "./bpe.js";
import { type Collection, openShards } from "./shards.js";
import { loadTokenizer } from "./load-tokenizer.js";
import type { SpecialIds, Tokenizer } from "./tokenizer.js";

export const packings = ["none", "full"] as const;
export type Packing = (typeof packings)[number];

export interface SequenceOptions {
  seqLen: number;
  /** "none": one document per sequence; "full": documents back to back, [SEP] after each. */
  packing?: Packing;
  /** With packing "full": number the documents of a sequence in the attention mask, so each attends only to itself. */
  documentMask?: boolean;
}

/**
 * Whether token `id` starts a word, given the token before it in its document (-1 at a
 * document's start, and at a sequence's start: a word cut there is masked as if it began there).
 */
export type WordStart = (previous: number, id: number) => boolean;

export interface TrainingData {
  vocabSize: number;
  special: SpecialIds;
  seqLen: number;
  tokenizerHash: string;
  /** Sequences in one epoch (collections repeated by their upscale ratios). */
  sequences: number;
  /** Non-padding positions over all positions of an epoch's sequences. */
  realTokenShare: number;
  microBatch(seed: number, firstSample: number, count: number): UnmaskedBatch;
  close(): void;
}

export function openTrainingData(shardsDir: string, seqLenOrOptions: number | SequenceOptions): TrainingData {
  const options = typeof seqLenOrOptions === "number" ? { seqLen: seqLenOrOptions } : seqLenOrOptions;
  const tokenizerFile = join(shardsDir, "tokenizer.json");
  if (!existsSync(tokenizerFile)) throw new UserError(`${shardsDir} has no tokenizer.json beside its shards: prepare it with \`aze-run data prepare\`.`);
  const tokenizer = loadTokenizer(tokenizerFile);
  const { manifest, collections } = openShards(shardsDir);
  if (manifest.tokenizerHash !== tokenizer.hash)
    throw new UserError(`${shardsDir}: the shards were made with another tokenizer than its tokenizer.json: prepare the folder again.`);
  const source = sequenceSource(collections, tokenizer.special, wordStartRule(tokenizer), options);
  if (source.sequences === 0) throw new UserError(`${shardsDir} holds no tokens.`);
  return { vocabSize: tokenizer.vocabSize, special: tokenizer.special, tokenizerHash: tokenizer.hash, ...source, close() {} };
}

/** Word starts by tokenizer type: WordPiece marks continuations, BPE word ends, byte-level BPE word starts. */
export function wordStartRule(tokenizer: Tokenizer): WordStart {
  const pieces = tokenizer.tokens;
  if (tokenizer instanceof BpeTokenizer && tokenizer.kind === "bytelevel-bpe") {
    // A word (with its leading space, which the encoder adds to the first one too) starts with the space's byte character.
    const space = byteToChar[0x20]!;
    const starts = Uint8Array.from(pieces, (t) => (t.startsWith(space) ? 1 : 0));
    return (previous, id) => previous < 0 || starts[id] === 1;
  }
  if (tokenizer instanceof BpeTokenizer) {
    // bpe marks the last piece of a word with </w>: the piece after it starts the next word.
    const ends = Uint8Array.from(pieces, (t) => (t.endsWith("</w>") ? 1 : 0));
    return (previous) => previous < 0 || ends[previous] === 1;
  }
  const continuation = Uint8Array.from(pieces, (t) => (t.startsWith("##") ? 1 : 0));
  return (_previous, id) => continuation[id] === 0;
}

/**
 * The sequences of a set of collections, without files: what openTrainingData serves, as a
 * pure function of (collections, options, seed, sample).
 */
export function sequenceSource(
  collections: Collection[],
  special: Pick<SpecialIds, "pad" | "cls" | "sep">,
  wordStart: WordStart,
  options: SequenceOptions,
): Pick<TrainingData, "seqLen" | "sequences" | "realTokenShare" | "microBatch"> {
  const { seqLen } = options;
  const packed = (options.packing ?? "none") === "full";
  const documentMask = packed && options.documentMask === true;
  // none: [CLS] + up to seqLen-2 tokens of one document + [SEP]; full: [CLS] + seqLen-1 positions of the stream.
  const span = packed ? seqLen - 1 : seqLen - 2;
  const framing = packed ? 1 : 2;
  // The sequence table: (collection, start, length) for every sequence of an epoch; in a
  // packed collection, start and length count positions of its stream (tokens and [SEP]s).
  const table: number[] = [];
  collections.forEach((c, ci) => {
    const own: number[] = [];
    if (packed) {
      const stream = c.tokens.length + c.offsets.length - 1;
      for (let at = 0; at < stream; at += span) own.push(ci, at, Math.min(span, stream - at));
    } else
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
  let real = 0;
  for (let q = 0; q < sequences; q++) real += table[3 * q + 2]! + framing;
  const { pad, cls, sep } = special;

  return {
    seqLen,
    sequences,
    realTokenShare: sequences > 0 ? real / (sequences * seqLen) : 0,
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
        const { tokens, offsets } = collections[ci]!;
        const row = j * seqLen;
        inputIds[row] = cls;
        if (!packed) {
          for (let i = 0; i < length; i++) {
            const id = tokens[start + i]!;
            inputIds[row + 1 + i] = id;
            wordStarts[row + 1 + i] = wordStart(i > 0 ? tokens[start + i - 1]! : -1, id) ? 1 : 0;
          }
          inputIds[row + 1 + length] = sep;
          attentionMask.fill(1, row, row + length + 2);
          continue;
        }
        // Stream position p of document d: its tokens sit at [offsets[d] + d, offsets[d+1] + d), its [SEP] at offsets[d+1] + d.
        let d = documentAt(offsets, start);
        let number = 1;
        attentionMask[row] = 1;
        for (let i = 0; i < length; i++) {
          const p = start + i;
          while (p > offsets[d + 1]! + d) {
            d++;
            number++;
          }
          const at = row + 1 + i;
          if (p === offsets[d + 1]! + d) inputIds[at] = sep;
          else {
            const id = tokens[p - d]!;
            inputIds[at] = id;
            wordStarts[at] = wordStart(i > 0 && p - d > offsets[d]! ? tokens[p - d - 1]! : -1, id) ? 1 : 0;
          }
          attentionMask[at] = documentMask ? number : 1;
        }
      }
      return { batch: count, seqLen, inputIds, attentionMask, tokenTypeIds: new Int32Array(n), wordStarts };
    },
  };
}

/** The document whose stream range (its tokens and its [SEP]) holds stream position p: the last d with offsets[d] + d ≤ p. */
function documentAt(offsets: Float64Array, p: number): number {
  let lo = 0;
  let hi = offsets.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid]! + mid <= p) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Non-padding positions over all positions when the collections are cut into sequences of
 * seqLen: what each packing would fill (`data prepare` reports both).
 */
export function realTokenShare(collections: Collection[], seqLen: number, packing: Packing): number {
  return sequenceSource(collections, { pad: 0, cls: 2, sep: 3 }, () => true, { seqLen, packing }).realTokenShare;
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
