// The encoder models over the Kernels interface: BERT (aLLMA) and NeoBERT (AzNEOBERT)
// with the masked-language-modelling head, forward and backward written out per layer.
//
// Owns: the activations arena, the forward and backward passes of one micro-batch, and
// gradient accumulation into one flat gradient buffer laid out like the parameters.
// Never: updates parameters (model/optimizer.ts does) or decides what a batch holds.
//
// Shapes: B batch, T sequence, C hidden, H heads, D = C/H, I intermediate, V vocabulary,
// N = B·T tokens, M = masked rows (the only rows that reach the vocabulary projection).
import { counterHash } from "./counter-hash.js";
import type { ModelConfig } from "./config.js";
import type { AttentionDropout, Buf, Kernels } from "./kernels.js";
import { entry, type ParamLayout } from "./layout.js";

/** One micro-batch, every array (B, T) row-major; labels are -100 where nothing is predicted. */
export interface MaskedBatch {
  batch: number;
  seqLen: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  labels: Int32Array;
}

interface LayerActs {
  inp: Buf; // (N,C) the layer's input (bert: post-LN stream; neobert: residual stream)
  n1: Buf; // neobert: RMS(inp)
  r1: Buf; // rstd (N)
  mean1: Buf;
  qkv: Buf; // (N,3C) after bias and RoPE
  saved: Buf;
  att: Buf; // (N,C)
  res1: Buf; // bert: inp + attention output (pre-LN); neobert: inp + attention output
  h1: Buf; // bert: LN1(res1)
  mean2: Buf;
  r2: Buf;
  n2: Buf; // neobert: RMS(res1)
  f1: Buf; // bert: (N,I) pre-GELU; neobert: (N,2I) pre-SwiGLU
  g: Buf; // (N,I) activation
  res2: Buf; // bert: h1 + FFN output (pre-LN2)
}

/** Layer `l`'s attention dropout: its own seed, so its masks never share counters with the others. */
function attentionDropout(p: number, dropSeed: number, l: number): AttentionDropout | undefined {
  return p > 0 ? { p, seed: counterHash(dropSeed ^ 0x5f3759df, l) } : undefined;
}

export class Encoder {
  readonly params: Buf;
  readonly grads: Buf;
  private readonly C: number;
  private readonly H: number;
  private readonly I: number;
  private readonly V: number;
  private readonly maxN: number;
  private readonly acts: LayerActs[] = [];
  private readonly w: (name: string) => Buf;
  private readonly dw: (name: string) => Buf;
  // Embedding and head activations.
  private readonly ids: Buf;
  private readonly typeIds: Buf;
  private readonly posIds: Buf;
  private readonly mask: Buf;
  private readonly emb: Buf;
  private readonly embMean: Buf;
  private readonly embRstd: Buf;
  private readonly final: Buf; // (N,C) the encoder output the head reads
  private readonly finalRstd: Buf;
  private readonly rows: Buf; // i32 (N) masked row indices
  private readonly rowLabels: Buf; // i32 (N)
  private readonly hm: Buf; // (M,C)
  private readonly t1: Buf; // (M,C) head dense pre-GELU
  private readonly t2: Buf; // (M,C) after GELU
  private readonly tMean: Buf;
  private readonly tRstd: Buf;
  private readonly t3: Buf; // (M,C) after LN: the decoder input
  private readonly logits: Buf; // (M,V)
  private readonly losses: Buf; // (M)
  // Backward scratch.
  private readonly dA: Buf; // (N, max(3C, 2I))
  private readonly dB: Buf; // (N, max(C, 2I))
  private readonly dX: Buf; // (N,C) gradient of the stream
  private readonly dY: Buf; // (N,C)
  private readonly dT: Buf; // (M,C)
  private readonly dT2: Buf; // (M,C)
  /** The shape and dropout of the last forward pass, which `backward` retraces. */
  private last = { B: 0, T: 0, p: 0, pAttention: 0, dropSeed: 0 };

  constructor(
    readonly kernels: Kernels,
    readonly config: ModelConfig,
    readonly layout: ParamLayout,
    /** Most tokens in one micro-batch (B·T). */
    maxTokens: number,
    /** Seed of the dropout masks (BERT only; NeoBERT has no dropout). */
    private readonly dropoutSeed = 0,
  ) {
    const k = kernels;
    this.C = config.hidden;
    this.H = config.heads;
    this.I = config.intermediate;
    this.V = layout.vocabSize;
    this.maxN = maxTokens;
    this.params = k.alloc(layout.total);
    this.grads = k.alloc(layout.total);
    this.w = (name) => k.view(this.params, entry(layout, name).offset);
    this.dw = (name) => k.view(this.grads, entry(layout, name).offset);
    if (config.architecture === "bert")
      for (let l = 0; l < config.layers; l++)
        for (const part of ["weight", "bias"]) {
          // The fused (3C, C) projection reads query, key and value as one matrix.
          const [q, kk, v] = ["query", "key", "value"].map((n) => entry(layout, `bert.encoder.layer.${l}.attention.self.${n}.${part}`));
          if (kk!.offset !== q!.offset + q!.size || v!.offset !== kk!.offset + kk!.size) throw new Error(`layer ${l}: query, key and value ${part}s are not contiguous in the layout`);
        }
    const N = maxTokens;
    const { C, I } = this;
    const f = (n: number) => k.alloc(n);
    this.ids = k.alloc(N, "i32");
    this.typeIds = k.alloc(N, "i32");
    this.posIds = k.alloc(N, "i32");
    this.mask = k.alloc(N, "i32");
    this.rows = k.alloc(N, "i32");
    this.rowLabels = k.alloc(N, "i32");
    this.emb = f(N * C);
    this.embMean = f(N);
    this.embRstd = f(N);
    this.final = f(N * C);
    this.finalRstd = f(N);
    const ffn = config.architecture === "neobert" ? 2 * I : I;
    for (let l = 0; l < config.layers; l++)
      this.acts.push({
        inp: f(N * C), n1: f(N * C), r1: f(N), mean1: f(N), qkv: f(N * 3 * C), saved: 0 as Buf, att: f(N * C),
        res1: f(N * C), h1: f(N * C), mean2: f(N), r2: f(N), n2: f(N * C), f1: f(N * ffn), g: f(N * I), res2: f(N * C),
      });
    this.hm = f(N * C);
    this.t1 = f(N * C);
    this.t2 = f(N * C);
    this.tMean = f(N);
    this.tRstd = f(N);
    this.t3 = f(N * C);
    this.logits = f(N * this.V);
    this.losses = f(N);
    this.dA = f(N * Math.max(3 * C, ffn));
    this.dB = f(N * Math.max(C, ffn));
    this.dX = f(N * C);
    this.dY = f(N * C);
    this.dT = f(N * C);
    this.dT2 = f(N * C);
  }

  setParameters(values: Float32Array): void {
    this.kernels.upload(this.params, values);
  }

  zeroGrads(): void {
    this.kernels.fill(this.grads, this.layout.total, 0);
  }

  downloadGrads(): Float32Array {
    const out = new Float32Array(this.layout.total);
    this.kernels.download(this.grads, out);
    return out;
  }

  private saved(l: number, B: number, T: number): Buf {
    const a = this.acts[l]!;
    const need = this.kernels.attentionSavedSize({ b: B, t: T, h: this.H, d: this.C / this.H });
    if (!a.saved || (a as LayerActs & { savedSize?: number }).savedSize! < need) {
      if (a.saved) this.kernels.free(a.saved);
      a.saved = this.kernels.alloc(need);
      (a as LayerActs & { savedSize?: number }).savedSize = need;
    }
    return a.saved;
  }

  /** The gradient of the encoder output (N,C) that `backward` reads: a task head writes it. */
  get dFinal(): Buf {
    return this.dX;
  }

  /**
   * Forward (and, unless `forwardOnly`, backward accumulating into the gradients) of one
   * micro-batch with the masked-language-modelling head. The loss gradient of each
   * predicted row is scaled by `gradScale`. Returns the sum of the predicted rows' losses
   * and how many there were.
   */
  step(batch: MaskedBatch, gradScale: number, opts: { forwardOnly?: boolean; dropoutCounter?: number } = {}): { lossSum: number; count: number; rowLosses: Float32Array } {
    const k = this.kernels;
    const { C, V } = this;
    const N = batch.batch * batch.seqLen;
    const bert = this.config.architecture === "bert";
    const eps = this.config.normEps;
    const train = !opts.forwardOnly;
    this.forward(batch, opts);

    // Masked rows: the only rows the vocabulary projection sees.
    const rows: number[] = [];
    for (let i = 0; i < N; i++) if (batch.labels[i] !== -100) rows.push(i);
    const M = rows.length;
    if (M === 0) return { lossSum: 0, count: 0, rowLosses: new Float32Array(0) };
    k.upload(this.rows, Int32Array.from(rows));
    k.upload(this.rowLabels, Int32Array.from(rows, (r) => batch.labels[r]!));

    // ---- MLM head over the masked rows ----
    const decoder = bert ? this.w("bert.embeddings.word_embeddings.weight") : this.w("encoder.weight");
    k.embedding(this.hm, this.final, this.rows, M, C, false);
    let headOut: Buf = this.hm;
    if (bert) {
      k.matmul({ out: this.t1, a: this.hm, b: this.w("cls.predictions.transform.dense.weight"), m: M, n: C, k: C, transB: true });
      k.addBias(this.t1, this.w("cls.predictions.transform.dense.bias"), M, C);
      k.gelu(this.t2, this.t1, M * C, this.config.gelu);
      k.layerNorm(this.t3, this.tMean, this.tRstd, this.t2, this.w("cls.predictions.transform.LayerNorm.weight"), this.w("cls.predictions.transform.LayerNorm.bias"), M, C, eps);
      headOut = this.t3;
    }
    k.matmul({ out: this.logits, a: headOut, b: decoder, m: M, n: V, k: C, transB: true });
    if (bert) k.addBias(this.logits, this.w("cls.predictions.bias"), M, V);
    k.crossEntropy(this.losses, this.logits, this.logits, this.rowLabels, M, V, gradScale);
    const rowLosses = new Float32Array(M);
    k.download(this.losses, rowLosses);
    // The f64 reference (gradient checks) reads its losses at full precision.
    const exact = (k as Partial<{ downloadF64(b: Buf, n: number): Float64Array }>).downloadF64?.(this.losses, M) ?? rowLosses;
    let lossSum = 0;
    for (const v of exact) lossSum += v;
    if (!train) return { lossSum, count: M, rowLosses };

    // ---- MLM head backward ----  (dLogits sit in `logits` now)
    const dDecoder = bert ? this.dw("bert.embeddings.word_embeddings.weight") : this.dw("encoder.weight");
    if (bert) k.biasBackward(this.dw("cls.predictions.bias"), this.logits, M, V, true);
    k.matmul({ out: dDecoder, a: this.logits, b: headOut, m: V, n: C, k: M, transA: true, accumulate: true });
    k.matmul({ out: this.dT, a: this.logits, b: decoder, m: M, n: C, k: V });
    if (bert) {
      k.layerNormBackward(this.dT2, this.dw("cls.predictions.transform.LayerNorm.weight"), this.dw("cls.predictions.transform.LayerNorm.bias"), this.dT, this.t2, this.w("cls.predictions.transform.LayerNorm.weight"), this.tMean, this.tRstd, M, C);
      k.geluBackward(this.dT2, this.t1, this.dT2, M * C, this.config.gelu);
      k.biasBackward(this.dw("cls.predictions.transform.dense.bias"), this.dT2, M, C, true);
      k.matmul({ out: this.dw("cls.predictions.transform.dense.weight"), a: this.dT2, b: this.hm, m: C, n: C, k: M, transA: true, accumulate: true });
      k.matmul({ out: this.dT, a: this.dT2, b: this.w("cls.predictions.transform.dense.weight"), m: M, n: C, k: C });
    }
    // Scatter the head's gradient back to the masked rows of the encoder output.
    k.fill(this.dX, N * C, 0);
    k.embeddingBackward(this.dX, this.dT, this.rows, M, C);
    this.backward();
    return { lossSum, count: M, rowLosses };
  }

  /**
   * Embeddings and layers of one micro-batch: returns the encoder output (N,C), the rows a
   * task head reads. Dropout (BERT) applies unless `forwardOnly`.
   */
  forward(batch: Omit<MaskedBatch, "labels">, opts: { forwardOnly?: boolean; dropoutCounter?: number } = {}): Buf {
    const k = this.kernels;
    const { C, H, I } = this;
    const B = batch.batch;
    const T = batch.seqLen;
    const N = B * T;
    if (N > this.maxN) throw new Error(`micro-batch of ${N} tokens exceeds the ${this.maxN} this model was sized for`);
    if (T > this.config.maxPositions) throw new Error(`sequence length ${T} exceeds maxPositions ${this.config.maxPositions}`);
    const bert = this.config.architecture === "bert";
    const shape = { b: B, t: T, h: H, d: C / H };
    const scale = 1 / Math.sqrt(C / H);
    const eps = this.config.normEps;
    const train = !opts.forwardOnly;
    const p = bert && train ? this.config.dropout : 0;
    const pAttention = bert && train ? this.config.attentionDropout : 0;
    const dropSeed = counterHash(this.dropoutSeed, opts.dropoutCounter ?? 0);
    this.last = { B, T, p, pAttention, dropSeed };
    const site = (i: number) => i * N * Math.max(C, I); // disjoint counter ranges per dropout site
    k.upload(this.ids, batch.inputIds);
    k.upload(this.mask, batch.attentionMask);

    // ---- embeddings ----
    let x: Buf;
    if (bert) {
      k.upload(this.typeIds, batch.tokenTypeIds);
      k.upload(this.posIds, Int32Array.from({ length: N }, (_, i) => i % T));
      k.embedding(this.emb, this.w("bert.embeddings.word_embeddings.weight"), this.ids, N, C, false);
      k.embedding(this.emb, this.w("bert.embeddings.position_embeddings.weight"), this.posIds, N, C, true);
      k.embedding(this.emb, this.w("bert.embeddings.token_type_embeddings.weight"), this.typeIds, N, C, true);
      x = this.acts[0]!.inp;
      k.layerNorm(x, this.embMean, this.embRstd, this.emb, this.w("bert.embeddings.LayerNorm.weight"), this.w("bert.embeddings.LayerNorm.bias"), N, C, eps);
      if (p > 0) k.dropout(x, x, N * C, p, dropSeed, site(0));
    } else {
      x = this.acts[0]!.inp;
      k.embedding(x, this.w("encoder.weight"), this.ids, N, C, false);
    }

    // ---- layers ----
    for (let l = 0; l < this.config.layers; l++) {
      const a = this.acts[l]!;
      const next = l + 1 < this.config.layers ? this.acts[l + 1]!.inp : this.final;
      const saved = this.saved(l, B, T);
      if (bert) {
        const P = `bert.encoder.layer.${l}`;
        k.matmul({ out: a.qkv, a: a.inp, b: this.w(`${P}.attention.self.query.weight`), m: N, n: 3 * C, k: C, transB: true });
        k.addBias(a.qkv, this.w(`${P}.attention.self.query.bias`), N, 3 * C);
        k.attention(a.att, saved, a.qkv, this.mask, shape, scale, attentionDropout(pAttention, dropSeed, l));
        k.matmul({ out: a.res1, a: a.att, b: this.w(`${P}.attention.output.dense.weight`), m: N, n: C, k: C, transB: true });
        k.addBias(a.res1, this.w(`${P}.attention.output.dense.bias`), N, C);
        if (p > 0) k.dropout(a.res1, a.res1, N * C, p, dropSeed, site(1 + 2 * l));
        k.add(a.res1, a.res1, a.inp, N * C);
        k.layerNorm(a.h1, a.mean1, a.r1, a.res1, this.w(`${P}.attention.output.LayerNorm.weight`), this.w(`${P}.attention.output.LayerNorm.bias`), N, C, eps);
        k.matmul({ out: a.f1, a: a.h1, b: this.w(`${P}.intermediate.dense.weight`), m: N, n: I, k: C, transB: true });
        k.addBias(a.f1, this.w(`${P}.intermediate.dense.bias`), N, I);
        k.gelu(a.g, a.f1, N * I, this.config.gelu);
        k.matmul({ out: a.res2, a: a.g, b: this.w(`${P}.output.dense.weight`), m: N, n: C, k: I, transB: true });
        k.addBias(a.res2, this.w(`${P}.output.dense.bias`), N, C);
        if (p > 0) k.dropout(a.res2, a.res2, N * C, p, dropSeed, site(2 + 2 * l));
        k.add(a.res2, a.res2, a.h1, N * C);
        k.layerNorm(next, a.mean2, a.r2, a.res2, this.w(`${P}.output.LayerNorm.weight`), this.w(`${P}.output.LayerNorm.bias`), N, C, eps);
      } else {
        const P = `transformer_encoder.${l}`;
        k.rmsNorm(a.n1, a.r1, a.inp, this.w(`${P}.attention_norm.weight`), N, C, eps);
        k.matmul({ out: a.qkv, a: a.n1, b: this.w(`${P}.qkv.weight`), m: N, n: 3 * C, k: C, transB: true });
        k.rope(a.qkv, shape, this.config.ropeBase, false);
        k.attention(a.att, saved, a.qkv, this.mask, shape, scale);
        k.matmul({ out: a.res1, a: a.att, b: this.w(`${P}.wo.weight`), m: N, n: C, k: C, transB: true });
        k.add(a.res1, a.res1, a.inp, N * C);
        k.rmsNorm(a.n2, a.r2, a.res1, this.w(`${P}.ffn_norm.weight`), N, C, eps);
        k.matmul({ out: a.f1, a: a.n2, b: this.w(`${P}.ffn.w12.weight`), m: N, n: 2 * I, k: C, transB: true });
        k.swiglu(a.g, a.f1, N, I);
        k.matmul({ out: next === this.final ? this.dY : next, a: a.g, b: this.w(`${P}.ffn.w3.weight`), m: N, n: C, k: I, transB: true });
        k.add(next === this.final ? this.dY : next, next === this.final ? this.dY : next, a.res1, N * C);
      }
    }
    // NeoBERT: a final RMSNorm; the stream of the last layer was left in dY.
    if (!bert) k.rmsNorm(this.final, this.finalRstd, this.dY, this.w("layer_norm.weight"), N, C, eps);
    return this.final;
  }

  /**
   * Backward of the last `forward`, from the gradient of the encoder output in `dFinal`
   * (N,C), accumulating into the gradients. Overwrites `dFinal`.
   */
  backward(): void {
    const k = this.kernels;
    const { C, H, I } = this;
    const { B, T, p, pAttention, dropSeed } = this.last;
    const N = B * T;
    const bert = this.config.architecture === "bert";
    const shape = { b: B, t: T, h: H, d: C / H };
    const scale = 1 / Math.sqrt(C / H);
    const site = (i: number) => i * N * Math.max(C, I);
    const stream = this.dY; // neobert: what fed the final norm
    if (!bert) {
      k.rmsNormBackward(this.dB, this.dw("layer_norm.weight"), this.dX, stream, this.w("layer_norm.weight"), this.finalRstd, N, C);
      k.copy(this.dX, this.dB, N * C);
    }

    for (let l = this.config.layers - 1; l >= 0; l--) {
      const a = this.acts[l]!;
      const saved = this.saved(l, B, T);
      if (bert) {
        const P = `bert.encoder.layer.${l}`;
        // x_next = LN2(res2), res2 = drop(g·W2ᵀ + b2) + h1
        k.layerNormBackward(this.dY, this.dw(`${P}.output.LayerNorm.weight`), this.dw(`${P}.output.LayerNorm.bias`), this.dX, a.res2, this.w(`${P}.output.LayerNorm.weight`), a.mean2, a.r2, N, C);
        // dY = d res2 = d h1 (residual) and d(ffn out)
        if (p > 0) k.dropoutBackward(this.dB, this.dY, N * C, p, dropSeed, site(2 + 2 * l));
        const dFfnOut = p > 0 ? this.dB : this.dY;
        k.biasBackward(this.dw(`${P}.output.dense.bias`), dFfnOut, N, C, true);
        k.matmul({ out: this.dw(`${P}.output.dense.weight`), a: dFfnOut, b: a.g, m: C, n: I, k: N, transA: true, accumulate: true });
        k.matmul({ out: this.dA, a: dFfnOut, b: this.w(`${P}.output.dense.weight`), m: N, n: I, k: C });
        k.geluBackward(this.dA, a.f1, this.dA, N * I, this.config.gelu);
        k.biasBackward(this.dw(`${P}.intermediate.dense.bias`), this.dA, N, I, true);
        k.matmul({ out: this.dw(`${P}.intermediate.dense.weight`), a: this.dA, b: a.h1, m: I, n: C, k: N, transA: true, accumulate: true });
        // d h1 = residual part + FFN input part
        k.matmul({ out: this.dY, a: this.dA, b: this.w(`${P}.intermediate.dense.weight`), m: N, n: C, k: I, accumulate: true });
        // h1 = LN1(res1), res1 = drop(att·Woᵀ + bo) + inp
        k.layerNormBackward(this.dX, this.dw(`${P}.attention.output.LayerNorm.weight`), this.dw(`${P}.attention.output.LayerNorm.bias`), this.dY, a.res1, this.w(`${P}.attention.output.LayerNorm.weight`), a.mean1, a.r1, N, C);
        if (p > 0) k.dropoutBackward(this.dB, this.dX, N * C, p, dropSeed, site(1 + 2 * l));
        const dAttOut = p > 0 ? this.dB : this.dX;
        k.biasBackward(this.dw(`${P}.attention.output.dense.bias`), dAttOut, N, C, true);
        k.matmul({ out: this.dw(`${P}.attention.output.dense.weight`), a: dAttOut, b: a.att, m: C, n: C, k: N, transA: true, accumulate: true });
        k.matmul({ out: this.dY, a: dAttOut, b: this.w(`${P}.attention.output.dense.weight`), m: N, n: C, k: C });
        k.attentionBackward(this.dA, this.dY, a.qkv, a.att, saved, this.mask, shape, scale, attentionDropout(pAttention, dropSeed, l));
        k.biasBackward(this.dw(`${P}.attention.self.query.bias`), this.dA, N, 3 * C, true);
        k.matmul({ out: this.dw(`${P}.attention.self.query.weight`), a: this.dA, b: a.inp, m: 3 * C, n: C, k: N, transA: true, accumulate: true });
        // d inp = residual (dX) + attention input part
        k.matmul({ out: this.dX, a: this.dA, b: this.w(`${P}.attention.self.query.weight`), m: N, n: C, k: 3 * C, accumulate: true });
      } else {
        const P = `transformer_encoder.${l}`;
        // out = res1 + swiglu(RMS(res1)·W12ᵀ)·W3ᵀ ; dX is d out
        k.matmul({ out: this.dw(`${P}.ffn.w3.weight`), a: this.dX, b: a.g, m: C, n: I, k: N, transA: true, accumulate: true });
        k.matmul({ out: this.dB, a: this.dX, b: this.w(`${P}.ffn.w3.weight`), m: N, n: I, k: C });
        k.swigluBackward(this.dA, a.f1, this.dB, N, I);
        k.matmul({ out: this.dw(`${P}.ffn.w12.weight`), a: this.dA, b: a.n2, m: 2 * I, n: C, k: N, transA: true, accumulate: true });
        k.matmul({ out: this.dY, a: this.dA, b: this.w(`${P}.ffn.w12.weight`), m: N, n: C, k: 2 * I });
        k.rmsNormBackward(this.dB, this.dw(`${P}.ffn_norm.weight`), this.dY, a.res1, this.w(`${P}.ffn_norm.weight`), a.r2, N, C);
        k.add(this.dX, this.dX, this.dB, N * C); // d res1
        // res1 = inp + attention(RoPE(RMS(inp)·Wqkvᵀ))·Woᵀ
        k.matmul({ out: this.dw(`${P}.wo.weight`), a: this.dX, b: a.att, m: C, n: C, k: N, transA: true, accumulate: true });
        k.matmul({ out: this.dY, a: this.dX, b: this.w(`${P}.wo.weight`), m: N, n: C, k: C });
        k.attentionBackward(this.dA, this.dY, a.qkv, a.att, saved, this.mask, shape, scale);
        k.rope(this.dA, shape, this.config.ropeBase, true); // the rotation's transpose is its inverse
        k.matmul({ out: this.dw(`${P}.qkv.weight`), a: this.dA, b: a.n1, m: 3 * C, n: C, k: N, transA: true, accumulate: true });
        k.matmul({ out: this.dY, a: this.dA, b: this.w(`${P}.qkv.weight`), m: N, n: C, k: 3 * C });
        k.rmsNormBackward(this.dB, this.dw(`${P}.attention_norm.weight`), this.dY, a.inp, this.w(`${P}.attention_norm.weight`), a.r1, N, C);
        k.add(this.dX, this.dX, this.dB, N * C); // d inp
      }
    }

    // ---- embeddings backward ----
    if (bert) {
      if (p > 0) k.dropoutBackward(this.dX, this.dX, N * C, p, dropSeed, site(0));
      k.layerNormBackward(this.dY, this.dw("bert.embeddings.LayerNorm.weight"), this.dw("bert.embeddings.LayerNorm.bias"), this.dX, this.emb, this.w("bert.embeddings.LayerNorm.weight"), this.embMean, this.embRstd, N, C);
      k.embeddingBackward(this.dw("bert.embeddings.word_embeddings.weight"), this.dY, this.ids, N, C);
      k.embeddingBackward(this.dw("bert.embeddings.position_embeddings.weight"), this.dY, this.posIds, N, C);
      k.embeddingBackward(this.dw("bert.embeddings.token_type_embeddings.weight"), this.dY, this.typeIds, N, C);
    } else {
      k.embeddingBackward(this.dw("encoder.weight"), this.dX, this.ids, N, C);
    }
  }
}
