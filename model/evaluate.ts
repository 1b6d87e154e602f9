// Evaluation of a checkpoint on held-out text: MLM loss with a fixed masking seed,
// pseudo-perplexity, bits per byte, and the tokenizer's fertility on that text.
//
// Owns: the metrics' definitions. Pseudo-log-likelihood masks each token of a sequence in
// turn and scores it given the rest; its sum, in bits, over the UTF-8 bytes of the text the
// scored tokens cover, gives bits per byte — comparable across tokenizers.
// Never: updates parameters.
import { readFileSync, statSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fertility, loadTokenizer } from "../corpus/load-tokenizer.js";
import { createWasmKernels } from "../kernels-wasm/index.js";
import { UserError } from "../runtime/errors.js";
import { readModel } from "./hub.js";
import { Encoder, type MaskedBatch } from "./encoder.js";
import { parameterLayout } from "./layout.js";
import { applyMasking } from "./masking.js";

export interface EvalResult {
  checkpoint: string;
  step: number;
  sequences: number;
  mlmLoss: number;
  maskedTokens: number;
  pseudoPerplexity: number;
  bitsPerByte: number;
  tokensPerWord: number;
  charsPerToken: number;
  unknownShare: number;
}

export async function evaluate(checkpoint: string, data: string, opts: { maxSequences?: number; seed?: number } = {}): Promise<EvalResult> {
  const pre = readModel(checkpoint);
  const files = statSync(data).isDirectory()
    ? readdirSync(data)
        .filter((f) => f.endsWith(".txt"))
        .map((f) => join(data, f))
    : [data];
  const text = files.map((f) => readFileSync(f, "utf8")).join("\n");
  const tokenizer = loadTokenizer(pre.tokenizerFile);
  const T = pre.seqLen;
  const model = new Encoder(await createWasmKernels(), pre.model, parameterLayout(pre.model, pre.vocabSize), T);
  model.setParameters(pre.params);

  // Sequences: each line's tokens cut into pieces of T-2, with [CLS] and [SEP].
  const sequences: { ids: number[]; bytes: number }[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const ids = tokenizer.encode(line).ids;
    const bytesPerToken = Buffer.byteLength(line) / Math.max(1, ids.length);
    for (let at = 0; at < ids.length; at += T - 2) {
      const piece = ids.slice(at, at + T - 2);
      sequences.push({ ids: piece, bytes: piece.length * bytesPerToken });
    }
  }
  const chosen = sequences.slice(0, opts.maxSequences ?? 200);
  if (chosen.length === 0) throw new UserError(`${data} holds no text to evaluate on.`);
  const { cls, sep, pad, mask } = tokenizer.special;
  const toBatch = (ids: number[], labels: number[]): MaskedBatch => {
    const inputIds = new Int32Array(T).fill(pad),
      attentionMask = new Int32Array(T),
      lab = new Int32Array(T).fill(-100);
    inputIds[0] = cls;
    inputIds.set(ids, 1);
    inputIds[ids.length + 1] = sep;
    attentionMask.fill(1, 0, ids.length + 2);
    lab.set(labels, 1);
    return { batch: 1, seqLen: T, inputIds, attentionMask, tokenTypeIds: new Int32Array(T), labels: lab };
  };

  let mlmSum = 0,
    mlmCount = 0,
    pllSum = 0,
    pllCount = 0,
    bytes = 0;
  chosen.forEach((seq, k) => {
    // MLM loss with a fixed masking seed: the same tokens every evaluation.
    const plain = toBatch(seq.ids, []);
    const masked = applyMasking(
      { ...plain, wordStarts: new Uint8Array(T).fill(1) },
      { style: "bert", rate: 0.15, wholeWord: false },
      { seed: opts.seed ?? 1234, firstSample: k, vocabSize: tokenizer.vocabSize, maskId: mask, specialIds: Object.values(tokenizer.special) },
    );
    const r = model.step(masked, 1, { forwardOnly: true });
    mlmSum += r.lossSum;
    mlmCount += r.count;
    // Pseudo-log-likelihood: each token masked in turn.
    for (let i = 0; i < seq.ids.length; i++) {
      const ids = [...seq.ids];
      const labels = new Array<number>(ids.length).fill(-100);
      labels[i] = ids[i]!;
      ids[i] = mask;
      pllSum += model.step(toBatch(ids, labels), 1, { forwardOnly: true }).lossSum;
      pllCount++;
    }
    bytes += seq.bytes;
  });
  const f = fertility(pre.tokenizerFile, text);
  return {
    checkpoint,
    step: pre.step,
    sequences: chosen.length,
    mlmLoss: mlmSum / Math.max(1, mlmCount),
    maskedTokens: mlmCount,
    pseudoPerplexity: Math.exp(pllSum / pllCount),
    bitsPerByte: pllSum / Math.LN2 / bytes,
    tokensPerWord: f.tokensPerWord,
    charsPerToken: f.charsPerToken,
    unknownShare: f.unknownShare,
  };
}
