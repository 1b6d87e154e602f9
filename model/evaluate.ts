// Evaluation of a checkpoint on held-out text: MLM loss with a fixed masking seed,
// pseudo-perplexity, bits per byte, and the tokenizer's fertility on that text.
//
// Owns: the metrics' definitions and how held-out lines become sequences. Lines are packed
// as training packs them (`packing: "full"`, the default: [CLS] then the lines back to back,
// a [SEP] after each) or one line a sequence ("none"). Pseudo-log-likelihood masks each token
// of a sequence in turn and scores it given the rest; its sum, in bits, over the UTF-8 bytes
// of the text the scored tokens cover, gives bits per byte — comparable across tokenizers.
// The one-token-masked copies of the sequences are scored `batch` rows per forward pass
// (default: 2048 tokens' worth), each batch as long as its longest sequence.
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
import type { Packing } from "../corpus/dataset.js";

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

export async function evaluate(
  checkpoint: string,
  data: string,
  opts: { maxSequences?: number; seed?: number; packing?: Packing; batch?: number } = {},
): Promise<EvalResult> {
  const pre = readModel(checkpoint);
  const files = statSync(data).isDirectory()
    ? readdirSync(data)
        .filter((f) => f.endsWith(".txt"))
        .map((f) => join(data, f))
    : [data];
  const text = files.map((f) => readFileSync(f, "utf8")).join("\n");
  const tokenizer = loadTokenizer(pre.tokenizerFile);
  const T = pre.seqLen;
  // The encoder is sized for rows·T tokens, its logits for rows·T·V: 2048 tokens, as a
  // training micro-batch of 4 × 512 holds, keeps eval's memory within what training needs.
  const rows = Math.max(1, opts.batch ?? Math.floor(2048 / T));
  const model = new Encoder(await createWasmKernels(), pre.model, parameterLayout(pre.model, pre.vocabSize), rows * T);
  model.setParameters(pre.params);
  const { cls, sep, pad, mask } = tokenizer.special;
  const maxSequences = opts.maxSequences ?? 200;

  // Sequences as rows of T ids; `bytes` is what each position covers of the text (0 at
  // [CLS], [SEP] and [PAD]): a line's bytes shared evenly by its tokens.
  const sequences: { ids: Int32Array; bytes: Float64Array; length: number }[] = [];
  let row = { ids: new Int32Array(T).fill(pad), bytes: new Float64Array(T), length: 1 };
  row.ids[0] = cls;
  const close = () => {
    sequences.push(row);
    row = { ids: new Int32Array(T).fill(pad), bytes: new Float64Array(T), length: 1 };
    row.ids[0] = cls;
  };
  const put = (id: number, bytes: number) => {
    row.ids[row.length] = id;
    row.bytes[row.length++] = bytes;
  };
  for (const line of text.split("\n")) {
    if (sequences.length >= maxSequences) break;
    if (!line.trim()) continue;
    const ids = tokenizer.encode(line).ids;
    const bytesPerToken = Buffer.byteLength(line) / Math.max(1, ids.length);
    if (opts.packing === "none")
      for (let at = 0; at < ids.length; at += T - 2) {
        for (const id of ids.slice(at, at + T - 2)) put(id, bytesPerToken);
        put(sep, 0);
        close();
      }
    else
      for (const id of [...ids, sep]) {
        put(id, id === sep ? 0 : bytesPerToken);
        if (row.length === T) close();
      }
  }
  if (row.length > 1) close();
  const chosen = sequences.slice(0, maxSequences);
  if (chosen.length === 0) throw new UserError(`${data} holds no text to evaluate on.`);
  const special = new Set(Object.values(tokenizer.special));
  // A batch is as long as its longest sequence, not T: positions past every row's end are
  // padding, which no real token attends to, so cutting them leaves each row's scores as
  // they are and saves their compute (most of it where short lines are not packed).
  const batchOf = (sequencesIn: number[], fill: (r: number, inputIds: Int32Array, labels: Int32Array) => void): MaskedBatch => {
    const count = sequencesIn.length;
    const width = Math.max(...sequencesIn.map((k) => chosen[k]!.length));
    const inputIds = new Int32Array(count * width);
    const labels = new Int32Array(count * width).fill(-100);
    for (let r = 0; r < count; r++) fill(r, inputIds.subarray(r * width, (r + 1) * width), labels.subarray(r * width, (r + 1) * width));
    const attentionMask = Int32Array.from(inputIds, (id) => (id === pad ? 0 : 1));
    return { batch: count, seqLen: width, inputIds, attentionMask, tokenTypeIds: new Int32Array(count * width), labels };
  };

  // MLM loss with a fixed masking seed: the same tokens every evaluation (sequence k is sample k).
  let mlmSum = 0,
    mlmCount = 0;
  for (let first = 0; first < chosen.length; first += rows) {
    const members = chosen.slice(first, first + rows).map((_, r) => first + r);
    const plain = batchOf(members, (r, ids) => ids.set(chosen[first + r]!.ids.subarray(0, ids.length)));
    const masked = applyMasking(
      { ...plain, wordStarts: new Uint8Array(plain.inputIds.length).fill(1) },
      { style: "bert", rate: 0.15, wholeWord: false },
      { seed: opts.seed ?? 1234, firstSample: first, vocabSize: tokenizer.vocabSize, maskId: mask, specialIds: [...special] },
    );
    const r = model.step(masked, 1, { forwardOnly: true });
    mlmSum += r.lossSum;
    mlmCount += r.count;
  }

  // Pseudo-log-likelihood: every scored token masked in turn, one copy of its sequence each,
  // `rows` copies per forward pass.
  const passes: [sequence: number, position: number][] = [];
  let bytes = 0;
  chosen.forEach((seq, k) => {
    for (let i = 0; i < seq.length; i++)
      if (!special.has(seq.ids[i]!) || seq.ids[i] === tokenizer.special.unk) {
        passes.push([k, i]);
        bytes += seq.bytes[i]!;
      }
  });
  let pllSum = 0;
  for (let first = 0; first < passes.length; first += rows) {
    const members = passes.slice(first, first + rows);
    const batch = batchOf(
      members.map(([k]) => k),
      (r, ids, labels) => {
        const [k, i] = members[r]!;
        ids.set(chosen[k]!.ids.subarray(0, ids.length));
        labels[i] = ids[i]!;
        ids[i] = mask;
      },
    );
    pllSum += model.step(batch, 1, { forwardOnly: true }).lossSum;
  }
  const f = fertility(pre.tokenizerFile, text);
  return {
    checkpoint,
    step: pre.step,
    sequences: chosen.length,
    mlmLoss: mlmSum / Math.max(1, mlmCount),
    maskedTokens: mlmCount,
    pseudoPerplexity: Math.exp(pllSum / Math.max(1, passes.length)),
    bitsPerByte: pllSum / Math.LN2 / bytes,
    tokensPerWord: f.tokensPerWord,
    charsPerToken: f.charsPerToken,
    unknownShare: f.unknownShare,
  };
}
