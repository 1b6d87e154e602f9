// The encoder models over the Kernels interface: BERT (aLLMA) and NeoBERT (AzNEOBERT)
// with the masked-language-modelling head, each part a forward with its backward.
//
// Owns: the activations arena, the forward and backward passes of one micro-batch, the
// read-back every head shares (gather its rows, cross-entropy, scatter the gradient back),
// and gradient accumulation into one flat gradient buffer laid out like the parameters.
// Never: updates parameters (model/optimizer.ts does) or decides what a batch holds.
//
// Shapes: B batch, T sequence, C hidden, H heads, D = C/H, I intermediate, V vocabulary,
// N = B·T tokens, M = rows a head reads (masked rows for the MLM head).
import { counterHash } from "./counter-hash.js";
import type { ModelConfig } from "./config.js";
import type { AttentionDropout, AttentionShape, Buf, Kernels } from "./kernels.js";
import type { ReferenceKernels } from "./kernels-reference.js";
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
type TokenBatch = Omit<MaskedBatch, "labels">;
/** forwardOnly: no dropout and no backward; dropoutCounter: where this pass's dropout masks start. */
type PassOptions = { forwardOnly?: boolean; dropoutCounter?: number };

/** What every function of one pass reads besides its own activations. */
interface Pass {
  k: Kernels;
  config: ModelConfig;
  N: number;
  C: number;
  I: number;
  V: number;
  shape: AttentionShape;
  mask: Buf; // i32 (N), 1 for a real token
  /** A parameter, and its gradient, by name. */
  w: (name: string) => Buf;
  dw: (name: string) => Buf;
  /** Dropout of this pass (BERT, training only): hidden p, attention p, and the pass's seed. */
  p: number;
  pAttention: number;
  dropSeed: number;
  /** Backward scratch: dA (N, max(3C, 2I)), dB (N, max(C, 2I)), dY (N,C). */
  dA: Buf;
  dB: Buf;
  dY: Buf;
}

interface EmbeddingActs {
  ids: Buf;
  typeIds: Buf;
  posIds: Buf; // i32 (N); token types and positions: bert only
  sum: Buf;
  mean: Buf;
  rstd: Buf; // bert: word + position + token type (N,C) before LN, its mean and rstd (N)
}

interface LayerActs {
  inp: Buf; // (N,C) the layer's input (bert: post-LN stream; neobert: residual stream)
  n1: Buf; // neobert: RMS(inp)
  r1: Buf; // rstd (N)
  mean1: Buf;
  qkv: Buf; // (N,3C) after bias and RoPE
  saved: Buf; // what attention keeps for its backward: attentionSavedSize elements
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

interface MlmActs {
  t1: Buf;
  t2: Buf;
  t3: Buf; // (M,C) bert: dense before GELU, after GELU, after LN (the decoder's input)
  mean: Buf;
  rstd: Buf; // (M) of that LN
  dt3: Buf;
  dt2: Buf; // (M,C) backward: the gradient of t3; of t2, then of t1
}

/** Disjoint counter ranges per dropout site, so no two sites share a mask. */
const site = (pass: Pass, i: number) => i * pass.N * Math.max(pass.C, pass.I);

/** Layer `l`'s attention dropout: its own seed, so its masks never share counters with the others. */
function attentionDropout(pass: Pass, l: number): AttentionDropout | undefined {
  return pass.pAttention > 0 ? { p: pass.pAttention, seed: counterHash(pass.dropSeed ^ 0x5f3759df, l) } : undefined;
}

// ---- embeddings ----------------------------------------------------------------------------

// ids, typeIds, positions (N) → out (N,C) = dropout(LN(word + position + token type))
function bertEmbeddingsForward(out: Buf, em: EmbeddingActs, batch: TokenBatch, pass: Pass): void {
  const { k, N, C, w } = pass;
  k.upload(em.typeIds, batch.tokenTypeIds);
  k.upload(
    em.posIds,
    Int32Array.from({ length: N }, (_, i) => i % batch.seqLen),
  );
  k.embedding(em.sum, w("bert.embeddings.word_embeddings.weight"), em.ids, N, C, false);
  k.embedding(em.sum, w("bert.embeddings.position_embeddings.weight"), em.posIds, N, C, true);
  k.embedding(em.sum, w("bert.embeddings.token_type_embeddings.weight"), em.typeIds, N, C, true);
  k.layerNorm(out, em.mean, em.rstd, em.sum, w("bert.embeddings.LayerNorm.weight"), w("bert.embeddings.LayerNorm.bias"), N, C, pass.config.normEps);
  if (pass.p > 0) k.dropout(out, out, N * C, pass.p, pass.dropSeed, site(pass, 0));
}

// dout (N,C), overwritten → the three tables' and the LN's gradients
function bertEmbeddingsBackward(dout: Buf, em: EmbeddingActs, pass: Pass): void {
  const { k, N, C, w, dw, dY } = pass;
  if (pass.p > 0) k.dropoutBackward(dout, dout, N * C, pass.p, pass.dropSeed, site(pass, 0));
  k.layerNormBackward(
    dY,
    dw("bert.embeddings.LayerNorm.weight"),
    dw("bert.embeddings.LayerNorm.bias"),
    dout,
    em.sum,
    w("bert.embeddings.LayerNorm.weight"),
    em.mean,
    em.rstd,
    N,
    C,
  );
  k.embeddingBackward(dw("bert.embeddings.word_embeddings.weight"), dY, em.ids, N, C);
  k.embeddingBackward(dw("bert.embeddings.position_embeddings.weight"), dY, em.posIds, N, C);
  k.embeddingBackward(dw("bert.embeddings.token_type_embeddings.weight"), dY, em.typeIds, N, C);
}

// ids (N) → out (N,C), rows of encoder.weight (V,C); and dout (N,C) → its gradient
const neobertEmbeddingsForward = (out: Buf, em: EmbeddingActs, _: TokenBatch, pass: Pass) =>
  pass.k.embedding(out, pass.w("encoder.weight"), em.ids, pass.N, pass.C, false);
const neobertEmbeddingsBackward = (dout: Buf, em: EmbeddingActs, pass: Pass) =>
  pass.k.embeddingBackward(pass.dw("encoder.weight"), dout, em.ids, pass.N, pass.C);

// ---- BERT layer: post-LN, GELU FFN, dropout on both residual branches ------------------------

// a.inp (N,C) → out (N,C); fused qkv (3C,C), attention output (C,C), FFN (I,C) and (C,I), two LNs (C)
function bertLayerForward(out: Buf, a: LayerActs, l: number, pass: Pass): void {
  const { k, N, C, I, shape, p, dropSeed } = pass;
  const w = (name: string) => pass.w(`bert.encoder.layer.${l}.${name}`);
  const eps = pass.config.normEps;
  k.matmul({ out: a.qkv, a: a.inp, b: w("attention.self.query.weight"), m: N, n: 3 * C, k: C, transB: true });
  k.addBias(a.qkv, w("attention.self.query.bias"), N, 3 * C);
  k.attention(a.att, a.saved, a.qkv, pass.mask, shape, 1 / Math.sqrt(shape.d), attentionDropout(pass, l));
  k.matmul({ out: a.res1, a: a.att, b: w("attention.output.dense.weight"), m: N, n: C, k: C, transB: true });
  k.addBias(a.res1, w("attention.output.dense.bias"), N, C);
  if (p > 0) k.dropout(a.res1, a.res1, N * C, p, dropSeed, site(pass, 1 + 2 * l));
  k.add(a.res1, a.res1, a.inp, N * C);
  k.layerNorm(a.h1, a.mean1, a.r1, a.res1, w("attention.output.LayerNorm.weight"), w("attention.output.LayerNorm.bias"), N, C, eps);
  k.matmul({ out: a.f1, a: a.h1, b: w("intermediate.dense.weight"), m: N, n: I, k: C, transB: true });
  k.addBias(a.f1, w("intermediate.dense.bias"), N, I);
  k.gelu(a.g, a.f1, N * I, pass.config.gelu);
  k.matmul({ out: a.res2, a: a.g, b: w("output.dense.weight"), m: N, n: C, k: I, transB: true });
  k.addBias(a.res2, w("output.dense.bias"), N, C);
  if (p > 0) k.dropout(a.res2, a.res2, N * C, p, dropSeed, site(pass, 2 + 2 * l));
  k.add(a.res2, a.res2, a.h1, N * C);
  k.layerNorm(out, a.mean2, a.r2, a.res2, w("output.LayerNorm.weight"), w("output.LayerNorm.bias"), N, C, eps);
}

// dx (N,C): in, the gradient of the layer's output; out, of a.inp. Accumulates the layer's gradients.
function bertLayerBackward(dx: Buf, a: LayerActs, l: number, pass: Pass): void {
  const { k, N, C, I, shape, p, dropSeed, dA, dB, dY } = pass;
  const w = (name: string) => pass.w(`bert.encoder.layer.${l}.${name}`);
  const dw = (name: string) => pass.dw(`bert.encoder.layer.${l}.${name}`);
  // out = LN2(res2), res2 = drop(g·W2ᵀ + b2) + h1
  k.layerNormBackward(dY, dw("output.LayerNorm.weight"), dw("output.LayerNorm.bias"), dx, a.res2, w("output.LayerNorm.weight"), a.mean2, a.r2, N, C);
  // dY = d res2 = d h1 (residual) and d(ffn out)
  if (p > 0) k.dropoutBackward(dB, dY, N * C, p, dropSeed, site(pass, 2 + 2 * l));
  const dFfnOut = p > 0 ? dB : dY;
  k.biasBackward(dw("output.dense.bias"), dFfnOut, N, C, true);
  k.matmul({ out: dw("output.dense.weight"), a: dFfnOut, b: a.g, m: C, n: I, k: N, transA: true, accumulate: true });
  k.matmul({ out: dA, a: dFfnOut, b: w("output.dense.weight"), m: N, n: I, k: C });
  k.geluBackward(dA, a.f1, dA, N * I, pass.config.gelu);
  k.biasBackward(dw("intermediate.dense.bias"), dA, N, I, true);
  k.matmul({ out: dw("intermediate.dense.weight"), a: dA, b: a.h1, m: I, n: C, k: N, transA: true, accumulate: true });
  // d h1 = residual part + FFN input part
  k.matmul({ out: dY, a: dA, b: w("intermediate.dense.weight"), m: N, n: C, k: I, accumulate: true });
  // h1 = LN1(res1), res1 = drop(att·Woᵀ + bo) + inp
  k.layerNormBackward(
    dx,
    dw("attention.output.LayerNorm.weight"),
    dw("attention.output.LayerNorm.bias"),
    dY,
    a.res1,
    w("attention.output.LayerNorm.weight"),
    a.mean1,
    a.r1,
    N,
    C,
  );
  if (p > 0) k.dropoutBackward(dB, dx, N * C, p, dropSeed, site(pass, 1 + 2 * l));
  const dAttOut = p > 0 ? dB : dx;
  k.biasBackward(dw("attention.output.dense.bias"), dAttOut, N, C, true);
  k.matmul({ out: dw("attention.output.dense.weight"), a: dAttOut, b: a.att, m: C, n: C, k: N, transA: true, accumulate: true });
  k.matmul({ out: dY, a: dAttOut, b: w("attention.output.dense.weight"), m: N, n: C, k: C });
  k.attentionBackward(dA, dY, a.qkv, a.att, a.saved, pass.mask, shape, 1 / Math.sqrt(shape.d), attentionDropout(pass, l));
  k.biasBackward(dw("attention.self.query.bias"), dA, N, 3 * C, true);
  k.matmul({ out: dw("attention.self.query.weight"), a: dA, b: a.inp, m: 3 * C, n: C, k: N, transA: true, accumulate: true });
  // d inp = residual (dx) + attention input part
  k.matmul({ out: dx, a: dA, b: w("attention.self.query.weight"), m: N, n: C, k: 3 * C, accumulate: true });
}

// ---- NeoBERT layer: pre-RMSNorm, RoPE, SwiGLU FFN, no biases, no dropout ----------------------

// a.inp (N,C) → out (N,C); qkv (3C,C), wo (C,C), w12 (2I,C), w3 (C,I), two RMSNorms (C)
function neobertLayerForward(out: Buf, a: LayerActs, l: number, pass: Pass): void {
  const { k, N, C, I, shape } = pass;
  const w = (name: string) => pass.w(`transformer_encoder.${l}.${name}`);
  const eps = pass.config.normEps;
  k.rmsNorm(a.n1, a.r1, a.inp, w("attention_norm.weight"), N, C, eps);
  k.matmul({ out: a.qkv, a: a.n1, b: w("qkv.weight"), m: N, n: 3 * C, k: C, transB: true });
  k.rope(a.qkv, shape, pass.config.ropeBase, false);
  k.attention(a.att, a.saved, a.qkv, pass.mask, shape, 1 / Math.sqrt(shape.d));
  k.matmul({ out: a.res1, a: a.att, b: w("wo.weight"), m: N, n: C, k: C, transB: true });
  k.add(a.res1, a.res1, a.inp, N * C);
  k.rmsNorm(a.n2, a.r2, a.res1, w("ffn_norm.weight"), N, C, eps);
  k.matmul({ out: a.f1, a: a.n2, b: w("ffn.w12.weight"), m: N, n: 2 * I, k: C, transB: true });
  k.swiglu(a.g, a.f1, N, I);
  k.matmul({ out, a: a.g, b: w("ffn.w3.weight"), m: N, n: C, k: I, transB: true });
  k.add(out, out, a.res1, N * C);
}

// dx (N,C): in, the gradient of the layer's output; out, of a.inp. Accumulates the layer's gradients.
function neobertLayerBackward(dx: Buf, a: LayerActs, l: number, pass: Pass): void {
  const { k, N, C, I, shape, dA, dB, dY } = pass;
  const w = (name: string) => pass.w(`transformer_encoder.${l}.${name}`);
  const dw = (name: string) => pass.dw(`transformer_encoder.${l}.${name}`);
  // out = res1 + swiglu(RMS(res1)·W12ᵀ)·W3ᵀ
  k.matmul({ out: dw("ffn.w3.weight"), a: dx, b: a.g, m: C, n: I, k: N, transA: true, accumulate: true });
  k.matmul({ out: dB, a: dx, b: w("ffn.w3.weight"), m: N, n: I, k: C });
  k.swigluBackward(dA, a.f1, dB, N, I);
  k.matmul({ out: dw("ffn.w12.weight"), a: dA, b: a.n2, m: 2 * I, n: C, k: N, transA: true, accumulate: true });
  k.matmul({ out: dY, a: dA, b: w("ffn.w12.weight"), m: N, n: C, k: 2 * I });
  k.rmsNormBackward(dB, dw("ffn_norm.weight"), dY, a.res1, w("ffn_norm.weight"), a.r2, N, C);
  k.add(dx, dx, dB, N * C); // d res1
  // res1 = inp + attention(RoPE(RMS(inp)·Wqkvᵀ))·Woᵀ
  k.matmul({ out: dw("wo.weight"), a: dx, b: a.att, m: C, n: C, k: N, transA: true, accumulate: true });
  k.matmul({ out: dY, a: dx, b: w("wo.weight"), m: N, n: C, k: C });
  k.attentionBackward(dA, dY, a.qkv, a.att, a.saved, pass.mask, shape, 1 / Math.sqrt(shape.d));
  k.rope(dA, shape, pass.config.ropeBase, true); // the rotation's transpose is its inverse
  k.matmul({ out: dw("qkv.weight"), a: dA, b: a.n1, m: 3 * C, n: C, k: N, transA: true, accumulate: true });
  k.matmul({ out: dY, a: dA, b: w("qkv.weight"), m: N, n: C, k: 3 * C });
  k.rmsNormBackward(dB, dw("attention_norm.weight"), dY, a.inp, w("attention_norm.weight"), a.r1, N, C);
  k.add(dx, dx, dB, N * C); // d inp
}

// ---- MLM head ------------------------------------------------------------------------------

// x (M,C) → logits (M,V). BERT: dense (C,C), GELU, LN, then the decoder tied to the word
// embeddings (V,C) and a bias (V); NeoBERT: the decoder tied to encoder.weight (V,C) alone.
function mlmHeadForward(logits: Buf, x: Buf, h: MlmActs, M: number, pass: Pass): void {
  const { k, C, V, w } = pass;
  const bert = pass.config.architecture === "bert";
  if (bert) {
    k.matmul({ out: h.t1, a: x, b: w("cls.predictions.transform.dense.weight"), m: M, n: C, k: C, transB: true });
    k.addBias(h.t1, w("cls.predictions.transform.dense.bias"), M, C);
    k.gelu(h.t2, h.t1, M * C, pass.config.gelu);
    k.layerNorm(
      h.t3,
      h.mean,
      h.rstd,
      h.t2,
      w("cls.predictions.transform.LayerNorm.weight"),
      w("cls.predictions.transform.LayerNorm.bias"),
      M,
      C,
      pass.config.normEps,
    );
  }
  k.matmul({ out: logits, a: bert ? h.t3 : x, b: w(decoders[pass.config.architecture]), m: M, n: V, k: C, transB: true });
  if (bert) k.addBias(logits, w("cls.predictions.bias"), M, V);
}

// dlogits (M,V) → dx (M,C); accumulates the head's and the decoder's gradients
function mlmHeadBackward(dx: Buf, dlogits: Buf, h: MlmActs, x: Buf, M: number, pass: Pass): void {
  const { k, C, V, w, dw } = pass;
  const bert = pass.config.architecture === "bert";
  const decoder = decoders[pass.config.architecture];
  if (bert) k.biasBackward(dw("cls.predictions.bias"), dlogits, M, V, true);
  k.matmul({ out: dw(decoder), a: dlogits, b: bert ? h.t3 : x, m: V, n: C, k: M, transA: true, accumulate: true });
  k.matmul({ out: bert ? h.dt3 : dx, a: dlogits, b: w(decoder), m: M, n: C, k: V });
  if (!bert) return;
  k.layerNormBackward(
    h.dt2,
    dw("cls.predictions.transform.LayerNorm.weight"),
    dw("cls.predictions.transform.LayerNorm.bias"),
    h.dt3,
    h.t2,
    w("cls.predictions.transform.LayerNorm.weight"),
    h.mean,
    h.rstd,
    M,
    C,
  );
  k.geluBackward(h.dt2, h.t1, h.dt2, M * C, pass.config.gelu);
  k.biasBackward(dw("cls.predictions.transform.dense.bias"), h.dt2, M, C, true);
  k.matmul({ out: dw("cls.predictions.transform.dense.weight"), a: h.dt2, b: x, m: C, n: C, k: M, transA: true, accumulate: true });
  k.matmul({ out: dx, a: h.dt2, b: w("cls.predictions.transform.dense.weight"), m: M, n: C, k: C });
}

/** The MLM decoder: tied to the input embeddings. */
const decoders = { bert: "bert.embeddings.word_embeddings.weight", neobert: "encoder.weight" } as const;

/** Each architecture's passes; an encoder picks its pair once, at construction. */
const architectures = {
  bert: {
    embeddingsForward: bertEmbeddingsForward,
    embeddingsBackward: bertEmbeddingsBackward,
    layerForward: bertLayerForward,
    layerBackward: bertLayerBackward,
  },
  neobert: {
    embeddingsForward: neobertEmbeddingsForward,
    embeddingsBackward: neobertEmbeddingsBackward,
    layerForward: neobertLayerForward,
    layerBackward: neobertLayerBackward,
  },
};

/** The f64 reference (gradient checks) reads its losses at full precision. */
const readsF64 = (k: Kernels): k is ReferenceKernels => "downloadF64" in k;

export class Encoder {
  readonly params: Buf;
  readonly grads: Buf;
  private readonly arch: (typeof architectures)[keyof typeof architectures];
  private readonly maxN: number;
  private readonly em: EmbeddingActs;
  private readonly acts: LayerActs[] = [];
  /** Elements each layer's `saved` holds; it grows with the largest attention shape seen. */
  private savedSize = 0;
  private readonly stream: Buf; // (N,C) neobert: the last layer's output, before the final RMSNorm
  private readonly final: Buf; // (N,C) the encoder output the heads read
  private readonly finalRstd: Buf; // (N)
  private readonly mlm: MlmActs;
  private readonly logits: Buf; // (M,V), then dlogits
  // The head read-back, shared by every head.
  private readonly rows: Buf; // i32 (M) the rows a head reads
  private readonly rowLabels: Buf; // i32 (M)
  private readonly x: Buf; // (M,C) the encoder output at the rows
  private readonly losses: Buf; // (M)
  private readonly dRows: Buf; // (M,C) the MLM head's gradient at its rows
  private readonly dX: Buf; // (N,C) gradient of the stream
  /** The fixed part of every pass: sizes, weights, scratch; `forward` adds the batch's. */
  private pass: Pass;

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
    this.maxN = maxTokens;
    this.arch = architectures[config.architecture];
    this.params = k.alloc(layout.total);
    this.grads = k.alloc(layout.total);
    if (config.architecture === "bert")
      for (let l = 0; l < config.layers; l++)
        for (const part of ["weight", "bias"]) {
          // The fused (3C, C) projection reads query, key and value as one matrix.
          const [q, kk, v] = ["query", "key", "value"].map((n) => entry(layout, `bert.encoder.layer.${l}.attention.self.${n}.${part}`));
          if (kk!.offset !== q!.offset + q!.size || v!.offset !== kk!.offset + kk!.size)
            throw new Error(`layer ${l}: query, key and value ${part}s are not contiguous in the layout`);
        }
    const N = maxTokens;
    const { hidden: C, intermediate: I } = config;
    const f = (n: number) => k.alloc(n);
    const ids = () => k.alloc(N, "i32");
    this.em = { ids: ids(), typeIds: ids(), posIds: ids(), sum: f(N * C), mean: f(N), rstd: f(N) };
    const mask = ids();
    this.rows = ids();
    this.rowLabels = ids();
    this.final = f(N * C);
    this.finalRstd = f(N);
    const ffn = config.architecture === "neobert" ? 2 * I : I;
    for (let l = 0; l < config.layers; l++)
      this.acts.push({
        inp: f(N * C),
        n1: f(N * C),
        r1: f(N),
        mean1: f(N),
        qkv: f(N * 3 * C),
        saved: f(0),
        att: f(N * C),
        res1: f(N * C),
        h1: f(N * C),
        mean2: f(N),
        r2: f(N),
        n2: f(N * C),
        f1: f(N * ffn),
        g: f(N * I),
        res2: f(N * C),
      });
    this.x = f(N * C);
    this.mlm = { t1: f(N * C), t2: f(N * C), t3: f(N * C), mean: f(N), rstd: f(N), dt3: f(N * C), dt2: f(N * C) };
    this.logits = f(N * layout.vocabSize);
    this.losses = f(N);
    const scratch = { dA: f(N * Math.max(3 * C, ffn)), dB: f(N * Math.max(C, ffn)), dY: f(N * C) };
    this.dX = f(N * C);
    this.dRows = f(N * C);
    this.stream = config.architecture === "neobert" ? f(N * C) : this.final;
    const w = (name: string) => k.view(this.params, entry(layout, name).offset);
    const dw = (name: string) => k.view(this.grads, entry(layout, name).offset);
    const shape = { b: 0, t: 0, h: config.heads, d: C / config.heads };
    this.pass = { k, config, N: 0, C, I, V: layout.vocabSize, shape, mask, w, dw, p: 0, pAttention: 0, dropSeed: 0, ...scratch };
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

  /**
   * Forward (and, unless `forwardOnly`, backward accumulating into the gradients) of one
   * micro-batch with the masked-language-modelling head. The loss gradient of each
   * predicted row is scaled by `gradScale`. Returns the sum of the predicted rows' losses
   * and how many there were.
   */
  step(batch: MaskedBatch, gradScale: number, opts: PassOptions = {}): { lossSum: number; count: number; rowLosses: Float32Array } {
    this.forward(batch, opts);
    // Masked rows: the only rows the vocabulary projection sees.
    const rows: number[] = [];
    for (let i = 0; i < batch.batch * batch.seqLen; i++) if (batch.labels[i] !== -100) rows.push(i);
    const M = rows.length;
    if (M === 0) return { lossSum: 0, count: 0, rowLosses: new Float32Array(0) };
    const x = this.gatherRows(
      rows,
      rows.map((r) => batch.labels[r]!),
    );
    mlmHeadForward(this.logits, x, this.mlm, M, this.pass);
    const { lossSum, rowLosses } = this.rowLoss(this.logits, M, this.pass.V, gradScale);
    if (!opts.forwardOnly) {
      mlmHeadBackward(this.dRows, this.logits, this.mlm, x, M, this.pass);
      this.scatterRows(this.dRows, M);
    }
    return { lossSum, count: M, rowLosses };
  }

  /**
   * Embeddings and layers of one micro-batch into the encoder output (N,C) the heads read
   * through `gatherRows`. Dropout (BERT) applies unless `forwardOnly`.
   */
  forward(batch: TokenBatch, opts: PassOptions = {}): void {
    const { kernels: k, config } = this;
    const B = batch.batch;
    const T = batch.seqLen;
    const N = B * T;
    if (N > this.maxN) throw new Error(`micro-batch of ${N} tokens exceeds the ${this.maxN} this model was sized for`);
    if (T > config.maxPositions) throw new Error(`sequence length ${T} exceeds maxPositions ${config.maxPositions}`);
    const dropout = config.architecture === "bert" && !opts.forwardOnly;
    this.pass = {
      ...this.pass,
      N,
      shape: { ...this.pass.shape, b: B, t: T },
      p: dropout ? config.dropout : 0,
      pAttention: dropout ? config.attentionDropout : 0,
      dropSeed: counterHash(this.dropoutSeed, opts.dropoutCounter ?? 0),
    };
    const pass = this.pass;
    const need = k.attentionSavedSize(pass.shape);
    if (need > this.savedSize) {
      for (const a of this.acts) k.free(a.saved);
      for (const a of this.acts) a.saved = k.alloc(need);
      this.savedSize = need;
    }
    k.upload(this.em.ids, batch.inputIds);
    k.upload(pass.mask, batch.attentionMask);
    this.arch.embeddingsForward(this.acts[0]!.inp, this.em, batch, pass);
    for (const [l, a] of this.acts.entries()) this.arch.layerForward(this.acts[l + 1]?.inp ?? this.stream, a, l, pass);
    if (config.architecture === "neobert") k.rmsNorm(this.final, this.finalRstd, this.stream, pass.w("layer_norm.weight"), N, pass.C, config.normEps);
  }

  /** Backward of the last `forward` from the gradient of its output in dX (N,C), accumulating into the gradients. */
  private backward(): void {
    const pass = this.pass;
    const { k, N, C, dB } = pass;
    if (this.config.architecture === "neobert") {
      k.rmsNormBackward(dB, pass.dw("layer_norm.weight"), this.dX, this.stream, pass.w("layer_norm.weight"), this.finalRstd, N, C);
      k.copy(this.dX, dB, N * C);
    }
    for (let l = this.acts.length - 1; l >= 0; l--) this.arch.layerBackward(this.dX, this.acts[l]!, l, pass);
    this.arch.embeddingsBackward(this.dX, this.em, pass);
  }

  // ---- the head read-back: every head gathers its rows, scores them, scatters back ---------

  /** Gathers `rows` of the last forward's output into x (M,C), which it returns, and uploads their labels (M). */
  gatherRows(rows: number[], labels: number[]): Buf {
    const k = this.kernels;
    k.upload(this.rows, Int32Array.from(rows));
    k.upload(this.rowLabels, Int32Array.from(labels));
    k.embedding(this.x, this.final, this.rows, rows.length, this.pass.C, false);
    return this.x;
  }

  /**
   * Cross-entropy of a head's logits (M,L) against the gathered labels; the gradient, each
   * row's scaled by `gradScale`, replaces the logits. Returns each row's loss and their sum.
   */
  rowLoss(logits: Buf, M: number, L: number, gradScale: number): { lossSum: number; rowLosses: Float32Array } {
    const k = this.kernels;
    k.crossEntropy(this.losses, logits, logits, this.rowLabels, M, L, gradScale);
    const rowLosses = new Float32Array(M);
    k.download(this.losses, rowLosses);
    let lossSum = 0;
    for (const v of readsF64(k) ? k.downloadF64(this.losses, M) : rowLosses) lossSum += v;
    return { lossSum, rowLosses };
  }

  /** Scatters a head's gradient dx (M,C) back to its rows of the output's gradient (N,C, zero elsewhere), then runs the backward. */
  scatterRows(dx: Buf, M: number): void {
    const { k, N, C } = this.pass;
    k.fill(this.dX, N * C, 0);
    k.embeddingBackward(this.dX, dx, this.rows, M, C);
    this.backward();
  }
}
