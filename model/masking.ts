// Dynamic masking for masked-language modelling, drawn per (seed, sample).
//
// Owns: which positions of a sequence are predicted and what the model sees there, as a
// pure function of (seed, global sample index, position): the same sample is masked the
// same way on any loader, in any process, at any time (and differently at every step,
// since the sample index grows with the step).
// Never: masks special tokens or padding ([SEP] between packed documents included).
import type { MaskedBatch } from "./encoder.js";
import { counterHash } from "./counter-hash.js";

export interface MaskingOptions {
  /** "bert": 80% [MASK], 10% a random token, 10% unchanged. "neobert": all [MASK]. */
  style: "bert" | "neobert";
  /** Share of (non-special) tokens selected for prediction. */
  rate: number;
  /**
   * Select whole words: continuation pieces follow the decision of their word's first piece
   * (which pieces start a word depends on the tokenizer: corpus/dataset.ts, wordStartRule).
   */
  wholeWord: boolean;
}

export interface UnmaskedBatch {
  batch: number;
  seqLen: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  /** 1 where a token starts a word (for whole-word masking). */
  wordStarts: Uint8Array;
}

export interface MaskingContext {
  seed: number;
  /** Global index of the batch's first sequence; sequence j is sample firstSample + j. */
  firstSample: number;
  vocabSize: number;
  maskId: number;
  /** Ids never selected: [PAD] [UNK] [CLS] [SEP] [MASK]... */
  specialIds: number[];
}

const SELECT = 0x6d61736b; // streams of the hash: which positions, how to replace, by what
const REPLACE = 0x72706c63;
const RANDOM = 0x72616e64;

export function applyMasking(batch: UnmaskedBatch, masking: MaskingOptions, ctx: MaskingContext): MaskedBatch {
  const { batch: B, seqLen: T } = batch;
  const inputIds = batch.inputIds.slice();
  const labels = new Int32Array(B * T).fill(-100);
  const special = new Set(ctx.specialIds);
  const threshold = masking.rate * 4294967296;
  const ordinary = ctx.vocabSize - special.size;
  for (let j = 0; j < B; j++) {
    const sampleKey = counterHash(ctx.seed ^ SELECT, ctx.firstSample + j);
    let selected = false;
    let decided = false; // a word's decision is taken in this sequence (after a special token, none is)
    for (let i = 0; i < T; i++) {
      const at = j * T + i;
      const id = batch.inputIds[at]!;
      if (!batch.attentionMask[at] || special.has(id)) {
        selected = false;
        decided = false;
        continue;
      }
      // Whole words: decide at a word's first piece; its continuation pieces follow it. A
      // word cut by the start of its sequence decides at its first piece in the sequence.
      if (!masking.wholeWord || batch.wordStarts[at] || !decided) {
        selected = counterHash(sampleKey, i) < threshold;
        decided = true;
      }
      if (!selected) continue;
      labels[at] = id;
      const how = counterHash(sampleKey ^ REPLACE, i) / 4294967296;
      if (masking.style === "neobert" || how < 0.8) inputIds[at] = ctx.maskId;
      else if (how < 0.9 && ordinary > 0) inputIds[at] = nthOrdinary(counterHash(sampleKey ^ RANDOM, i) % ordinary, special);
    }
  }
  return { batch: B, seqLen: T, inputIds, attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds, labels };
}

/** The n-th id that is not special (special ids are few and small, so this is short). */
function nthOrdinary(n: number, special: Set<number>): number {
  let id = n;
  for (const s of [...special].sort((a, b) => a - b)) if (s <= id) id++;
  return id;
}
