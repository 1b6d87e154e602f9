// Fine-tuning a pre-trained encoder on a labelled task (model/tasks.ts) with a task head
// (model/task-heads.ts): the epoch loop, accuracy and macro F1 on a dev split after every
// epoch against the majority-class baseline, and the Hugging Face folder of the result.
//
// Owns: the epoch loop and the folder it writes. AdamW and clipping are the run config's
// training defaults, so fine-tuning and pre-training agree on what an unset value means.
// Never: changes the checkpoint it starts from, or runs anything but the Kernels interface
// (so it trains wherever a compute actor would: WebAssembly here, CUDA on a GPU node).
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { trainingDefaults } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import { createBackend } from "./backend.js";
import { counterHash } from "./counter-hash.js";
import { Encoder } from "./encoder.js";
import { readModel, writeHubFolder } from "./hub.js";
import { CHUNK, initParameters, parameterLayout } from "./layout.js";
import { applyAdamW, clipFactor, globalNorm, learningRate } from "./optimizer.js";
import { TaskHead, taskLayout } from "./task-heads.js";
import { encodeRow, labelSet, readTaskFile, score, type OnBadRow, type Scores, type Task, type TaskExample } from "./tasks.js";

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

export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const { task } = opts;
  const onBadRow = opts.onBadRow ?? "skip";
  const epochs = opts.epochs ?? 3;
  const batchSize = opts.batchSize ?? 16;
  const seed = opts.seed ?? 1;
  const pre = readModel(opts.checkpoint);
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
  const m = k.alloc(layout.total); // AdamW's moments; alloc zero-fills
  const v = k.alloc(layout.total);

  const stepsPerEpoch = Math.ceil(trainSet.length / batchSize);
  const schedule = {
    lr: opts.lr ?? 1e-4,
    warmupSteps: Math.round(0.1 * epochs * stepsPerEpoch),
    schedule: "linear" as const,
    steps: epochs * stepsPerEpoch,
    minLrRatio: 0,
  };

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
      const labelled = task === "token-classification" ? e.tags.flatMap((t, i) => (t === -100 ? [] : [[i, t] as const])) : [[0, e.label] as const];
      for (const [i, t] of labelled) {
        rows.push(b * T + i);
        targets.push(t);
      }
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
    let lossSum = 0,
      count = 0;
    const gold: number[] = [],
      predicted: number[] = [];
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
    let lossSum = 0,
      batches = 0;
    for (let at = 0; at < order.length; at += batchSize) {
      encoder.zeroGrads();
      const r = pass(
        order.slice(at, at + batchSize).map((i) => trainSet[i]!),
        true,
        step,
      );
      if (r.count === 0) continue;
      const norm = globalNorm(k.sumSquares(encoder.grads, layout.total, CHUNK));
      if (!Number.isFinite(norm)) throw new UserError(`fine-tuning diverged at step ${step + 1} (gradient norm ${norm}): lower --lr.`);
      applyAdamW(k, { params: encoder.params, grad: encoder.grads, m, v }, layout, 0, layout.total, {
        lr: learningRate(step, schedule),
        step: step + 1,
        clip: clipFactor(norm, trainingDefaults.clipNorm),
        training: trainingDefaults,
      });
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
  for (const e of trainSet)
    for (const t of task === "token-classification" ? e.tags.filter((t) => t !== -100) : [e.label]) counts.set(t, (counts.get(t) ?? 0) + 1);
  const majority = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
  const devGold = devSet.flatMap((e) => (task === "token-classification" ? e.tags.filter((t) => t !== -100) : [e.label]));
  const baseline = {
    label: labels[majority]!,
    ...score(
      devGold,
      devGold.map(() => majority),
    ),
  };

  // The fine-tuned model as a Hugging Face folder (the MLM head is left out: it did not train).
  const params = new Float32Array(layout.total);
  k.download(encoder.params, params);
  const tensors = layout.entries
    .filter((e) => !e.name.startsWith("cls.predictions"))
    .map((e) => ({ name: e.name, dtype: "F32" as const, shape: e.shape, data: params.subarray(e.offset, e.offset + e.size) }));
  const kind = task === "token-classification" ? "TokenClassification" : "SequenceClassification";
  const result: FinetuneResult = {
    task,
    labels,
    trainRows: trainSet.length,
    devRows: devSet.length,
    baseline,
    epochs: results,
    out: opts.out,
    backend: reason,
  };
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
    files: {
      "finetune.json": `${JSON.stringify(
        { ...result, checkpoint: opts.checkpoint, train: opts.train, dev: opts.dev, seed, epochsRun: epochs, batchSize, lr: schedule.lr, maxLength: maxLen },
        null,
        2,
      )}\n`,
    },
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
