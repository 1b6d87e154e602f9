// The fine-tuning heads. Owns: their parameters, appended to the encoder's layout so one
// gradient norm and one AdamW pass cover both, and their forward and backward.
// Never: reads rows or scores them itself; the encoder's head read-back does (gatherRows,
// rowLoss, scatterRows), the same one the MLM head uses.
//
// Shapes: C hidden, L labels, M rows the head reads (B for sequence tasks: each [CLS]; the
// labelled first pieces of words for token tasks).
import type { ModelConfig } from "./config.js";
import type { Encoder } from "./encoder.js";
import type { Buf, Kernels } from "./kernels.js";
import { entry, extendLayout, type ParamLayout } from "./layout.js";
import type { Task } from "./tasks.js";

/** Sequence tasks pool [CLS] through a dense layer named as Hugging Face names it; token tasks read the rows as they are. */
const poolerOf = (model: ModelConfig, task: Task) =>
  task === "token-classification" ? undefined : model.architecture === "bert" ? "bert.pooler.dense" : "dense";

/**
 * The encoder's layout with the task head appended: for sequence tasks a dense+tanh pooler
 * on [CLS] (BERT's `bert.pooler.dense`; `dense` for NeoBERT), then `classifier` (L,C).
 */
export function taskLayout(base: ParamLayout, model: ModelConfig, task: Task, labels: number): ParamLayout {
  const C = model.hidden;
  const pooler = poolerOf(model, task);
  return extendLayout(base, (add) => {
    if (pooler) {
      add(`${pooler}.weight`, [C, C], "normal");
      add(`${pooler}.bias`, [C], "zeros");
    }
    add("classifier.weight", [labels, C], "normal");
    add("classifier.bias", [labels], "zeros");
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
    this.pre = k.alloc(maxRows * C);
    this.pooled = k.alloc(maxRows * C);
    this.dFeat = k.alloc(maxRows * C);
    this.dx = k.alloc(maxRows * C);
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
