// The CUDA backend's checks against the reference, as a plain module: what scripts/gpu-check.sh
// runs on a GPU (through dist/bench/gpu-check.js, with no test framework there) and what the
// emulation test runs here at the small size, so the check itself is known to work before a
// GPU is lent.
//
// Owns: the cases (every kernel, on shapes that are not multiples of the kernels' blocks), the
// tolerance of each, and a bit-for-bit repeatability probe.
// Never: asserts or throws on a mismatch: it returns each case's worst error and tolerance,
// and the caller decides (the test expects all to pass; the GPU check writes them down).
import { createHash } from "node:crypto";
import { bitsEqual, get, put, randomsFrom, worstError } from "../model/kernel-probes.js";
import type { AttentionShape, Kernels } from "../model/kernels.js";

export interface CheckResult {
  name: string;
  /** Largest error relative to max(1, |expected|), or 0/1 for bit-for-bit cases. */
  worst: number;
  tolerance: number;
  ok: boolean;
}

/** "small": quick enough for the CPU emulation; "gpu": the shapes of a real model too. */
export type CheckSize = "small" | "gpu";

/**
 * Runs every kernel on `k` and on the reference `r` and compares. `matmulTolerance` depends on
 * the matmul path: 1e-5 for fp32 (own GEMM, cuBLASLt fp32), looser for TF32 (10-bit mantissas).
 */
export function checkKernels(
  k: Kernels,
  r: Kernels,
  { size = "small", matmulTolerance = 1e-5, matmulOnly = false }: { size?: CheckSize; matmulTolerance?: number; matmulOnly?: boolean } = {},
): CheckResult[] {
  const results: CheckResult[] = [];
  const compare = (name: string, run: (kk: Kernels) => Float32Array[], tolerance: number) => {
    const [got, want] = [run(k), run(r)];
    let worst = 0;
    got.forEach((g, i) => {
      worst = Math.max(worst, tolerance === 0 ? (bitsEqual(g, want[i]!) ? 0 : 1) : worstError(g, want[i]!));
    });
    results.push({ name, worst, tolerance, ok: tolerance === 0 ? worst === 0 : worst < tolerance });
  };

  const matmulShapes: [number, number, number][] =
    size === "small"
      ? [
          [13, 17, 33],
          [65, 70, 17],
        ]
      : [
          [13, 17, 33],
          [65, 70, 17],
          [130, 257, 200],
          [256, 384, 320],
        ];
  for (const [m, n, kk] of matmulShapes)
    for (const [transA, transB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      const A = randomsFrom(2 * m * kk, m),
        B = randomsFrom(2 * kk * n, n),
        C = randomsFrom(2 * m * n, kk);
      compare(
        `matmul ${m}x${n}x${kk}${transA ? " Aᵀ" : ""}${transB ? " Bᵀ" : ""}, batch 2, accumulate`,
        (x) => {
          const out = put(x, C);
          x.matmul({ out, a: put(x, A), b: put(x, B), m, n, k: kk, transA, transB, accumulate: true, alpha: 0.5, batch: 2 });
          return [get(x, out, C.length)];
        },
        // A K-long dot product in TF32 errs by about sqrt(K) roundings of 2^-11.
        matmulTolerance * (matmulTolerance > 1e-5 ? Math.sqrt(kk / 64) : 1),
      );
    }

  if (matmulOnly) return results;

  const attentionShapes: AttentionShape[] =
    size === "small"
      ? [{ b: 2, t: 33, h: 1, d: 37 }]
      : [
          { b: 2, t: 33, h: 1, d: 37 },
          { b: 2, t: 200, h: 3, d: 64 },
          { b: 1, t: 129, h: 2, d: 128 },
        ];
  for (const shape of attentionShapes) {
    const n = shape.b * shape.t * 3 * shape.h * shape.d,
      outN = n / 3;
    const qkv = randomsFrom(n, shape.t),
      dOut = randomsFrom(outN, shape.d);
    const mask = Int32Array.from({ length: shape.b * shape.t }, (_, i) => (i % shape.t < shape.t - 3 || i >= shape.t ? 1 : 0));
    for (const dropout of [undefined, { p: 0.1, seed: 0xdeadbeef | 0 }])
      compare(
        `attention ${JSON.stringify(shape)}${dropout ? " with dropout" : ""}, forward and backward`,
        (x) => {
          const q = put(x, qkv),
            m = put(x, mask),
            out = x.alloc(outN),
            saved = x.alloc(x.attentionSavedSize(shape)),
            dq = x.alloc(n);
          x.attention(out, saved, q, m, shape, 1 / Math.sqrt(shape.d), dropout);
          x.attentionBackward(dq, put(x, dOut), q, out, saved, m, shape, 1 / Math.sqrt(shape.d), dropout);
          return [get(x, out, outN), get(x, dq, n)];
        },
        1e-5,
      );
  }

  const [rows, cols] = size === "small" ? [300, 9] : [1000, 768];
  const nn = rows * cols;
  const x = randomsFrom(nn, 11),
    y = randomsFrom(nn, 12),
    w = randomsFrom(cols, 13),
    bias = randomsFrom(cols, 14);
  const colTol = rows > 32 ? 1e-5 * Math.max(1, rows / 300) : 3e-6; // float column sums vs the reference's double
  compare(
    "gelu (tanh, erf), tanh, swiglu, forward and backward",
    (kk) => {
      const outs: Float32Array[] = [];
      for (const a of ["tanh", "erf"] as const) {
        const o = kk.alloc(nn),
          d = kk.alloc(nn);
        kk.gelu(o, put(kk, x), nn, a);
        kk.geluBackward(d, put(kk, x), put(kk, y), nn, a);
        outs.push(get(kk, o, nn), get(kk, d, nn));
      }
      const t = kk.alloc(nn),
        td = kk.alloc(nn);
      kk.tanh(t, put(kk, x), nn);
      kk.tanhBackward(td, t, put(kk, y), nn);
      const hidden = Math.floor(cols / 2);
      const s = kk.alloc(rows * hidden),
        sd = kk.alloc(rows * 2 * hidden);
      kk.swiglu(s, put(kk, x), rows, hidden);
      kk.swigluBackward(sd, put(kk, x), put(kk, y), rows, hidden);
      return [...outs, get(kk, t, nn), get(kk, td, nn), get(kk, s, rows * hidden), get(kk, sd, rows * 2 * hidden)];
    },
    3e-6,
  );
  compare(
    "dropout, bit for bit",
    (kk) => {
      const o = kk.alloc(nn);
      kk.dropout(o, put(kk, x), nn, 0.1, 0x9abcdef0 | 0, 2 ** 32 - 50);
      return [get(kk, o, nn)];
    },
    0,
  );
  compare(
    "bias, layerNorm, rmsNorm, forward and backward",
    (kk) => {
      const v = put(kk, x),
        db = kk.alloc(cols);
      kk.addBias(v, put(kk, bias), rows, cols);
      kk.biasBackward(db, put(kk, y), rows, cols, false);
      const o = kk.alloc(nn),
        mean = kk.alloc(rows),
        rstd = kk.alloc(rows),
        inp = put(kk, x),
        wb = put(kk, w);
      kk.layerNorm(o, mean, rstd, inp, wb, put(kk, bias), rows, cols, 1e-5);
      const dIn = kk.alloc(nn),
        dW = kk.alloc(cols),
        dB = kk.alloc(cols);
      kk.layerNormBackward(dIn, dW, dB, put(kk, y), inp, wb, mean, rstd, rows, cols);
      const ro = kk.alloc(nn),
        rr = kk.alloc(rows),
        rdIn = kk.alloc(nn),
        rdW = kk.alloc(cols);
      kk.rmsNorm(ro, rr, inp, wb, rows, cols, 1e-5);
      kk.rmsNormBackward(rdIn, rdW, put(kk, y), inp, wb, rr, rows, cols);
      return [v, db, o, mean, rstd, dIn, dW, dB, ro, rr, rdIn, rdW].map((b, i) =>
        get(kk, b, [1, 6, 7, 11].includes(i) ? cols : [3, 4, 9].includes(i) ? rows : nn),
      );
    },
    colTol,
  );
  const shape = { b: 2, t: 17, h: 3, d: 10 };
  const qkvN = shape.b * shape.t * 3 * shape.h * shape.d;
  compare(
    "rope, forward and inverse",
    (kk) => {
      const q = put(kk, randomsFrom(qkvN, 5));
      kk.rope(q, shape, 10000, false);
      const once = get(kk, q, qkvN);
      kk.rope(q, shape, 10000, true);
      return [once, get(kk, q, qkvN)];
    },
    2e-6,
  );
  const ids = Int32Array.from({ length: size === "small" ? 37 : 4099 }, (_, i) => (i * 7919) % 50);
  compare(
    "embedding and its scatter-add, bit for bit",
    (kk) => {
      const table = put(kk, randomsFrom(50 * cols, 21)),
        o = kk.alloc(ids.length * cols),
        i = put(kk, ids);
      kk.embedding(o, table, i, ids.length, cols, false);
      kk.embeddingBackward(table, put(kk, randomsFrom(ids.length * cols, 22)), i, ids.length, cols);
      return [get(kk, o, ids.length * cols), get(kk, table, 50 * cols)];
    },
    0,
  );
  const vocab = size === "small" ? 37 : 30001;
  const ceRows = size === "small" ? 7 : 64;
  compare(
    "cross-entropy, loss and gradient in place",
    (kk) => {
      const logits = put(
          kk,
          randomsFrom(ceRows * vocab, 31).map((v) => 4 * v),
        ),
        losses = kk.alloc(ceRows);
      const labels = Int32Array.from({ length: ceRows }, (_, i) => (i % 3 === 1 ? -100 : (i * 7907) % vocab));
      kk.crossEntropy(losses, logits, logits, put(kk, labels), ceRows, vocab, 0.125);
      return [get(kk, losses, ceRows), get(kk, logits, ceRows * vocab)];
    },
    2e-6,
  );
  const N = size === "small" ? 4099 : 1_000_003;
  compare(
    "AdamW, and the sums of squares",
    (kk) => {
      const [p, g, m, v] = [41, 42, 43, 44].map((key, i) => put(kk, i === 3 ? randomsFrom(N, key).map(Math.abs) : randomsFrom(N, key)));
      kk.adamw(p!, g!, m!, v!, N, { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 3 });
      return [get(kk, p!, N), get(kk, m!, N), get(kk, v!, N), Float32Array.from(kk.sumSquares(g!, N, 1000))];
    },
    1e-6,
  );
  return results;
}

/**
 * A training-step-like sequence (matmuls, attention with dropout, norms, embeddings,
 * cross-entropy, AdamW) whose outputs are hashed: two calls on one device must give the same
 * hash, since no kernel reduces in an order that depends on scheduling.
 */
export function repeatabilityHash(k: Kernels, size: CheckSize = "small"): string {
  const hash = createHash("sha256");
  const [m, n, kk] = size === "small" ? [65, 70, 33] : [2048, 2304, 768];
  const out = k.alloc(m * n);
  k.matmul({ out, a: put(k, randomsFrom(m * kk, 1)), b: put(k, randomsFrom(kk * n, 2)), m, n, k: kk });
  hash.update(get(k, out, m * n));
  const shape = size === "small" ? { b: 2, t: 33, h: 1, d: 37 } : { b: 4, t: 512, h: 12, d: 64 };
  const qn = shape.b * shape.t * 3 * shape.h * shape.d;
  const q = put(k, randomsFrom(qn, 3)),
    mask = put(
      k,
      Int32Array.from({ length: shape.b * shape.t }, (_, i) => (i % shape.t < shape.t - 5 ? 1 : 0)),
    ),
    o = k.alloc(qn / 3),
    saved = k.alloc(k.attentionSavedSize(shape)),
    dq = k.alloc(qn);
  const dropout = { p: 0.1, seed: 1234 };
  k.attention(o, saved, q, mask, shape, 0.125, dropout);
  k.attentionBackward(dq, put(k, randomsFrom(qn / 3, 4)), q, o, saved, mask, shape, 0.125, dropout);
  hash.update(get(k, o, qn / 3));
  hash.update(get(k, dq, qn));
  const rows = shape.b * shape.t,
    cols = shape.h * shape.d;
  const x = put(k, randomsFrom(rows * cols, 5)),
    w = put(k, randomsFrom(cols, 6)),
    y = k.alloc(rows * cols),
    mean = k.alloc(rows),
    rstd = k.alloc(rows),
    dIn = k.alloc(rows * cols),
    dW = k.alloc(cols),
    dB = k.alloc(cols);
  k.layerNorm(y, mean, rstd, x, w, null, rows, cols, 1e-5);
  k.layerNormBackward(dIn, dW, dB, put(k, randomsFrom(rows * cols, 7)), x, w, mean, rstd, rows, cols);
  hash.update(get(k, dIn, rows * cols));
  hash.update(get(k, dW, cols));
  const ids = put(
      k,
      Int32Array.from({ length: rows }, (_, i) => (i * 31) % 97),
    ),
    table = k.alloc(97 * cols);
  k.embeddingBackward(table, dIn, ids, rows, cols);
  hash.update(get(k, table, 97 * cols));
  const g = k.alloc(97 * cols),
    mm = k.alloc(97 * cols),
    vv = k.alloc(97 * cols);
  k.adamw(table, g, mm, vv, 97 * cols, { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 1 });
  hash.update(get(k, table, 97 * cols));
  hash.update(Float32Array.from(k.sumSquares(dq, qn, 4096)));
  return hash.digest("hex");
}
