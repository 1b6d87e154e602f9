// The reference Kernels: plain TypeScript, simple and obviously right, for tests only.
//
// Owns: the meaning of every kernel, which the WebAssembly and CUDA backends are checked
// against. With precision "f64" its memory holds float64, so finite-difference gradient
// checks run in float64 arithmetic. Its memory is model/arena.ts's, over a JS array.
// Never: optimises anything. Every loop is the textbook formula.
import { dropoutKeeps } from "./counter-hash.js";
import { jsArena, memoryOps } from "./arena.js";
import type { AdamWArgs, AttentionDropout, Buf, CausalAttentionShape, DecoderKernels, GeluApproximation, MatmulArgs } from "./kernels.js";
import { ropeInverseFrequencies } from "./rope.js";

export interface ReferenceKernels extends DecoderKernels {
  readonly precision: "f32" | "f64";
  uploadF64(dst: Buf, src: Float64Array | number[]): void;
  downloadF64(src: Buf, n: number): Float64Array;
}

export function createReferenceKernels({ precision = "f32" }: { precision?: "f32" | "f64" } = {}): ReferenceKernels {
  const arena = jsArena(precision);
  // The arena replaces its views when it grows, so every access reads them afresh.
  const f = (b: Buf, i: number) => arena.f32[b + i]!;
  const set = (b: Buf, i: number, v: number) => (arena.f32[b + i] = v);
  const int = (b: Buf, i: number) => arena.i32[b + i]!;

  const k: ReferenceKernels = {
    ...memoryOps(arena),
    name: "reference",
    precision,
    uploadF64(dst, src) {
      for (let i = 0; i < src.length; i++) set(dst, i, src[i]!);
    },
    downloadF64(src, n) {
      return Float64Array.from({ length: n }, (_, i) => f(src, i));
    },

    scale(x, n, s) {
      for (let i = 0; i < n; i++) set(x, i, f(x, i) * s);
    },
    add(out, a, b, n) {
      for (let i = 0; i < n; i++) set(out, i, f(a, i) + f(b, i));
    },
    axpy(y, x, n, alpha) {
      for (let i = 0; i < n; i++) set(y, i, f(y, i) + alpha * f(x, i));
    },
    sumSquares(x, n, chunk) {
      const out = new Float64Array(Math.ceil(n / chunk));
      for (let i = 0; i < n; i++) out[Math.floor(i / chunk)]! += f(x, i) * f(x, i);
      return out;
    },

    matmul({ out, a, b, m, n, k: kk, transA, transB, accumulate, alpha = 1, batch = 1, strideA, strideB, strideOut }: MatmulArgs) {
      const sa = strideA ?? m * kk,
        sb = strideB ?? kk * n,
        so = strideOut ?? m * n;
      for (let p = 0; p < batch; p++) {
        const A = (a + p * sa) as Buf;
        const B = (b + p * sb) as Buf;
        const O = (out + p * so) as Buf;
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let q = 0; q < kk; q++) s += (transA ? f(A, q * m + i) : f(A, i * kk + q)) * (transB ? f(B, j * kk + q) : f(B, q * n + j));
            set(O, i * n + j, (accumulate ? f(O, i * n + j) : 0) + alpha * s);
          }
      }
    },

    addBias(x, bias, rows, cols) {
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) set(x, r * cols + c, f(x, r * cols + c) + f(bias, c));
    },
    biasBackward(dBias, dOut, rows, cols, accumulate) {
      for (let c = 0; c < cols; c++) {
        let s = accumulate ? f(dBias, c) : 0;
        for (let r = 0; r < rows; r++) s += f(dOut, r * cols + c);
        set(dBias, c, s);
      }
    },
    gelu(out, inp, n, approximation) {
      for (let i = 0; i < n; i++) set(out, i, gelu(f(inp, i), approximation));
    },
    geluBackward(dInp, inp, dOut, n, approximation) {
      for (let i = 0; i < n; i++) set(dInp, i, geluGrad(f(inp, i), approximation) * f(dOut, i));
    },
    swiglu(out, inp, rows, hidden) {
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < hidden; j++) {
          const g = f(inp, r * 2 * hidden + j);
          set(out, r * hidden + j, g * sigmoid(g) * f(inp, r * 2 * hidden + hidden + j));
        }
    },
    swigluBackward(dInp, inp, dOut, rows, hidden) {
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < hidden; j++) {
          const g = f(inp, r * 2 * hidden + j);
          const u = f(inp, r * 2 * hidden + hidden + j);
          const s = sigmoid(g);
          const d = f(dOut, r * hidden + j);
          set(dInp, r * 2 * hidden + j, d * u * s * (1 + g * (1 - s)));
          set(dInp, r * 2 * hidden + hidden + j, d * g * s);
        }
    },
    tanh(out, inp, n) {
      for (let i = 0; i < n; i++) set(out, i, Math.tanh(f(inp, i)));
    },
    tanhBackward(dInp, out, dOut, n) {
      for (let i = 0; i < n; i++) set(dInp, i, (1 - f(out, i) ** 2) * f(dOut, i));
    },
    dropout(out, inp, n, p, seed, counter) {
      for (let i = 0; i < n; i++) set(out, i, p === 0 ? f(inp, i) : dropoutKeeps(seed, counter + i, p) ? f(inp, i) / (1 - p) : 0);
    },
    dropoutBackward(dInp, dOut, n, p, seed, counter) {
      k.dropout(dInp, dOut, n, p, seed, counter);
    },

    layerNorm(out, mean, rstd, inp, weight, bias, rows, cols, eps) {
      for (let r = 0; r < rows; r++) {
        let mu = 0;
        for (let c = 0; c < cols; c++) mu += f(inp, r * cols + c);
        mu /= cols;
        let v = 0;
        for (let c = 0; c < cols; c++) v += (f(inp, r * cols + c) - mu) ** 2;
        const rs = 1 / Math.sqrt(v / cols + eps);
        set(mean, r, mu);
        set(rstd, r, rs);
        for (let c = 0; c < cols; c++) set(out, r * cols + c, (f(inp, r * cols + c) - mu) * rs * f(weight, c) + (bias === null ? 0 : f(bias, c)));
      }
    },
    layerNormBackward(dInp, dWeight, dBias, dOut, inp, weight, mean, rstd, rows, cols) {
      for (let r = 0; r < rows; r++) {
        const mu = f(mean, r);
        const rs = f(rstd, r);
        let meanD = 0;
        let meanDX = 0;
        for (let c = 0; c < cols; c++) {
          const xhat = (f(inp, r * cols + c) - mu) * rs;
          const d = f(dOut, r * cols + c) * f(weight, c);
          meanD += d;
          meanDX += d * xhat;
          set(dWeight, c, f(dWeight, c) + f(dOut, r * cols + c) * xhat);
          if (dBias !== null) set(dBias, c, f(dBias, c) + f(dOut, r * cols + c));
        }
        meanD /= cols;
        meanDX /= cols;
        for (let c = 0; c < cols; c++) {
          const xhat = (f(inp, r * cols + c) - mu) * rs;
          const d = f(dOut, r * cols + c) * f(weight, c);
          set(dInp, r * cols + c, rs * (d - meanD - xhat * meanDX));
        }
      }
    },
    rmsNorm(out, rstd, inp, weight, rows, cols, eps) {
      for (let r = 0; r < rows; r++) {
        let ms = 0;
        for (let c = 0; c < cols; c++) ms += f(inp, r * cols + c) ** 2;
        const rs = 1 / Math.sqrt(ms / cols + eps);
        set(rstd, r, rs);
        for (let c = 0; c < cols; c++) set(out, r * cols + c, f(inp, r * cols + c) * rs * f(weight, c));
      }
    },
    rmsNormBackward(dInp, dWeight, dOut, inp, weight, rstd, rows, cols) {
      for (let r = 0; r < rows; r++) {
        const rs = f(rstd, r);
        let dot = 0;
        for (let c = 0; c < cols; c++) {
          const x = f(inp, r * cols + c);
          dot += f(dOut, r * cols + c) * f(weight, c) * x;
          set(dWeight, c, f(dWeight, c) + f(dOut, r * cols + c) * x * rs);
        }
        for (let c = 0; c < cols; c++) {
          const x = f(inp, r * cols + c);
          set(dInp, r * cols + c, rs * (f(dOut, r * cols + c) * f(weight, c) - (x * rs * rs * dot) / cols));
        }
      }
    },

    rope(qkv, { b, t, h, d }, base, inverse) {
      const half = d / 2;
      for (let bi = 0; bi < b; bi++)
        for (let pos = 0; pos < t; pos++)
          for (const part of [0, 1])
            for (let hi = 0; hi < h; hi++) {
              const at = (((bi * t + pos) * 3 + part) * h + hi) * d;
              for (let i = 0; i < half; i++) {
                const angle = (inverse ? -pos : pos) * Math.pow(base, (-2 * i) / d);
                const x1 = f(qkv, at + i);
                const x2 = f(qkv, at + i + half);
                set(qkv, at + i, x1 * Math.cos(angle) - x2 * Math.sin(angle));
                set(qkv, at + i + half, x1 * Math.sin(angle) + x2 * Math.cos(angle));
              }
            }
    },
    attentionSavedSize: ({ b, t, h }) => b * h * t * t,
    attention(out, saved, qkv, mask, { b, t, h, d }, scale, dropout) {
      const keep = dropoutFactor(dropout);
      const q = (bi: number, i: number, hi: number) => (((bi * t + i) * 3 + 0) * h + hi) * d;
      const kk = (bi: number, j: number, hi: number) => (((bi * t + j) * 3 + 1) * h + hi) * d;
      const v = (bi: number, j: number, hi: number) => (((bi * t + j) * 3 + 2) * h + hi) * d;
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++)
          for (let i = 0; i < t; i++) {
            const probs = (((bi * h + hi) * t + i) * t) as number;
            let max = -Infinity;
            const scores = new Float64Array(t);
            const document = int(mask, bi * t + i);
            for (let j = 0; j < t; j++) {
              const key = int(mask, bi * t + j);
              if (!key || (document !== 0 && key !== document)) {
                scores[j] = -Infinity;
                continue;
              }
              let s = 0;
              for (let c = 0; c < d; c++) s += f(qkv, q(bi, i, hi) + c) * f(qkv, kk(bi, j, hi) + c);
              scores[j] = s * scale;
              max = Math.max(max, scores[j]!);
            }
            let sum = 0;
            for (let j = 0; j < t; j++) sum += scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
            for (let j = 0; j < t; j++) set(saved, probs + j, scores[j] === -Infinity || sum === 0 ? 0 : Math.exp(scores[j]! - max) / sum);
            for (let c = 0; c < d; c++) {
              let o = 0;
              for (let j = 0; j < t; j++) o += f(saved, probs + j) * keep(probs + j) * f(qkv, v(bi, j, hi) + c);
              set(out, ((bi * t + i) * h + hi) * d + c, o);
            }
          }
    },
    attentionBackward(dQkv, dOut, qkv, _out, saved, _mask, { b, t, h, d }, scale, dropout) {
      const keep = dropoutFactor(dropout);
      const at = (bi: number, j: number, part: number, hi: number) => (((bi * t + j) * 3 + part) * h + hi) * d;
      k.fill(dQkv, b * t * 3 * h * d, 0);
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++)
          for (let i = 0; i < t; i++) {
            const probs = ((bi * h + hi) * t + i) * t;
            const dO = ((bi * t + i) * h + hi) * d;
            const dP = new Float64Array(t);
            let rowDot = 0;
            for (let j = 0; j < t; j++) {
              const p = f(saved, probs + j);
              const factor = keep(probs + j);
              let s = 0;
              for (let c = 0; c < d; c++) {
                s += f(dOut, dO + c) * f(qkv, at(bi, j, 2, hi) + c);
                set(dQkv, at(bi, j, 2, hi) + c, f(dQkv, at(bi, j, 2, hi) + c) + p * factor * f(dOut, dO + c)); // dV
              }
              dP[j] = s * factor;
              rowDot += p * dP[j]!;
            }
            for (let j = 0; j < t; j++) {
              const dS = f(saved, probs + j) * (dP[j]! - rowDot) * scale;
              if (dS === 0) continue;
              for (let c = 0; c < d; c++) {
                set(dQkv, at(bi, i, 0, hi) + c, f(dQkv, at(bi, i, 0, hi) + c) + dS * f(qkv, at(bi, j, 1, hi) + c));
                set(dQkv, at(bi, j, 1, hi) + c, f(dQkv, at(bi, j, 1, hi) + c) + dS * f(qkv, at(bi, i, 0, hi) + c));
              }
            }
          }
    },

    // ---- decoder: rotary with positions, causal grouped-query attention, the cached step ----

    rotary(x, { rows, stride, heads, d, seqLen, start }, rope, inverse) {
      const inv = ropeInverseFrequencies(d, rope);
      const half = d / 2;
      for (let r = 0; r < rows; r++) {
        const pos = start + (r % seqLen);
        for (let hi = 0; hi < heads; hi++) {
          const at = r * stride + hi * d;
          for (let i = 0; i < half; i++) {
            const angle = (inverse ? -pos : pos) * inv[i]!;
            const x1 = f(x, at + i);
            const x2 = f(x, at + i + half);
            set(x, at + i, x1 * Math.cos(angle) - x2 * Math.sin(angle));
            set(x, at + i + half, x1 * Math.sin(angle) + x2 * Math.cos(angle));
          }
        }
      }
    },
    causalAttentionSavedSize: ({ b, t, h }) => b * h * t * t,
    causalAttention(out, saved, qkv, shape, scale) {
      const { b, t, h, d } = shape;
      const { q, key, value } = gqaOffsets(shape);
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++)
          for (let i = 0; i < t; i++) {
            const probs = ((bi * h + hi) * t + i) * t;
            // Keys after i are not seen: their probabilities are exactly 0.
            const scores = new Float64Array(i + 1);
            let max = -Infinity;
            for (let j = 0; j <= i; j++) {
              let s = 0;
              for (let c = 0; c < d; c++) s += f(qkv, q(bi, i, hi) + c) * f(qkv, key(bi, j, hi) + c);
              scores[j] = s * scale;
              max = Math.max(max, scores[j]!);
            }
            let sum = 0;
            for (let j = 0; j <= i; j++) sum += Math.exp(scores[j]! - max);
            for (let j = 0; j < t; j++) set(saved, probs + j, j <= i ? Math.exp(scores[j]! - max) / sum : 0);
            for (let c = 0; c < d; c++) {
              let o = 0;
              for (let j = 0; j <= i; j++) o += f(saved, probs + j) * f(qkv, value(bi, j, hi) + c);
              set(out, ((bi * t + i) * h + hi) * d + c, o);
            }
          }
    },
    causalAttentionBackward(dQkv, dOut, qkv, saved, shape, scale) {
      const { b, t, h, kvHeads, d } = shape;
      const { q, key, value } = gqaOffsets(shape);
      const add = (at: number, v: number) => set(dQkv, at, f(dQkv, at) + v);
      k.fill(dQkv, b * t * (h + 2 * kvHeads) * d, 0);
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++)
          for (let i = 0; i < t; i++) {
            const probs = ((bi * h + hi) * t + i) * t;
            const dO = ((bi * t + i) * h + hi) * d;
            const dP = new Float64Array(i + 1);
            let rowDot = 0;
            for (let j = 0; j <= i; j++) {
              const p = f(saved, probs + j);
              let s = 0;
              for (let c = 0; c < d; c++) {
                s += f(dOut, dO + c) * f(qkv, value(bi, j, hi) + c);
                add(value(bi, j, hi) + c, p * f(dOut, dO + c));
              }
              dP[j] = s;
              rowDot += p * s;
            }
            for (let j = 0; j <= i; j++) {
              const dS = f(saved, probs + j) * (dP[j]! - rowDot) * scale;
              for (let c = 0; c < d; c++) {
                add(q(bi, i, hi) + c, dS * f(qkv, key(bi, j, hi) + c));
                add(key(bi, j, hi) + c, dS * f(qkv, q(bi, i, hi) + c));
              }
            }
          }
    },
    linear(out, x, weight, rows, outFeatures, inFeatures) {
      k.matmul({ out, a: x, b: weight, m: rows, n: outFeatures, k: inFeatures, transB: true });
    },
    cachedAttention(out, qkv, keys, values, { b, h, kvHeads, d, length, capacity }, scale) {
      const group = h / kvHeads;
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++) {
          const q = (bi * (h + 2 * kvHeads) + hi) * d;
          const cache = (bi * kvHeads + Math.floor(hi / group)) * capacity * d;
          const scores = new Float64Array(length);
          let max = -Infinity;
          for (let j = 0; j < length; j++) {
            let s = 0;
            for (let c = 0; c < d; c++) s += f(qkv, q + c) * f(keys, cache + j * d + c);
            scores[j] = s * scale;
            max = Math.max(max, scores[j]!);
          }
          let sum = 0;
          for (let j = 0; j < length; j++) sum += Math.exp(scores[j]! - max);
          for (let c = 0; c < d; c++) {
            let o = 0;
            for (let j = 0; j < length; j++) o += (Math.exp(scores[j]! - max) / sum) * f(values, cache + j * d + c);
            set(out, (bi * h + hi) * d + c, o);
          }
        }
    },

    embedding(out, table, ids, n, dim, accumulate) {
      for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) set(out, i * dim + c, (accumulate ? f(out, i * dim + c) : 0) + f(table, int(ids, i) * dim + c));
    },
    embeddingBackward(dTable, dOut, ids, n, dim) {
      for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) set(dTable, int(ids, i) * dim + c, f(dTable, int(ids, i) * dim + c) + f(dOut, i * dim + c));
    },
    crossEntropy(losses, dLogits, logits, labels, rows, vocab, gradScale) {
      for (let r = 0; r < rows; r++) {
        const label = int(labels, r);
        if (label === -100) {
          set(losses, r, 0);
          for (let c = 0; c < vocab; c++) set(dLogits, r * vocab + c, 0);
          continue;
        }
        let max = -Infinity;
        for (let c = 0; c < vocab; c++) max = Math.max(max, f(logits, r * vocab + c));
        let sum = 0;
        for (let c = 0; c < vocab; c++) sum += Math.exp(f(logits, r * vocab + c) - max);
        const lse = max + Math.log(sum);
        set(losses, r, lse - f(logits, r * vocab + label));
        for (let c = 0; c < vocab; c++) set(dLogits, r * vocab + c, (Math.exp(f(logits, r * vocab + c) - lse) - (c === label ? 1 : 0)) * gradScale);
      }
    },

    adamw(param, grad, m, v, n, { lr, beta1, beta2, eps, weightDecay, step }: AdamWArgs) {
      const c1 = 1 - Math.pow(beta1, step);
      const c2 = 1 - Math.pow(beta2, step);
      for (let i = 0; i < n; i++) {
        const g = f(grad, i);
        set(m, i, beta1 * f(m, i) + (1 - beta1) * g);
        set(v, i, beta2 * f(v, i) + (1 - beta2) * g * g);
        const p = f(param, i);
        set(param, i, p - lr * (f(m, i) / c1 / (Math.sqrt(f(v, i) / c2) + eps) + weightDecay * p));
      }
    },
  };
  return k;
}

// ---- scalar functions ----------------------------------------------------------------

/** Where query head hi's query, and its group's key and value, of token (b, i) sit in qkv (B,T,H+2KV,D). */
function gqaOffsets({ t, h, kvHeads, d }: CausalAttentionShape) {
  const heads = h + 2 * kvHeads;
  const group = h / kvHeads;
  const at = (bi: number, i: number, head: number) => ((bi * t + i) * heads + head) * d;
  return {
    q: (bi: number, i: number, hi: number) => at(bi, i, hi),
    key: (bi: number, j: number, hi: number) => at(bi, j, h + Math.floor(hi / group)),
    value: (bi: number, j: number, hi: number) => at(bi, j, h + kvHeads + Math.floor(hi / group)),
  };
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The attention-dropout factor of probability `index`: 1/(1-p) where kept, 0 where dropped. */
function dropoutFactor(dropout: AttentionDropout | undefined): (index: number) => number {
  if (!dropout || dropout.p === 0) return () => 1;
  const { p, seed } = dropout;
  return (index) => (dropoutKeeps(seed, index, p) ? 1 / (1 - p) : 0);
}
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function gelu(x: number, approximation: GeluApproximation): number {
  if (approximation === "erf") return 0.5 * x * (1 + erf(x / Math.SQRT2));
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)));
}

export function geluGrad(x: number, approximation: GeluApproximation): number {
  if (approximation === "erf") return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
  const u = SQRT_2_OVER_PI * (x + 0.044715 * x ** 3);
  const t = Math.tanh(u);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

/** erf to about 1e-15: its Taylor series below 3, a continued fraction for erfc above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 80 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), evaluated from the tail.
  let frac = ax;
  for (let n = 60; n >= 1; n--) frac = ax + n / 2 / frac;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / frac;
  return Math.sign(x) * (1 - erfc);
}
