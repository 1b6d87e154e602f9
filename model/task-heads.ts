// The fine-tuning heads. Owns: their parameters, appended to the encoder's layout so one
// gradient norm and one AdamW pass cover both, and their forward and backward.
// Never: reads rows or scores them itself; the encoder's head read-back does (gatherRows,
// rowLoss, scatterRows), the same one the MLM head uses.
//
// Shapes: C hidden, L labels, M rows the head reads (B for sequence tasks: each [CLS]; the
// labelled first pieces of words for token tasks; all B·T positions for question answering,
// where L = 2: a start and an end logit per position).
import type { ModelConfig } from "./config.js";
import type { Encoder } from "./encoder.js";
import type { Buf, Kernels } from "./kernels.js";
import { entry, extendLayout, type ParamLayout } from "./layout.js";
import type { Task } from "./tasks.js";

/** Sequence tasks pool [CLS] through a dense layer named as Hugging Face names it; token tasks read the rows as they are. */
const poolerOf = (model: ModelConfig, task: Task) =>
  task === "token-classification" || task === "question-answering" ? undefined : model.architecture === "bert" ? "bert.pooler.dense" : "dense";

/** The output layer's Hugging Face name: `qa_outputs` (2,C) for question answering, `classifier` (L,C) otherwise. */
const outputOf = (task: Task) => (task === "question-answering" ? "qa_outputs" : "classifier");

/** Added to the logit of a padding position, so that the softmax over a window's positions gives it nothing (and the loss does not depend on how much a batch pads). */
const padLogit = -1e4;

/**
 * The encoder's layout with the task head appended: for sequence tasks a dense+tanh pooler
 * on [CLS] (BERT's `bert.pooler.dense`; `dense` for NeoBERT), then `classifier` (L,C);
 * `qa_outputs` (2,C) for question answering.
 */
export function taskLayout(base: ParamLayout, model: ModelConfig, task: Task, labels: number): ParamLayout {
  const C = model.hidden;
  const pooler = poolerOf(model, task);
  return extendLayout(base, (add) => {
    if (pooler) {
      add(`${pooler}.weight`, [C, C], "normal");
      add(`${pooler}.bias`, [C], "zeros");
    }
    add(`${outputOf(task)}.weight`, [labels, C], "normal");
    add(`${outputOf(task)}.bias`, [labels], "zeros");
  });
}

/** A task head over rows of the encoder output; the encoder gathers the rows, scores them and scatters the gradient back. */
export class TaskHead {
  private readonly k: Kernels;
  private readonly pre: Buf; // (M,C) pooler before tanh
  private readonly pooled: Buf; // (M,C)
  private readonly logits: Buf; // (M,L), then dlogits
  private readonly dFeat: Buf; // (M,C)
  private readonly dx: Buf; // (M,C)
  private readonly pooler: string | undefined;
  private readonly output: string;
  // question answering: the logits (M,2) regrouped as (2B,T), a start row then an end row per window
  private readonly spans: Buf; // (2B,T)
  private readonly padding: Buf; // (2B,T): 0, or padLogit at padding
  private readonly regroup: Buf; // i32 (2M): the (M,2) index of each (2B,T) entry

  constructor(
    private readonly encoder: Encoder,
    task: Task,
    private readonly L: number,
    maxRows: number,
  ) {
    this.k = encoder.kernels;
    const k = this.k;
    const C = encoder.config.hidden;
    this.pooler = poolerOf(encoder.config, task);
    this.output = outputOf(task);
    this.pre = k.alloc(maxRows * C);
    this.pooled = k.alloc(maxRows * C);
    this.dFeat = k.alloc(maxRows * C);
    this.dx = k.alloc(maxRows * C);
    this.logits = k.alloc(maxRows * L);
    const spans = task === "question-answering" ? 2 * maxRows : 0;
    this.spans = k.alloc(Math.max(1, spans));
    this.padding = k.alloc(Math.max(1, spans));
    this.regroup = k.alloc(Math.max(1, spans), "i32");
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
    k.matmul({ out: logits, a: this.pooler ? this.pooled : x, b: this.w(`${this.output}.weight`), m: M, n: L, k: C, transB: true });
    k.addBias(logits, this.w(`${this.output}.bias`), M, L);
  }

  // dlogits (M,L) → dx (M,C); accumulates the head's gradients
  private backward(dx: Buf, dlogits: Buf, x: Buf, M: number): void {
    const { k, L } = this;
    const C = this.encoder.config.hidden;
    k.biasBackward(this.dw(`${this.output}.bias`), dlogits, M, L, true);
    k.matmul({ out: this.dw(`${this.output}.weight`), a: dlogits, b: this.pooler ? this.pooled : x, m: L, n: C, k: M, transA: true, accumulate: true });
    k.matmul({ out: this.pooler ? this.dFeat : dx, a: dlogits, b: this.w(`${this.output}.weight`), m: M, n: C, k: L });
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

  /**
   * Question answering over the encoder's last forward of B windows of T positions
   * (`attentionMask` (B,T) as given to it): a start and an end logit at every position, then
   * Hugging Face's loss, the mean of the cross-entropy of the start position over each
   * window's positions and that of the end position (padding excluded). When training, its
   * backward and the encoder's. Returns the summed loss of the 2B softmaxes and the start
   * and end logits (B,T) each, padding at padLogit.
   */
  runSpans(
    B: number,
    T: number,
    attentionMask: Int32Array,
    starts: number[],
    ends: number[],
    train: boolean,
  ): { lossSum: number; start: Float32Array; end: Float32Array } {
    const { k } = this;
    const M = B * T;
    // gatherRows uploads the labels the loss reads: the 2B targets, a start then an end per window (M ≥ 2B, as T ≥ 2)
    const targets = new Array<number>(M).fill(-100);
    for (let b = 0; b < B; b++) {
      targets[b] = starts[b]!;
      targets[B + b] = ends[b]!;
    }
    const x = this.encoder.gatherRows(
      Array.from({ length: M }, (_, i) => i),
      targets,
    );
    this.forward(this.logits, x, M);
    // (M,2) → (2B,T): row b, column t is the start logit (b·T+t, 0); row B+b, column t the end logit (b·T+t, 1)
    const order = new Int32Array(2 * M);
    for (let i = 0; i < M; i++) {
      order[i] = 2 * i;
      order[M + i] = 2 * i + 1;
    }
    k.upload(this.regroup, order);
    k.embedding(this.spans, this.logits, this.regroup, 2 * M, 1, false);
    const padding = new Float32Array(2 * M);
    for (let i = 0; i < M; i++) if (!attentionMask[i]) padding[i] = padding[M + i] = padLogit;
    k.upload(this.padding, padding);
    k.add(this.spans, this.spans, this.padding, 2 * M);
    const both = new Float32Array(2 * M);
    k.download(this.spans, both);
    const { lossSum } = this.encoder.rowLoss(this.spans, 2 * B, T, 1 / (2 * B));
    if (train) {
      k.fill(this.logits, 2 * M, 0);
      k.embeddingBackward(this.logits, this.spans, this.regroup, 2 * M, 1);
      this.backward(this.dx, this.logits, x, M);
      this.encoder.scatterRows(this.dx, M);
    }
    return { lossSum, start: both.subarray(0, M), end: both.subarray(M) };
  }
}
