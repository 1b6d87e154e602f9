// Fine-tuning a pre-trained encoder on a labelled task: classification on [CLS] of one text
// or a text pair, and token classification; accuracy and macro F1 on a dev split after
// every epoch, against the majority-class baseline.
//
// Owns: reading task files (JSONL; a bad row is reported with its line number, then skipped
// or fatal), the task heads, whose parameters are appended to the encoder's flat vector so
// one gradient norm and one AdamW pass cover both, the epoch loop, and the Hugging Face
// folder of the fine-tuned model.
// Never: changes the checkpoint it starts from, or runs anything but the Kernels interface
// (so it trains wherever a compute actor would: WebAssembly here, CUDA on a GPU node).
//
// Shapes: B batch, T longest sequence of the batch, C hidden, L labels, M rows the head reads
// (B for sequence tasks: each [CLS]; the labelled first pieces of words for token tasks).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { UserError } from "../runtime/errors.js";
import { readCheckpointRange, readManifest } from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { counterHash } from "./counter-hash.js";
import { Encoder } from "./encoder.js";
import { readHubFolder, writeHubFolder, type HubModel } from "./hub.js";
import type { Buf, Kernels } from "./kernels.js";
import { ALIGN, CHUNK, entry, initParameters, parameterLayout, type ParamEntry, type ParamLayout } from "./layout.js";
import { applyAdamW, clipFactor, globalNorm, learningRate } from "./optimizer.js";
import { createBackend } from "./backend.js";

export const tasks = ["classification", "pair-classification", "token-classification"] as const;
export type Task = (typeof tasks)[number];
export type OnBadRow = "skip" | "fail";

// ---- task files ------------------------------------------------------------------------------

/** One row of a task file as read: `text`/`text_pair`/`label`, or `tokens`/`tags`. */
export interface TaskRow {
  line: number;
  text: string;
  textPair?: string;
  label: string;
  tokens: string[];
  tags: string[];
}

/**
 * Reads a JSONL task file. Each bad row is reported as `FILE:LINE: why`; with "fail" the
 * first one is an error, with "skip" it is left out. `labels`, when given, is the label set
 * of the training file: a dev row with another label is a bad row.
 */
export function readTaskFile(file: string, task: Task, opts: { onBadRow: OnBadRow; labels?: string[]; report?: (message: string) => void }): TaskRow[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read task file ${file}: ${(err as Error).message}`);
  }
  const known = opts.labels ? new Set(opts.labels) : undefined;
  const rows: TaskRow[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    const why = checkRow(raw, task, known);
    if (typeof why === "string") {
      const message = `${file}:${line}: ${why}`;
      if (opts.onBadRow === "fail") throw new UserError(`${message} (fix the row, or pass --on-bad-row skip to leave such rows out)`);
      opts.report?.(`${message}; row skipped`);
      return;
    }
    rows.push({ line, ...why });
  });
  if (rows.length === 0) throw new UserError(`${file} holds no usable rows for --task ${task}.`);
  return rows;
}

function checkRow(raw: string, task: Task, known?: Set<string>): string | Omit<TaskRow, "line"> {
  let row: Record<string, unknown>;
  try {
    row = JSON.parse(raw);
  } catch {
    return "not valid JSON";
  }
  if (typeof row !== "object" || row === null || Array.isArray(row)) return "not a JSON object";
  const nonEmpty = (key: string) => (typeof row[key] === "string" && (row[key] as string).trim() ? undefined : `"${key}" must be a non-empty string`);
  const labelOf = (v: unknown) => (typeof v === "string" && v.trim() ? v : Number.isInteger(v) ? String(v) : undefined);
  if (task === "token-classification") {
    const { tokens, tags } = row as { tokens?: unknown; tags?: unknown };
    if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => typeof t === "string" && t.trim())) return `"tokens" must be a non-empty array of non-empty strings`;
    if (!Array.isArray(tags) || tags.length !== tokens.length) return `"tags" must be an array as long as "tokens" (${tokens.length})`;
    const names = tags.map(labelOf);
    const bad = names.findIndex((t) => t === undefined || (known !== undefined && !known.has(t)));
    if (bad >= 0) return `tag ${JSON.stringify(tags[bad])} at position ${bad} is ${names[bad] === undefined ? "not a string" : "not among the training file's tags"}`;
    return { text: "", label: "", tokens: tokens as string[], tags: names as string[] };
  }
  const problem = nonEmpty("text") ?? (task === "pair-classification" ? nonEmpty("text_pair") : undefined);
  if (problem) return problem;
  const label = labelOf(row.label);
  if (label === undefined) return `"label" must be a non-empty string or a whole number`;
  if (known && !known.has(label)) return `label ${JSON.stringify(label)} is not among the training file's labels (${[...known].join(", ")})`;
  return { text: row.text as string, textPair: task === "pair-classification" ? (row.text_pair as string) : undefined, label, tokens: [], tags: [] };
}

/** The label set of a training file, sorted, so ids do not depend on row order. */
export function labelSet(rows: TaskRow[], task: Task): string[] {
  const all = task === "token-classification" ? rows.flatMap((r) => r.tags) : rows.map((r) => r.label);
  return [...new Set(all)].sort();
}

// ---- encoding ---------------------------------------------------------------------------------

type Tokenizer = ReturnType<typeof loadTokenizer>;

/** One example as the encoder sees it: ids with [CLS]/[SEP], segment ids, and its targets. */
export interface TaskExample {
  ids: number[];
  typeIds: number[];
  /** Sequence tasks: the label id. */
  label: number;
  /** Token tasks: a tag id per position, -100 where nothing is predicted. */
  tags: number[];
}

/**
 * Sequence tasks: [CLS] a [SEP] (b [SEP]), the longer text cut first when over `maxLen`.
 * Token tasks: each word's pieces, its tag on the first piece; words past `maxLen` are cut.
 */
export function encodeRow(row: TaskRow, task: Task, tokenizer: Tokenizer, labelIds: Map<string, number>, maxLen: number): TaskExample {
  const { cls, sep, unk } = tokenizer.special;
  if (task === "token-classification") {
    const ids = [cls];
    const tags = [-100];
    row.tokens.forEach((word, i) => {
      const pieces = tokenizer.encode(word).ids;
      const use = pieces.length ? pieces : [unk];
      if (ids.length + use.length > maxLen - 1) return;
      ids.push(...use);
      tags.push(labelIds.get(row.tags[i]!)!, ...use.slice(1).map(() => -100));
    });
    ids.push(sep);
    tags.push(-100);
    return { ids, typeIds: ids.map(() => 0), label: -1, tags };
  }
  const a = tokenizer.encode(row.text).ids;
  const b = row.textPair !== undefined ? tokenizer.encode(row.textPair).ids : undefined;
  const room = maxLen - (b ? 3 : 2);
  while (a.length + (b?.length ?? 0) > room) (b && b.length > a.length ? b : a).pop();
  const ids = [cls, ...a, sep, ...(b ? [...b, sep] : [])];
  const typeIds = ids.map((_, i) => (i < a.length + 2 ? 0 : 1));
  return { ids, typeIds, label: labelIds.get(row.label)!, tags: [] };
}

// ---- the head -----------------------------------------------------------------------------

/**
 * The encoder's layout with the task head appended: for sequence tasks a dense+tanh pooler
 * on [CLS] (BERT's `bert.pooler.dense`; `dense` for NeoBERT), then `classifier` (L,C).
 */
export function taskLayout(base: ParamLayout, model: ModelConfig, task: Task, labels: number): ParamLayout {
  const C = model.hidden;
  const entries: ParamEntry[] = [...base.entries];
  let offset = base.total;
  const add = (name: string, shape: number[], init: ParamEntry["init"]) => {
    const size = shape.reduce((x, y) => x * y, 1);
    entries.push({ name, offset, shape, size, decay: shape.length === 2, init });
    offset += Math.ceil(size / ALIGN) * ALIGN;
  };
  if (task !== "token-classification") {
    const pooler = model.architecture === "bert" ? "bert.pooler.dense" : "dense";
    add(`${pooler}.weight`, [C, C], "normal");
    add(`${pooler}.bias`, [C], "zeros");
  }
  add("classifier.weight", [labels, C], "normal");
  add("classifier.bias", [labels], "zeros");
  return { ...base, entries, total: Math.ceil(offset / CHUNK) * CHUNK };
}

/** A task head over rows of the encoder output; the encoder gathers the rows, scores them and scatters the gradient back. */
export class TaskHead {
  private readonly k: Kernels;
  private readonly pre: Buf; // (M,C) pooler before tanh
  private readonly pooled: Buf; // (M,C)
  private readonly logits: Buf; // (M,L), then dlogits
  private readonly dFeat: Buf; // (M,C)
  private readonly dx: Buf; // (M,C)
  private readonly pooler?: string;

  constructor(
    private readonly encoder: Encoder,
    task: Task,
    private readonly L: number,
    maxRows: number,
  ) {
    const k = (this.k = encoder.kernels);
    const C = encoder.config.hidden;
    if (task !== "token-classification") this.pooler = encoder.config.architecture === "bert" ? "bert.pooler.dense" : "dense";
    [this.pre, this.pooled, this.dFeat, this.dx] = [0, 1, 2, 3].map(() => k.alloc(maxRows * C));
    this.logits = k.alloc(maxRows * L);
  }

  private w = (name: string) => this.k.view(this.encoder.params, entry(this.encoder.layout, name).offset);
  private dw = (name: string) => this.k.view(this.encoder.grads, entry(this.encoder.layout, name).offset);

  // x (M,C) → logits (M,L): sequence tasks first pool, dense (C,C) and tanh; then classifier (L,C) and bias (L)
  private forward(logits: Buf, x: Buf, M: number): void {
    const { k, L } = this;
    const C = this.encoder.config.hidden;
    if (this.pooler) {
      k.matmul({ out: this.pre, a: x, b: this.w(`${this.pooler}.weight`), m: M, n: C, k: C, transB: true });
      k.addBias(this.pre, this.w(`${this.pooler}.bias`), M, C);
      k.tanh(this.pooled, this.pre, M * C);
    }
    k.matmul({ out: logits, a: this.pooler ? this.pooled : x, b: this.w("classifier.weight"), m: M, n: L, k: C, transB: true });
    k.addBias(logits, this.w("classifier.bias"), M, L);
  }

  // dlogits (M,L) → dx (M,C); accumulates the head's gradients
  private backward(dx: Buf, dlogits: Buf, x: Buf, M: number): void {
    const { k, L } = this;
    const C = this.encoder.config.hidden;
    k.biasBackward(this.dw("classifier.bias"), dlogits, M, L, true);
    k.matmul({ out: this.dw("classifier.weight"), a: dlogits, b: this.pooler ? this.pooled : x, m: L, n: C, k: M, transA: true, accumulate: true });
    k.matmul({ out: this.pooler ? this.dFeat : dx, a: dlogits, b: this.w("classifier.weight"), m: M, n: C, k: L });
    if (!this.pooler) return;
    k.tanhBackward(this.dFeat, this.pooled, this.dFeat, M * C);
    k.biasBackward(this.dw(`${this.pooler}.bias`), this.dFeat, M, C, true);
    k.matmul({ out: this.dw(`${this.pooler}.weight`), a: this.dFeat, b: x, m: C, n: C, k: M, transA: true, accumulate: true });
    k.matmul({ out: dx, a: this.dFeat, b: this.w(`${this.pooler}.weight`), m: M, n: C, k: C });
  }

  /**
   * The head over `rows` of the encoder's last forward and, when training, its backward and
   * the encoder's. The loss is the mean over the rows. Returns the summed loss and the logits (M,L).
   */
  run(rows: number[], labels: number[], train: boolean): { lossSum: number; logits: Float32Array } {
    const M = rows.length;
    const x = this.encoder.gatherRows(rows, labels);
    this.forward(this.logits, x, M);
    const logits = new Float32Array(M * this.L);
    this.k.download(this.logits, logits);
    const { lossSum } = this.encoder.rowLoss(this.logits, M, this.L, 1 / M);
    if (train) {
      this.backward(this.dx, this.logits, x, M);
      this.encoder.scatterRows(this.dx, M);
    }
    return { lossSum, logits };
  }
}

// ---- metrics --------------------------------------------------------------------------------

export interface Scores {
  accuracy: number;
  /** Mean F1 over the labels that occur in the gold or the predictions. */
  macroF1: number;
}

export function score(gold: number[], predicted: number[]): Scores {
  const labels = [...new Set([...gold, ...predicted])];
  let correct = 0;
  gold.forEach((g, i) => (correct += g === predicted[i] ? 1 : 0));
  const f1s = labels.map((c) => {
    let tp = 0, fp = 0, fn = 0;
    gold.forEach((g, i) => {
      const p = predicted[i];
      if (p === c && g === c) tp++;
      else if (p === c) fp++;
      else if (g === c) fn++;
    });
    return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  });
  return { accuracy: correct / Math.max(1, gold.length), macroF1: f1s.reduce((s, v) => s + v, 0) / Math.max(1, f1s.length) };
}

// ---- the run ----------------------------------------------------------------------------------

export interface FinetuneOptions {
  /** A checkpoint folder, or a Hugging Face folder written by `export`. */
  checkpoint: string;
  task: Task;
  train: string;
  dev: string;
  out: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Longest sequence in tokens; default: the length the model was pre-trained on. */
  maxLength?: number;
  onBadRow?: OnBadRow;
  backend?: string;
  report?: (message: string) => void;
  onEpoch?: (e: EpochResult) => void;
}

export interface EpochResult {
  epoch: number;
  trainLoss: number;
  dev: Scores & { loss: number };
}

export interface FinetuneResult {
  task: Task;
  labels: string[];
  trainRows: number;
  devRows: number;
  /** Predicting the training file's most frequent label for every dev row (or token). */
  baseline: Scores & { label: string };
  epochs: EpochResult[];
  out: string;
  backend: string;
}

/** The pre-trained model: from a checkpoint folder or a Hugging Face folder. */
export function loadPretrained(path: string): HubModel {
  if (existsSync(join(path, "manifest.json"))) {
    const manifest = readManifest(path);
    if (!manifest.model) throw new UserError(`${path} was written without its model config: fine-tune a checkpoint of this version of aze-run.`);
    const tokenizerFile = join(path, "tokenizer.json");
    if (!existsSync(tokenizerFile)) throw new UserError(`${path} has no tokenizer.json.`);
    return { model: manifest.model, vocabSize: manifest.vocabSize, seqLen: manifest.seqLen, params: readCheckpointRange(path, 0, manifest.total).params, tokenizerFile };
  }
  if (existsSync(join(path, "config.json"))) return readHubFolder(path);
  throw new UserError(`${path} is neither a checkpoint (no manifest.json) nor a Hugging Face folder (no config.json).`);
}

export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const { task } = opts;
  const onBadRow = opts.onBadRow ?? "skip";
  const epochs = opts.epochs ?? 3;
  const batchSize = opts.batchSize ?? 16;
  const seed = opts.seed ?? 1;
  const pre = loadPretrained(opts.checkpoint);
  const maxLen = Math.min(opts.maxLength ?? pre.seqLen, pre.model.maxPositions);
  const tokenizer = loadTokenizer(pre.tokenizerFile);

  const trainRows = readTaskFile(opts.train, task, { onBadRow, report: opts.report });
  const labels = labelSet(trainRows, task);
  if (labels.length < 2) throw new UserError(`${opts.train} has a single label (${labels[0]}): a classifier needs at least two.`);
  const devRows = readTaskFile(opts.dev, task, { onBadRow, labels, report: opts.report });
  const labelIds = new Map(labels.map((l, i) => [l, i]));
  const trainSet = trainRows.map((r) => encodeRow(r, task, tokenizer, labelIds, maxLen));
  const devSet = devRows.map((r) => encodeRow(r, task, tokenizer, labelIds, maxLen));

  const { kernels: k, reason } = await createBackend(opts.backend ?? "wasm");
  const model = { ...pre.model };
  const layout = taskLayout(parameterLayout(model, pre.vocabSize), model, task, labels.length);
  const encoder = new Encoder(k, model, layout, batchSize * maxLen, seed);
  const head = new TaskHead(encoder, task, labels.length, batchSize * maxLen);
  const initial = initParameters(layout, seed); // the head's initialisation; the encoder's part is replaced
  initial.set(pre.params);
  encoder.setParameters(initial);
  const m = k.alloc(layout.total);
  const v = k.alloc(layout.total);
  k.fill(m, layout.total, 0);
  k.fill(v, layout.total, 0);

  const stepsPerEpoch = Math.ceil(trainSet.length / batchSize);
  const schedule = { lr: opts.lr ?? 1e-4, warmupSteps: Math.round(0.1 * epochs * stepsPerEpoch), schedule: "linear" as const, steps: epochs * stepsPerEpoch, minLrRatio: 0 };
  const adam = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

  /** Forward (and backward when training) of examples; returns the summed loss and predictions. */
  const pass = (examples: TaskExample[], train: boolean, dropoutCounter: number) => {
    const T = Math.max(...examples.map((e) => e.ids.length));
    const B = examples.length;
    const inputIds = new Int32Array(B * T).fill(tokenizer.special.pad);
    const attentionMask = new Int32Array(B * T);
    const tokenTypeIds = new Int32Array(B * T);
    const rows: number[] = [];
    const targets: number[] = [];
    examples.forEach((e, b) => {
      inputIds.set(e.ids, b * T);
      attentionMask.fill(1, b * T, b * T + e.ids.length);
      if (model.architecture === "bert" && model.typeVocabSize > 1) tokenTypeIds.set(e.typeIds, b * T);
      if (task === "token-classification") e.tags.forEach((t, i) => t !== -100 && (rows.push(b * T + i), targets.push(t)));
      else rows.push(b * T), targets.push(e.label);
    });
    encoder.forward({ batch: B, seqLen: T, inputIds, attentionMask, tokenTypeIds }, { forwardOnly: !train, dropoutCounter });
    if (rows.length === 0) return { lossSum: 0, count: 0, gold: [], predicted: [] };
    const { lossSum, logits } = head.run(rows, targets, train);
    const L = labels.length;
    const predicted = rows.map((_, r) => {
      let best = 0;
      for (let c = 1; c < L; c++) if (logits[r * L + c]! > logits[r * L + best]!) best = c;
      return best;
    });
    return { lossSum, count: rows.length, gold: targets, predicted };
  };

  const evaluateDev = () => {
    let lossSum = 0, count = 0;
    const gold: number[] = [], predicted: number[] = [];
    for (let at = 0; at < devSet.length; at += batchSize) {
      const r = pass(devSet.slice(at, at + batchSize), false, 0);
      lossSum += r.lossSum;
      count += r.count;
      gold.push(...r.gold);
      predicted.push(...r.predicted);
    }
    return { ...score(gold, predicted), loss: lossSum / Math.max(1, count) };
  };

  const results: EpochResult[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = shuffled(trainSet.length, seed, epoch);
    let lossSum = 0, batches = 0;
    for (let at = 0; at < order.length; at += batchSize) {
      encoder.zeroGrads();
      const r = pass(order.slice(at, at + batchSize).map((i) => trainSet[i]!), true, step);
      if (r.count === 0) continue;
      const norm = globalNorm(k.sumSquares(encoder.grads, layout.total, CHUNK));
      if (!Number.isFinite(norm)) throw new UserError(`fine-tuning diverged at step ${step + 1} (gradient norm ${norm}): lower --lr.`);
      applyAdamW(k, { params: encoder.params, grad: encoder.grads, m, v }, layout, 0, layout.total, { lr: learningRate(step, schedule), step: step + 1, clip: clipFactor(norm, 1), training: adam });
      lossSum += r.lossSum / r.count;
      batches++;
      step++;
    }
    const dev = evaluateDev();
    const result = { epoch, trainLoss: lossSum / Math.max(1, batches), dev: { accuracy: dev.accuracy, macroF1: dev.macroF1, loss: dev.loss } };
    results.push(result);
    opts.onEpoch?.(result);
  }

  // The majority-class baseline on the same dev rows (tokens for token tasks).
  const counts = new Map<number, number>();
  for (const e of trainSet) for (const t of task === "token-classification" ? e.tags.filter((t) => t !== -100) : [e.label]) counts.set(t, (counts.get(t) ?? 0) + 1);
  const majority = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
  const devGold = devSet.flatMap((e) => (task === "token-classification" ? e.tags.filter((t) => t !== -100) : [e.label]));
  const baseline = { label: labels[majority]!, ...score(devGold, devGold.map(() => majority)) };

  // The fine-tuned model as a Hugging Face folder (the MLM head is left out: it did not train).
  const params = new Float32Array(layout.total);
  k.download(encoder.params, params);
  const tensors = layout.entries.filter((e) => !e.name.startsWith("cls.predictions")).map((e) => ({ name: e.name, dtype: "F32" as const, shape: e.shape, data: params.subarray(e.offset, e.offset + e.size) }));
  const kind = task === "token-classification" ? "TokenClassification" : "SequenceClassification";
  const result: FinetuneResult = { task, labels, trainRows: trainSet.length, devRows: devSet.length, baseline, epochs: results, out: opts.out, backend: reason };
  writeHubFolder(opts.out, {
    model,
    vocabSize: pre.vocabSize,
    seqLen: maxLen,
    tensors,
    tokenizerFile: pre.tokenizerFile,
    config: {
      architectures: [`${model.architecture === "bert" ? "Bert" : "NeoBERT"}For${kind}`],
      id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
      label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
      ...(task !== "token-classification" && { problem_type: "single_label_classification" }),
    },
    metadata: { aze_run_task: task, aze_run_seed: String(seed) },
    files: { "finetune.json": JSON.stringify({ ...result, checkpoint: opts.checkpoint, train: opts.train, dev: opts.dev, seed, epochsRun: epochs, batchSize, lr: schedule.lr, maxLength: maxLen }, null, 2) + "\n" },
  });
  return result;
}

/** 0..n-1 in an order that is a pure function of (seed, epoch): Fisher-Yates over the counter hash. */
function shuffled(n: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = counterHash(seed ^ 0x2545f491, epoch * 0x100000 + i) % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
