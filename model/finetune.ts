// Fine-tuning a pre-trained encoder on a labelled task (model/tasks.ts) with a task head
// (model/task-heads.ts): the epoch loop, the dev scores after every epoch (accuracy and macro
// F1; entity F1 for token tasks; exact match and token F1 for question answering) against a
// baseline that learns nothing, and the Hugging Face folder of the result.
//
// Owns: the epoch loop, putting a long row's windows back together for scoring, and the
// folder it writes. AdamW and clipping are the run config's training defaults, so
// fine-tuning and pre-training agree on what an unset value means.
// Never: changes the checkpoint it starts from, or runs anything but the Kernels interface
// (so it trains wherever a compute actor would: WebAssembly here, CUDA on a GPU node).
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { trainingDefaults } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import { createBackend } from "./backend.js";
import { counterHash } from "./counter-hash.js";
import { Encoder } from "./encoder.js";
import { readModel, taskHubConfig, writeHubFolder } from "./hub.js";
import { CHUNK, initParameters, parameterLayout } from "./layout.js";
import { applyAdamW, clipFactor, globalNorm, learningRate } from "./optimizer.js";
import { TaskHead, taskLayout } from "./task-heads.js";
import {
  bestSpan,
  encodeRow,
  entityScores,
  firstSentence,
  labelSet,
  readTaskFile,
  score,
  spanScores,
  type EntityScores,
  type OnBadRow,
  type SpanWindow,
  type Task,
  type TaskExample,
} from "./tasks.js";

export interface FinetuneOptions {
  /** A checkpoint folder, or a Hugging Face folder written by `export`. */
  checkpoint: string;
  task: Task;
  train: string;
  dev: string;
  /** Where the Hugging Face folder goes; none is written without it. */
  out?: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Longest window in tokens; default: the length the model was pre-trained on. */
  maxLength?: number;
  /** Tokens consecutive windows of a long row share; default: a quarter of the window. */
  stride?: number;
  /** Question answering: the longest answer in pieces (default 30, as SQuAD's scripts). */
  maxAnswerLength?: number;
  /** "random": the checkpoint's architecture with freshly initialised weights (the benchmark's control). */
  weights?: "pretrained" | "random";
  onBadRow?: OnBadRow;
  backend?: string;
  report?: (message: string) => void;
  onEpoch?: (e: EpochResult) => void;
}

/** Dev scores: which ones depend on the task. */
export interface DevScores {
  /** Classification: over rows; token tasks: over words, each scored once. */
  accuracy?: number;
  macroF1?: number;
  /** Token tasks: entity-level precision, recall and F1 (CoNLL, exact span and type). */
  entities?: EntityScores;
  /** Token tasks: words scored (every word of the dev file). */
  words?: number;
  /** Question answering: SQuAD's exact match and token F1, as fractions. */
  exactMatch?: number;
  f1?: number;
}

export interface EpochResult {
  epoch: number;
  trainLoss: number;
  dev: DevScores & { loss: number };
}

export interface FinetuneResult {
  task: Task;
  labels: string[];
  trainRows: number;
  devRows: number;
  /**
   * Learning nothing: the training file's most frequent label for every dev row (or word);
   * for question answering, the first sentence of the context as every answer.
   */
  baseline: DevScores & { label: string };
  epochs: EpochResult[];
  out?: string;
  backend: string;
}

export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const { task } = opts;
  const onBadRow = opts.onBadRow ?? "skip";
  const epochs = opts.epochs ?? 3;
  const batchSize = opts.batchSize ?? 16;
  const seed = opts.seed ?? 1;
  const maxAnswer = opts.maxAnswerLength ?? 30;
  const pre = readModel(opts.checkpoint);
  const maxLen = Math.min(opts.maxLength ?? pre.seqLen, pre.model.maxPositions);
  const stride = opts.stride ?? Math.floor(maxLen / 4);
  if (maxLen < 8) throw new UserError(`--max-length ${maxLen} is too short for a window: use at least 8.`);
  if (stride >= maxLen / 2) throw new UserError(`--stride ${stride}: windows of ${maxLen} tokens must share fewer than half of them; lower --stride.`);
  const tokenizer = loadTokenizer(pre.tokenizerFile);

  const trainRows = readTaskFile(opts.train, task, { onBadRow, report: opts.report });
  const labels = labelSet(trainRows, task);
  if (labels.length < 2) throw new UserError(`${opts.train} has a single label (${labels[0]}): a classifier needs at least two.`);
  const devRows = readTaskFile(opts.dev, task, { onBadRow, labels: task === "question-answering" ? undefined : labels, report: opts.report });
  const labelIds = new Map(labels.map((l, i) => [l, i]));
  const windows = { maxLen, stride };
  const trainSet = trainRows.flatMap((r, i) => encodeRow(r, i, task, tokenizer, labelIds, windows));
  const devSet = devRows.flatMap((r, i) => encodeRow(r, i, task, tokenizer, labelIds, windows));

  const { kernels: k, reason } = await createBackend(opts.backend ?? "wasm");
  const model = { ...pre.model };
  const layout = taskLayout(parameterLayout(model, pre.vocabSize), model, task, labels.length);
  const encoder = new Encoder(k, model, layout, batchSize * maxLen, seed);
  const head = new TaskHead(encoder, task, labels.length, batchSize * maxLen);
  const initial = initParameters(layout, seed); // the head's initialisation; the encoder's part is replaced
  if (opts.weights !== "random") initial.set(pre.params);
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

  /**
   * Forward (and backward when training) of windows. Returns the summed loss over what it
   * scored, and: the predicted label at each scored (window, position) for classifiers (in
   * evaluation a token task scores each word in one window only), the start and end logits
   * of each window for question answering.
   */
  const pass = (examples: TaskExample[], train: boolean, dropoutCounter: number) => {
    const T = Math.max(...examples.map((e) => e.ids.length));
    const B = examples.length;
    const inputIds = new Int32Array(B * T).fill(tokenizer.special.pad);
    const attentionMask = new Int32Array(B * T);
    const tokenTypeIds = new Int32Array(B * T);
    const rows: number[] = [];
    const targets: number[] = [];
    const at: { example: TaskExample; position: number }[] = [];
    examples.forEach((e, b) => {
      inputIds.set(e.ids, b * T);
      attentionMask.fill(1, b * T, b * T + e.ids.length);
      if (model.architecture === "bert" && model.typeVocabSize > 1) tokenTypeIds.set(e.typeIds, b * T);
      if (task === "question-answering") return;
      const labelled =
        task === "token-classification"
          ? e.tags.flatMap((t, i) => (t === -100 || (!train && e.scores[i]! < 0) ? [] : [[i, t] as const]))
          : [[0, e.label] as const];
      for (const [i, t] of labelled) {
        rows.push(b * T + i);
        targets.push(t);
        at.push({ example: e, position: i });
      }
    });
    encoder.forward({ batch: B, seqLen: T, inputIds, attentionMask, tokenTypeIds }, { forwardOnly: !train, dropoutCounter });
    if (task === "question-answering") {
      const spans = examples.map((e) => e.span!);
      const r = head.runSpans(
        B,
        T,
        attentionMask,
        spans.map((s) => s.start),
        spans.map((s) => s.end),
        train,
      );
      const logits = examples.map((e, b) => ({ example: e, start: r.start.subarray(b * T, (b + 1) * T), end: r.end.subarray(b * T, (b + 1) * T) }));
      return { lossSum: r.lossSum, count: 2 * B, at, predicted: [], logits };
    }
    if (rows.length === 0) return { lossSum: 0, count: 0, at, predicted: [], logits: [] };
    const { lossSum, logits } = head.run(rows, targets, train);
    const L = labels.length;
    const predicted = rows.map((_, r) => {
      let best = 0;
      for (let c = 1; c < L; c++) if (logits[r * L + c]! > logits[r * L + best]!) best = c;
      return best;
    });
    return { lossSum, count: rows.length, at, predicted, logits: [] };
  };

  /** Token tasks: the scores of tags predicted per word (each word of each dev row exactly once). */
  const wordScores = (predictedAt: (e: TaskExample, position: number) => number): DevScores => {
    const predicted = devRows.map((r) => r.tokens.map(() => -1));
    for (const e of devSet)
      e.scores.forEach((word, p) => {
        if (word < 0) return;
        if (predicted[e.row]![word] !== -1) throw new Error(`word ${word} of dev row ${e.row} is scored in two windows`);
        predicted[e.row]![word] = predictedAt(e, p);
      });
    const flat = predicted.flat();
    if (flat.includes(-1)) throw new Error("a dev word is scored in no window");
    const gold = devRows.flatMap((r) => r.tags.map((t) => labelIds.get(t)!));
    const { accuracy, macroF1 } = score(gold, flat);
    const entities = entityScores(
      devRows.map((r) => r.tags),
      predicted.map((p) => p.map((id) => labels[id]!)),
    );
    return { accuracy, macroF1, entities, words: flat.length };
  };

  /** Question answering: the best span of each dev row over its windows, scored against its answers. */
  const answerScores = (predictions: string[]): DevScores =>
    spanScores(
      predictions,
      devRows.map((r) => r.answers!.map((a) => a.text)),
    );

  const evaluateDev = (): DevScores & { loss: number } => {
    let lossSum = 0,
      count = 0;
    const gold: number[] = [],
      predicted: number[] = [];
    const byPosition = new Map<TaskExample, Map<number, number>>();
    const windowsOf = devRows.map(() => [] as { span: SpanWindow; start: Float32Array; end: Float32Array }[]);
    for (let from = 0; from < devSet.length; from += batchSize) {
      const r = pass(devSet.slice(from, from + batchSize), false, 0);
      lossSum += r.lossSum;
      count += r.count;
      r.at.forEach(({ example, position }, i) => {
        if (!byPosition.has(example)) byPosition.set(example, new Map());
        byPosition.get(example)!.set(position, r.predicted[i]!);
        gold.push(example.label);
        predicted.push(r.predicted[i]!);
      });
      for (const w of r.logits) windowsOf[w.example.row]!.push({ span: w.example.span!, start: w.start, end: w.end });
    }
    const loss = lossSum / Math.max(1, count);
    if (task === "token-classification") return { ...wordScores((e, p) => byPosition.get(e)!.get(p)!), loss };
    if (task === "question-answering") return { ...answerScores(devRows.map((row, i) => bestSpan(row.context!, windowsOf[i]!, maxAnswer).text)), loss };
    return { ...score(gold, predicted), loss };
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
    const result = { epoch, trainLoss: lossSum / Math.max(1, batches), dev: evaluateDev() };
    results.push(result);
    opts.onEpoch?.(result);
  }

  // The baseline on the same dev rows: the training file's majority label (per word for token tasks), or the first sentence.
  const counts = new Map<string, number>();
  for (const r of trainRows) for (const t of task === "token-classification" ? r.tags : [r.label]) counts.set(t, (counts.get(t) ?? 0) + 1);
  const majority = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  const majorityId = labelIds.get(majority) ?? 0;
  const baseline =
    task === "question-answering"
      ? { label: "first sentence", ...answerScores(devRows.map((r) => firstSentence(r.context!))) }
      : task === "token-classification"
        ? { label: majority, ...wordScores(() => majorityId) }
        : {
            label: majority,
            ...score(
              devRows.map((r) => labelIds.get(r.label)!),
              devRows.map(() => majorityId),
            ),
          };

  const result: FinetuneResult = {
    task,
    labels,
    trainRows: trainRows.length,
    devRows: devRows.length,
    baseline,
    epochs: results,
    out: opts.out,
    backend: reason,
  };
  if (opts.out) {
    // The fine-tuned model as a Hugging Face folder (the MLM head is left out: it did not train).
    const params = new Float32Array(layout.total);
    k.download(encoder.params, params);
    const tensors = layout.entries
      .filter((e) => !e.name.startsWith("cls.predictions"))
      .map((e) => ({ name: e.name, dtype: "F32" as const, shape: e.shape, data: params.subarray(e.offset, e.offset + e.size) }));
    writeHubFolder(opts.out, {
      model,
      vocabSize: pre.vocabSize,
      seqLen: maxLen,
      tensors,
      tokenizerFile: pre.tokenizerFile,
      config: taskHubConfig(model, task, labels),
      metadata: { aze_run_task: task, aze_run_seed: String(seed) },
      files: {
        "finetune.json": `${JSON.stringify(
          {
            ...result,
            checkpoint: opts.checkpoint,
            train: opts.train,
            dev: opts.dev,
            seed,
            epochsRun: epochs,
            batchSize,
            lr: schedule.lr,
            maxLength: maxLen,
            stride,
            ...(task === "question-answering" && { maxAnswerLength: maxAnswer }),
          },
          null,
          2,
        )}\n`,
      },
    });
  }
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
