// The Kernels interface: every operation an encoder needs, forward and backward.
//
// Owns: the contract that the TypeScript reference (tests only), the WebAssembly SIMD
// backend (kernels-wasm/) and the CUDA backend (kernels-cuda/) implement, so that the
// model code in model/ is written once; and DecoderKernels, what a Llama-style decoder
// needs beyond it (the reference and WebAssembly backends implement it, CUDA not yet).
// Never: allocates behind the caller's back, reads buffers on the host, or depends on
// which backend runs it.
//
// Buffers live on the backend ("device memory"): a byte offset into WebAssembly memory,
// a device pointer on CUDA, an offset into an arena in the reference. A `Buf` is an opaque
// number; `view(b, k)` is the same memory starting k elements later. Every length below
// is in elements. Shapes are written row-major, llm.c style: `inp is (B,T,C)`.
//
// Determinism: the same inputs on the same backend give the same bits, always. No kernel
// may reduce in an order that depends on threads or timing.
import type { RopeSpec } from "./rope.js";

export type Buf = number & { readonly __deviceBuffer: unique symbol };

export type DType = "f32" | "i32";

export type GeluApproximation = "tanh" | "erf";

export interface MatmulArgs {
  /** out is (M,N): out = alpha * op(a) · op(b) (+ out when accumulate). */
  out: Buf;
  /** a is (M,K), or (K,M) when transA. */
  a: Buf;
  /** b is (K,N), or (N,K) when transB. */
  b: Buf;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** Add into out instead of overwriting it. */
  accumulate?: boolean;
  alpha?: number;
  /** Batched: `batch` independent products; strides are in elements (default: packed). */
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideOut?: number;
}

/**
 * Dropout on the attention probabilities (BERT's attention_probs_dropout_prob): probability
 * (b, h, i, j) is kept when hash(seed, ((b·H + h)·T + i)·T + j) / 2^32 ≥ p, then scaled by
 * 1/(1-p). The saved probabilities are the undropped ones; backward recomputes the mask.
 */
export interface AttentionDropout {
  p: number;
  seed: number;
}

export interface AttentionShape {
  /** batch */
  b: number;
  /** sequence length */
  t: number;
  /** heads */
  h: number;
  /** head dimension; the model width is h*d */
  d: number;
}

/** A decoder's attention: B, T, H query heads, KV key/value heads (KV divides H), head size D. */
export interface CausalAttentionShape {
  b: number;
  t: number;
  h: number;
  kvHeads: number;
  d: number;
}

/**
 * One new token per sequence attending to a key/value cache: keys and values are
 * (B, KV, capacity, D), of which the first `length` positions (the new token's included) are filled.
 */
export interface CachedAttentionShape {
  b: number;
  h: number;
  kvHeads: number;
  d: number;
  length: number;
  capacity: number;
}

/**
 * Where the rotary kernel turns: `rows` rows of x, `stride` elements apart; in each, the
 * first `heads` heads of size `d`; row r sits at position start + r % seqLen.
 */
export interface RotaryArgs {
  rows: number;
  stride: number;
  heads: number;
  d: number;
  seqLen: number;
  start: number;
}

export interface AdamWArgs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (AdamW): param -= lr * weightDecay * param. 0 for no decay. */
  weightDecay: number;
  /** 1-based step number, for the bias corrections 1 - beta^step. */
  step: number;
}

export interface Kernels {
  /** "reference", "wasm", "wasm-relaxed", "cuda": shown in status and the dashboard. */
  readonly name: string;

  // ---- memory ----------------------------------------------------------------------
  /** A new buffer of `count` elements, zero-filled. */
  alloc(count: number, dtype?: DType): Buf;
  free(buf: Buf): void;
  /** The same memory as `buf`, starting `offset` elements later (no copy, no ownership). */
  view(buf: Buf, offset: number, dtype?: DType): Buf;
  upload(dst: Buf, src: Float32Array | Int32Array): void;
  download(src: Buf, dst: Float32Array | Int32Array): void;

  // ---- elementwise and reductions ----------------------------------------------------
  /** x[0..n) = value */
  fill(x: Buf, n: number, value: number): void;
  /** dst[0..n) = src[0..n) */
  copy(dst: Buf, src: Buf, n: number): void;
  /** x *= s */
  scale(x: Buf, n: number, s: number): void;
  /** out = a + b (out may alias a or b) */
  add(out: Buf, a: Buf, b: Buf, n: number): void;
  /** y += alpha * x */
  axpy(y: Buf, x: Buf, n: number, alpha: number): void;
  /**
   * Sum of squares of x[0..n), in a fixed order, returned to the host as a float64 sum
   * of float32 partial sums over fixed chunks of `chunk` elements (in chunk order), so
   * the gradient norm does not depend on how the vector is sliced into shards.
   * Returns one partial sum per chunk: length ceil(n / chunk).
   */
  sumSquares(x: Buf, n: number, chunk: number): Float64Array;

  // ---- matmul ------------------------------------------------------------------------
  matmul(args: MatmulArgs): void;

  // ---- bias, activations ---------------------------------------------------------------
  /** x is (rows,cols), bias is (cols): x[r,c] += bias[c] */
  addBias(x: Buf, bias: Buf, rows: number, cols: number): void;
  /** dOut is (rows,cols): dBias[c] (+)= sum over r of dOut[r,c], rows summed in order */
  biasBackward(dBias: Buf, dOut: Buf, rows: number, cols: number, accumulate: boolean): void;
  /** out = gelu(inp), elementwise over n (out may alias inp) */
  gelu(out: Buf, inp: Buf, n: number, approximation: GeluApproximation): void;
  /** dInp = gelu'(inp) * dOut (dInp may alias dOut) */
  geluBackward(dInp: Buf, inp: Buf, dOut: Buf, n: number, approximation: GeluApproximation): void;
  /** inp is (rows, 2*hidden) = [gate | up]; out is (rows, hidden) = silu(gate) * up */
  swiglu(out: Buf, inp: Buf, rows: number, hidden: number): void;
  /** dInp is (rows, 2*hidden), dOut is (rows, hidden) */
  swigluBackward(dInp: Buf, inp: Buf, dOut: Buf, rows: number, hidden: number): void;
  /** tanh elementwise (the pooler of a classification head) */
  tanh(out: Buf, inp: Buf, n: number): void;
  /** dInp = (1 - out^2) * dOut, where out = tanh(inp) */
  tanhBackward(dInp: Buf, out: Buf, dOut: Buf, n: number): void;
  /**
   * Inverted dropout with a counter-based mask: element i is kept when
   * hash(seed, counter + i) / 2^32 >= p, and then scaled by 1/(1-p). Backward recomputes
   * the same mask from (seed, counter), so no mask is stored. p = 0 copies.
   */
  dropout(out: Buf, inp: Buf, n: number, p: number, seed: number, counter: number): void;
  dropoutBackward(dInp: Buf, dOut: Buf, n: number, p: number, seed: number, counter: number): void;

  // ---- normalisation -------------------------------------------------------------------
  /**
   * inp, out are (rows,cols); weight, bias are (cols) (bias may be null);
   * mean, rstd are (rows), saved for backward.
   */
  layerNorm(out: Buf, mean: Buf, rstd: Buf, inp: Buf, weight: Buf, bias: Buf | null, rows: number, cols: number, eps: number): void;
  /** dInp is written (overwritten); dWeight, dBias are accumulated into. */
  layerNormBackward(dInp: Buf, dWeight: Buf, dBias: Buf | null, dOut: Buf, inp: Buf, weight: Buf, mean: Buf, rstd: Buf, rows: number, cols: number): void;
  /** out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps); rstd is (rows) */
  rmsNorm(out: Buf, rstd: Buf, inp: Buf, weight: Buf, rows: number, cols: number, eps: number): void;
  /** dInp is written; dWeight is accumulated into. */
  rmsNormBackward(dInp: Buf, dWeight: Buf, dOut: Buf, inp: Buf, weight: Buf, rstd: Buf, rows: number, cols: number): void;

  // ---- attention -----------------------------------------------------------------------
  /**
   * Rotary position embedding applied in place to the q and k parts of qkv.
   * qkv is (B,T,3,H,D): q, k, v for each token; pairs (i, i + D/2) of each head rotate
   * by angle pos * base^(-2i/D). `inverse` rotates back (the backward pass).
   */
  rope(qkv: Buf, shape: AttentionShape, base: number, inverse: boolean): void;
  /** Elements the backend needs to save between attention forward and backward. */
  attentionSavedSize(shape: AttentionShape): number;
  /**
   * Scaled dot-product attention, bidirectional, with a key padding mask.
   * qkv is (B,T,3,H,D); mask is i32 (B,T), 0 for padding (keys at padding are ignored) and
   * otherwise 1, or the number of the token's document in a packed sequence: query i sees
   * key j when mask[j] ≠ 0 and (mask[i] = 0 or mask[j] = mask[i]), a block-diagonal mask
   * that is the plain padding mask when every real token holds 1. out is (B,T,H,D); saved is
   * attentionSavedSize elements. scale is usually 1/sqrt(D).
   */
  attention(out: Buf, saved: Buf, qkv: Buf, mask: Buf, shape: AttentionShape, scale: number, dropout?: AttentionDropout): void;
  /** dQkv is (B,T,3,H,D), written (overwritten). `dropout` must be the forward's. */
  attentionBackward(dQkv: Buf, dOut: Buf, qkv: Buf, out: Buf, saved: Buf, mask: Buf, shape: AttentionShape, scale: number, dropout?: AttentionDropout): void;

  // ---- embeddings and loss -------------------------------------------------------------
  /** table is (V,C), ids is i32 (n): out[i,:] (+)= table[ids[i],:] */
  embedding(out: Buf, table: Buf, ids: Buf, n: number, dim: number, accumulate: boolean): void;
  /** dTable[ids[i],:] += dOut[i,:], for i in order 0..n (deterministic scatter-add) */
  embeddingBackward(dTable: Buf, dOut: Buf, ids: Buf, n: number, dim: number): void;
  /**
   * Masked cross-entropy over the vocabulary, loss and gradient fused.
   * logits, dLogits are (rows,V); labels is i32 (rows), -100 = ignored.
   * losses[r] = -log softmax(logits[r])[labels[r]] (0 where ignored);
   * dLogits[r] = (softmax(logits[r]) - onehot(labels[r])) * gradScale (0 where ignored).
   * dLogits may alias logits.
   */
  crossEntropy(losses: Buf, dLogits: Buf, logits: Buf, labels: Buf, rows: number, vocab: number, gradScale: number): void;

  // ---- optimizer -----------------------------------------------------------------------
  /** One AdamW step over n parameters, in place on param, m, v. */
  adamw(param: Buf, grad: Buf, m: Buf, v: Buf, n: number, args: AdamWArgs): void;
}

/**
 * What a Llama-style decoder needs beyond Kernels. RMSNorm and SwiGLU are Kernels' own.
 *
 * A decoder's fused projection is qkv (B, T, H + 2·KV, D): per token, H query heads, then KV
 * key heads, then KV value heads. Query head i reads key/value head floor(i / (H / KV))
 * (grouped-query attention; KV = H is multi-head attention, KV = 1 multi-query).
 */
export interface DecoderKernels extends Kernels {
  /**
   * Rotary position embedding in place: pairs (i, i + d/2) of each rotated head turn by
   * position · inv[i], inv = ropeInverseFrequencies (model/rope.ts). On qkv, heads = H + KV
   * turns the queries and keys and leaves the values. `inverse` turns back: the rotation's
   * transpose, so it is also the backward.
   */
  rotary(x: Buf, args: RotaryArgs, rope: RopeSpec, inverse: boolean): void;
  /** Elements saved between causalAttention and its backward. */
  causalAttentionSavedSize(shape: CausalAttentionShape): number;
  /**
   * Causal grouped-query attention: query position i sees keys 0..i of its sequence only.
   * qkv is (B,T,H+2KV,D); out is (B,T,H,D). No padding mask: padding sits at the end of a
   * sequence (right padding), where no real token's query reaches it.
   */
  causalAttention(out: Buf, saved: Buf, qkv: Buf, shape: CausalAttentionShape, scale: number): void;
  /** dQkv (B,T,H+2KV,D) written (overwritten); a key/value head's gradient sums its group's. */
  causalAttentionBackward(dQkv: Buf, dOut: Buf, qkv: Buf, saved: Buf, shape: CausalAttentionShape, scale: number): void;
  /**
   * Generation: one new query per sequence against a key/value cache. qkv is (B, H+2KV, D),
   * the new tokens' rotated projections (its queries are read); keys and values (B, KV,
   * capacity, D) hold positions 0..length-1, the new token's last. out is (B,H,D).
   */
  cachedAttention(out: Buf, qkv: Buf, keys: Buf, values: Buf, shape: CachedAttentionShape, scale: number): void;
  /**
   * out (rows, outFeatures) = x (rows, inFeatures) · weightᵀ, weight (outFeatures, inFeatures)
   * as a linear layer's: matmul with transB, for the few rows of a generation step, where
   * transposing and packing the weight would cost more than the product. Its bits may differ
   * from matmul's.
   */
  linear(out: Buf, x: Buf, weight: Buf, rows: number, outFeatures: number, inFeatures: number): void;
}
