// The Llama-style decoder over DecoderKernels: causal language modelling, forward and
// backward, and generation's key/value cache.
//
// Owns: the decoder's activations, the forward and backward of one micro-batch with the loss
// on every next token (IGNORE_INDEX where there is none: padding, or what a caller leaves
// out), gradient accumulation into one flat buffer laid out like the parameters
// (model/layout.ts's decoderParameterLayout), and the cached step that scores one new token
// per sequence from the keys and values of the earlier ones.
// Never: updates parameters, samples tokens, or decides what a batch holds.
//
// Shapes: B batch, T sequence, C hidden, H query heads, KV key/value heads, D = C/H,
// Q = (H + 2·KV)·D the fused projection's width, I intermediate, V vocabulary, N = B·T.
// A layer: x + attention(RoPE(RMSNorm(x)·Wqkvᵀ))·Woᵀ, then + down(silu(gate)·up) of the RMSNorm
// of that; the logits are RMSNorm(last)·Wᵀ with W the embedding table (tied) or lm_head.
import type { DecoderConfig } from "./config.js";
import type { Buf, CausalAttentionShape, DecoderKernels, Kernels, RotaryArgs } from "./kernels.js";
import type { ReferenceKernels } from "./kernels-reference.js";
import { entry, type ParamLayout } from "./layout.js";
import type { RopeSpec } from "./rope.js";

/** A label that is not scored (Hugging Face's ignore index). */
export const IGNORE_INDEX = -100;

/**
 * One micro-batch, (B, T) row-major. `labels` are aligned with `inputIds`, as Hugging Face's
 * are: position t is trained to predict labels[t + 1] (usually inputIds[t + 1]); the last
 * position predicts nothing. IGNORE_INDEX marks padding. Padding goes at the end of a
 * sequence (right padding): the causal mask then keeps every real token from seeing it.
 */
export interface CausalBatch {
  batch: number;
  seqLen: number;
  inputIds: Int32Array;
  labels: Int32Array;
}

/** Generation's keys and values per layer, (B, KV, capacity, D) each, the first `length` positions filled. */
export interface KvCache {
  readonly batch: number;
  readonly capacity: number;
  length: number;
  readonly keys: Buf[];
  readonly values: Buf[];
  /** The one-token pass's activations: (B, ·) each. */
  readonly scratch: { ids: Buf; x: Buf; n: Buf; rstd: Buf; qkv: Buf; att: Buf; tmp: Buf; f1: Buf; g: Buf; logits: Buf };
}

interface LayerActs {
  inp: Buf; // (N,C) the residual stream into the layer
  n1: Buf; // (N,C) RMSNorm(inp)
  r1: Buf; // (N) its rstd
  qkv: Buf; // (N,Q) after RoPE
  saved: Buf; // causalAttentionSavedSize elements
  att: Buf; // (N,C)
  res1: Buf; // (N,C) inp + attention output
  n2: Buf; // (N,C) RMSNorm(res1)
  r2: Buf; // (N)
  f1: Buf; // (N,2I) [gate | up]
  g: Buf; // (N,I) silu(gate)·up
}

/** Whether a backend has the kernels a decoder needs (the reference and WebAssembly do; CUDA not yet). */
export const hasDecoderKernels = (k: Kernels): k is DecoderKernels => "causalAttention" in k && "rotary" in k && "cachedAttention" in k;

/** The f64 reference (gradient checks) reads its losses at full precision. */
const readsF64 = (k: Kernels): k is ReferenceKernels => "downloadF64" in k;

export class Decoder {
  readonly params: Buf;
  readonly grads: Buf;
  readonly kernels: DecoderKernels;
  private readonly maxN: number;
  private readonly C: number;
  private readonly I: number;
  private readonly V: number;
  private readonly D: number;
  private readonly Q: number;
  private readonly rope: RopeSpec;
  private readonly ids: Buf; // i32 (N)
  private readonly acts: LayerActs[] = [];
  private savedSize = 0;
  private readonly stream: Buf; // (N,C) the last layer's output
  private readonly final: Buf; // (N,C) RMSNorm(stream): what the LM head reads
  private readonly finalRstd: Buf; // (N)
  /** The LM head runs over at most this many rows at a time, so the logits never take (N,V). */
  private readonly headRows: number;
  private readonly logits: Buf; // (headRows, V), then its gradient
  private readonly labels: Buf; // i32 (N) shifted: the label each position is scored on
  private readonly losses: Buf; // (headRows)
  private readonly dX: Buf; // (N,C) gradient of the stream
  private readonly dA: Buf; // (N, max(Q, 2I))
  private readonly dB: Buf; // (N, max(C, I))
  private readonly dY: Buf; // (N,C)
  /** The last forward's shape. */
  private shape: CausalAttentionShape;

  constructor(
    kernels: Kernels,
    readonly config: DecoderConfig,
    readonly layout: ParamLayout,
    /** Most tokens in one micro-batch (B·T). */
    maxTokens: number,
    /** Rows of logits computed at once (the vocabulary is wide: 128256 at Llama 3). */
    headRows = 256,
  ) {
    if (!hasDecoderKernels(kernels)) throw new Error(`the ${kernels.name} backend has no decoder kernels yet: use the wasm or reference backend`);
    const k = kernels;
    this.kernels = k;
    const { hidden: C, intermediate: I, heads: H, kvHeads: KV } = config;
    this.C = C;
    this.I = I;
    this.V = layout.vocabSize;
    this.D = C / H;
    this.Q = (H + 2 * KV) * this.D;
    this.rope = { theta: config.ropeTheta, scaling: config.ropeScaling };
    this.maxN = maxTokens;
    this.headRows = Math.min(headRows, maxTokens);
    // The fused projections read q, k, v (and gate, up) as one matrix each.
    for (let l = 0; l < config.layers; l++)
      for (const names of [
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
        ["mlp.gate_proj", "mlp.up_proj"],
      ]) {
        const parts = names.map((n) => entry(layout, `model.layers.${l}.${n}.weight`));
        for (let i = 1; i < parts.length; i++)
          if (parts[i]!.offset !== parts[i - 1]!.offset + parts[i - 1]!.size)
            throw new Error(`layer ${l}: ${names.join(", ")} are not contiguous in the layout`);
      }
    this.params = k.alloc(layout.total);
    this.grads = k.alloc(layout.total);
    const N = maxTokens;
    const f = (n: number) => k.alloc(n);
    this.ids = k.alloc(N, "i32");
    for (let l = 0; l < config.layers; l++)
      this.acts.push({
        inp: f(N * C),
        n1: f(N * C),
        r1: f(N),
        qkv: f(N * this.Q),
        saved: f(0),
        att: f(N * C),
        res1: f(N * C),
        n2: f(N * C),
        r2: f(N),
        f1: f(N * 2 * I),
        g: f(N * I),
      });
    this.stream = f(N * C);
    this.final = f(N * C);
    this.finalRstd = f(N);
    this.logits = f(this.headRows * this.V);
    this.labels = k.alloc(N, "i32");
    this.losses = f(this.headRows);
    this.dX = f(N * C);
    this.dA = f(N * Math.max(this.Q, 2 * I));
    this.dB = f(N * Math.max(C, I));
    this.dY = f(N * C);
    this.shape = { b: 0, t: 0, h: H, kvHeads: KV, d: this.D };
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

  private w = (name: string) => this.kernels.view(this.params, entry(this.layout, name).offset);
  private dw = (name: string) => this.kernels.view(this.grads, entry(this.layout, name).offset);
  private readonly head = () => (this.config.tieEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");

  /**
   * Forward (and, unless `forwardOnly`, backward accumulating into the gradients) of one
   * micro-batch: the cross-entropy of every position against the next position's label,
   * each scored row's gradient scaled by `gradScale`. Returns the sum of the scored rows'
   * losses and how many there were.
   */
  step(batch: CausalBatch, gradScale: number, opts: { forwardOnly?: boolean } = {}): { lossSum: number; count: number } {
    const k = this.kernels;
    const { C, V } = this;
    const B = batch.batch;
    const T = batch.seqLen;
    const N = B * T;
    this.forward(batch.inputIds, B, T);
    const shifted = new Int32Array(N).fill(IGNORE_INDEX);
    for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) shifted[b * T + t] = batch.labels[b * T + t + 1]!;
    k.upload(this.labels, shifted);
    let lossSum = 0;
    let count = 0;
    // The LM head block by block: logits, the loss and its gradient in place, then the
    // head's gradient and the stream's, so the logits take (headRows, V) at most.
    for (let r0 = 0; r0 < N; r0 += this.headRows) {
      const rows = Math.min(this.headRows, N - r0);
      const scored = shifted.subarray(r0, r0 + rows).filter((x) => x !== IGNORE_INDEX).length;
      const x = k.view(this.final, r0 * C);
      const dx = k.view(this.dX, r0 * C);
      if (scored === 0) {
        k.fill(dx, rows * C, 0);
        continue;
      }
      count += scored;
      k.matmul({ out: this.logits, a: x, b: this.w(this.head()), m: rows, n: V, k: C, transB: true });
      k.crossEntropy(this.losses, this.logits, this.logits, k.view(this.labels, r0), rows, V, gradScale);
      const losses = new Float32Array(rows);
      k.download(this.losses, losses);
      for (const v of readsF64(k) ? k.downloadF64(this.losses, rows) : losses) lossSum += v;
      if (opts.forwardOnly) continue;
      k.matmul({ out: this.dw(this.head()), a: this.logits, b: x, m: V, n: C, k: rows, transA: true, accumulate: true });
      k.matmul({ out: dx, a: this.logits, b: this.w(this.head()), m: rows, n: C, k: V });
    }
    if (!opts.forwardOnly) this.backward();
    return { lossSum, count };
  }

  /** The logits (B·T, V) of every position, forward only: for evaluation and tests. */
  forwardLogits(inputIds: Int32Array, batch: number, seqLen: number): Float32Array {
    const k = this.kernels;
    const N = batch * seqLen;
    this.forward(inputIds, batch, seqLen);
    const out = new Float32Array(N * this.V);
    for (let r0 = 0; r0 < N; r0 += this.headRows) {
      const rows = Math.min(this.headRows, N - r0);
      k.matmul({ out: this.logits, a: k.view(this.final, r0 * this.C), b: this.w(this.head()), m: rows, n: this.V, k: this.C, transB: true });
      k.download(this.logits, out.subarray(r0 * this.V, (r0 + rows) * this.V));
    }
    return out;
  }

  /** Embeddings and layers into `final` (N,C). */
  private forward(inputIds: Int32Array, B: number, T: number): void {
    const k = this.kernels;
    const N = B * T;
    if (N > this.maxN) throw new Error(`micro-batch of ${N} tokens exceeds the ${this.maxN} this decoder was sized for`);
    if (T > this.config.maxPositions) throw new Error(`sequence length ${T} exceeds maxPositions ${this.config.maxPositions}`);
    this.shape = { ...this.shape, b: B, t: T };
    const need = k.causalAttentionSavedSize(this.shape);
    if (need > this.savedSize) {
      for (const a of this.acts) k.free(a.saved);
      for (const a of this.acts) a.saved = k.alloc(need);
      this.savedSize = need;
    }
    k.upload(this.ids, inputIds);
    k.embedding(this.acts[0]!.inp, this.w("model.embed_tokens.weight"), this.ids, N, this.C, false);
    for (const [l, a] of this.acts.entries()) this.layerForward(this.acts[l + 1]?.inp ?? this.stream, a, l, N);
    k.rmsNorm(this.final, this.finalRstd, this.stream, this.w("model.norm.weight"), N, this.C, this.config.normEps);
  }

  private rotary(rows: number, seqLen: number, start: number): RotaryArgs {
    return { rows, stride: this.Q, heads: this.config.heads + this.config.kvHeads, d: this.D, seqLen, start };
  }

  // a.inp (N,C) → out (N,C)
  private layerForward(out: Buf, a: LayerActs, l: number, N: number): void {
    const { kernels: k, C, I, Q, shape } = this;
    const w = (name: string) => this.w(`model.layers.${l}.${name}.weight`);
    const eps = this.config.normEps;
    k.rmsNorm(a.n1, a.r1, a.inp, w("input_layernorm"), N, C, eps);
    k.matmul({ out: a.qkv, a: a.n1, b: w("self_attn.q_proj"), m: N, n: Q, k: C, transB: true }); // q, k, v at once
    k.rotary(a.qkv, this.rotary(N, shape.t, 0), this.rope, false);
    k.causalAttention(a.att, a.saved, a.qkv, shape, 1 / Math.sqrt(this.D));
    k.matmul({ out: a.res1, a: a.att, b: w("self_attn.o_proj"), m: N, n: C, k: C, transB: true });
    k.add(a.res1, a.res1, a.inp, N * C);
    k.rmsNorm(a.n2, a.r2, a.res1, w("post_attention_layernorm"), N, C, eps);
    k.matmul({ out: a.f1, a: a.n2, b: w("mlp.gate_proj"), m: N, n: 2 * I, k: C, transB: true }); // gate and up at once
    k.swiglu(a.g, a.f1, N, I);
    k.matmul({ out, a: a.g, b: w("mlp.down_proj"), m: N, n: C, k: I, transB: true });
    k.add(out, out, a.res1, N * C);
  }

  /** Backward of the last forward from the gradient of `final` in dX, accumulating into the gradients. */
  private backward(): void {
    const { kernels: k, C, dB } = this;
    const N = this.shape.b * this.shape.t;
    k.rmsNormBackward(dB, this.dw("model.norm.weight"), this.dX, this.stream, this.w("model.norm.weight"), this.finalRstd, N, C);
    k.copy(this.dX, dB, N * C);
    for (let l = this.acts.length - 1; l >= 0; l--) this.layerBackward(this.dX, this.acts[l]!, l, N);
    k.embeddingBackward(this.dw("model.embed_tokens.weight"), this.dX, this.ids, N, C);
  }

  // dx (N,C): in, the gradient of the layer's output; out, of a.inp.
  private layerBackward(dx: Buf, a: LayerActs, l: number, N: number): void {
    const { kernels: k, C, I, Q, shape, dA, dB, dY } = this;
    const w = (name: string) => this.w(`model.layers.${l}.${name}.weight`);
    const dw = (name: string) => this.dw(`model.layers.${l}.${name}.weight`);
    // out = res1 + swiglu(RMS(res1)·W12ᵀ)·Wdownᵀ
    k.matmul({ out: dw("mlp.down_proj"), a: dx, b: a.g, m: C, n: I, k: N, transA: true, accumulate: true });
    k.matmul({ out: dB, a: dx, b: w("mlp.down_proj"), m: N, n: I, k: C });
    k.swigluBackward(dA, a.f1, dB, N, I);
    k.matmul({ out: dw("mlp.gate_proj"), a: dA, b: a.n2, m: 2 * I, n: C, k: N, transA: true, accumulate: true });
    k.matmul({ out: dY, a: dA, b: w("mlp.gate_proj"), m: N, n: C, k: 2 * I });
    k.rmsNormBackward(dB, dw("post_attention_layernorm"), dY, a.res1, w("post_attention_layernorm"), a.r2, N, C);
    k.add(dx, dx, dB, N * C); // d res1
    // res1 = inp + attention(RoPE(RMS(inp)·Wqkvᵀ))·Woᵀ
    k.matmul({ out: dw("self_attn.o_proj"), a: dx, b: a.att, m: C, n: C, k: N, transA: true, accumulate: true });
    k.matmul({ out: dY, a: dx, b: w("self_attn.o_proj"), m: N, n: C, k: C });
    k.causalAttentionBackward(dA, dY, a.qkv, a.saved, shape, 1 / Math.sqrt(this.D));
    k.rotary(dA, this.rotary(N, shape.t, 0), this.rope, true); // the rotation's transpose is its inverse
    k.matmul({ out: dw("self_attn.q_proj"), a: dA, b: a.n1, m: Q, n: C, k: N, transA: true, accumulate: true });
    k.matmul({ out: dY, a: dA, b: w("self_attn.q_proj"), m: N, n: C, k: Q });
    k.rmsNormBackward(dB, dw("input_layernorm"), dY, a.inp, w("input_layernorm"), a.r1, N, C);
    k.add(dx, dx, dB, N * C); // d inp
  }

  // ---- generation: the key/value cache -------------------------------------------------------

  /** An empty cache for `batch` sequences of up to `capacity` tokens. */
  newCache(batch: number, capacity: number): KvCache {
    if (capacity > this.config.maxPositions) throw new Error(`a cache of ${capacity} positions exceeds maxPositions ${this.config.maxPositions}`);
    const k = this.kernels;
    const { C, I, V, Q } = this;
    const perLayer = batch * this.config.kvHeads * capacity * this.D;
    const layers = Array.from({ length: this.config.layers }, () => [k.alloc(perLayer), k.alloc(perLayer)] as const);
    const f = (n: number) => k.alloc(batch * n);
    return {
      batch,
      capacity,
      length: 0,
      keys: layers.map(([keys]) => keys),
      values: layers.map(([, values]) => values),
      scratch: { ids: k.alloc(batch, "i32"), x: f(C), n: f(C), rstd: f(1), qkv: f(Q), att: f(C), tmp: f(C), f1: f(2 * I), g: f(I), logits: f(V) },
    };
  }

  freeCache(cache: KvCache): void {
    const k = this.kernels;
    for (const b of [...cache.keys, ...cache.values, ...Object.values(cache.scratch)]) k.free(b);
  }

  /**
   * Fills an empty cache from a prompt of `seqLen` tokens per sequence (no padding) with one
   * full forward, and returns the logits (B, V) of each sequence's last position.
   */
  prefill(cache: KvCache, inputIds: Int32Array, seqLen: number): Float32Array {
    if (cache.length !== 0) throw new Error(`prefill needs an empty cache; this one holds ${cache.length} positions`);
    if (seqLen > cache.capacity) throw new Error(`a prompt of ${seqLen} tokens does not fit a cache of ${cache.capacity}`);
    const k = this.kernels;
    const { D, Q } = this;
    const { heads: H, kvHeads: KV } = this.config;
    const B = cache.batch;
    const logits = this.forwardLogits(inputIds, B, seqLen);
    // Each layer's rotated keys and values, from the token-major qkv into the cache's (B, KV, capacity, D).
    for (const [l, a] of this.acts.entries())
      for (let b = 0; b < B; b++)
        for (let t = 0; t < seqLen; t++)
          for (let j = 0; j < KV; j++) {
            const row = (b * seqLen + t) * Q;
            const slot = ((b * KV + j) * cache.capacity + t) * D;
            k.copy(k.view(cache.keys[l]!, slot), k.view(a.qkv, row + (H + j) * D), D);
            k.copy(k.view(cache.values[l]!, slot), k.view(a.qkv, row + (H + KV + j) * D), D);
          }
    cache.length = seqLen;
    const last = new Float32Array(B * this.V);
    for (let b = 0; b < B; b++) last.set(logits.subarray(((b + 1) * seqLen - 1) * this.V, (b + 1) * seqLen * this.V), b * this.V);
    return last;
  }

  /**
   * One new token per sequence (`ids`, B of them) at position cache.length: its keys and
   * values join the cache, its query attends to every cached position. Returns the logits
   * (B, V), equal to a full forward's at that position.
   */
  decodeStep(cache: KvCache, ids: Int32Array): Float32Array {
    const k = this.kernels;
    const { C, I, V, Q, D } = this;
    const { heads: H, kvHeads: KV, normEps: eps } = this.config;
    const B = cache.batch;
    const pos = cache.length;
    if (ids.length !== B) throw new Error(`decodeStep got ${ids.length} tokens for a cache of ${B} sequences`);
    if (pos >= cache.capacity) throw new Error(`the cache is full (${cache.capacity} positions): start a larger one`);
    const s = cache.scratch;
    k.upload(s.ids, ids);
    k.embedding(s.x, this.w("model.embed_tokens.weight"), s.ids, B, C, false);
    for (let l = 0; l < this.config.layers; l++) {
      const w = (name: string) => this.w(`model.layers.${l}.${name}.weight`);
      k.rmsNorm(s.n, s.rstd, s.x, w("input_layernorm"), B, C, eps);
      k.linear(s.qkv, s.n, w("self_attn.q_proj"), B, Q, C);
      k.rotary(s.qkv, this.rotary(B, 1, pos), this.rope, false);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < KV; j++) {
          const slot = ((b * KV + j) * cache.capacity + pos) * D;
          k.copy(k.view(cache.keys[l]!, slot), k.view(s.qkv, b * Q + (H + j) * D), D);
          k.copy(k.view(cache.values[l]!, slot), k.view(s.qkv, b * Q + (H + KV + j) * D), D);
        }
      k.cachedAttention(
        s.att,
        s.qkv,
        cache.keys[l]!,
        cache.values[l]!,
        { b: B, h: H, kvHeads: KV, d: D, length: pos + 1, capacity: cache.capacity },
        1 / Math.sqrt(D),
      );
      k.linear(s.tmp, s.att, w("self_attn.o_proj"), B, C, C);
      k.add(s.x, s.x, s.tmp, B * C);
      k.rmsNorm(s.n, s.rstd, s.x, w("post_attention_layernorm"), B, C, eps);
      k.linear(s.f1, s.n, w("mlp.gate_proj"), B, 2 * I, C);
      k.swiglu(s.g, s.f1, B, I);
      k.linear(s.tmp, s.g, w("mlp.down_proj"), B, C, I);
      k.add(s.x, s.x, s.tmp, B * C);
    }
    k.rmsNorm(s.n, s.rstd, s.x, this.w("model.norm.weight"), B, C, eps);
    k.linear(s.logits, s.n, this.w(this.head()), B, V, C);
    cache.length = pos + 1;
    const out = new Float32Array(B * V);
    k.download(s.logits, out);
    return out;
  }
}
