// The reference kernels' backward passes agree with finite differences of their forward
// passes, in float64: for a random upstream gradient dOut, the analytic d(Σ dOut·f(x))/dx
// must match the central difference to 1e-6 relative.
import { describe, expect, it } from "vitest";
import { createReferenceKernels, erf } from "../../model/kernels-reference.js";
import type { AttentionShape, Buf } from "../../model/kernels.js";

const k = createReferenceKernels({ precision: "f64" });
let seed = 12345;
const rand = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed / 2 ** 32) * 2 - 1;
};
const randoms = (n: number) => Float64Array.from({ length: n }, rand);
const buf = (values: Float64Array | number[]) => {
  const b = k.alloc(values.length);
  k.uploadF64(b, values);
  return b;
};
const ints = (values: number[]) => {
  const b = k.alloc(values.length);
  k.upload(b, Int32Array.from(values));
  return b;
};

/**
 * Checks d/dx of L(x) = Σ dOut·forward(x) for every element of the input buffer `x`:
 * `forward` writes its output into `out`; `analytic` is the gradient the backward wrote.
 */
function check(x: Buf, n: number, out: Buf, outN: number, forward: () => void, analytic: Float64Array, dOut: Float64Array) {
  const h = 1e-6;
  const loss = () => {
    forward();
    const y = k.downloadF64(out, outN);
    return y.reduce((s, v, i) => s + v * dOut[i]!, 0);
  };
  const xs = k.downloadF64(x, n);
  for (let i = 0; i < n; i++) {
    const at = k.view(x, i);
    k.uploadF64(at, [xs[i]! + h]);
    const up = loss();
    k.uploadF64(at, [xs[i]! - h]);
    const down = loss();
    k.uploadF64(at, [xs[i]!]);
    const numeric = (up - down) / (2 * h);
    expect(Math.abs(numeric - analytic[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(numeric)));
  }
}

describe("reference kernels: backward = finite differences of forward (f64)", () => {
  it("erf matches known values", () => {
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(2.5)).toBeCloseTo(0.999593047982555, 14);
    expect(erf(-3.5)).toBeCloseTo(-0.9999992569016276, 14);
  });

  for (const approximation of ["tanh", "erf"] as const)
    it(`gelu (${approximation})`, () => {
      const n = 9;
      const x = buf(randoms(n).map((v) => v * 3));
      const out = k.alloc(n);
      const dOut = randoms(n);
      const dx = k.alloc(n);
      k.geluBackward(dx, x, buf(dOut), n, approximation);
      check(x, n, out, n, () => k.gelu(out, x, n, approximation), k.downloadF64(dx, n), dOut);
    });

  it("swiglu and tanh", () => {
    const rows = 2,
      hidden = 3;
    const x = buf(randoms(rows * 2 * hidden));
    const out = k.alloc(rows * hidden);
    const dOut = randoms(rows * hidden);
    const dx = k.alloc(rows * 2 * hidden);
    k.swigluBackward(dx, x, buf(dOut), rows, hidden);
    check(x, rows * 2 * hidden, out, rows * hidden, () => k.swiglu(out, x, rows, hidden), k.downloadF64(dx, rows * 2 * hidden), dOut);
    const y = k.alloc(6);
    const xt = buf(randoms(6));
    const dt = randoms(6);
    k.tanh(y, xt, 6);
    const dxt = k.alloc(6);
    k.tanhBackward(dxt, y, buf(dt), 6);
    check(xt, 6, y, 6, () => k.tanh(y, xt, 6), k.downloadF64(dxt, 6), dt);
  });

  it("layerNorm (input, weight, bias) and rmsNorm (input, weight)", () => {
    const rows = 3,
      cols = 5;
    const x = buf(randoms(rows * cols));
    const w = buf(randoms(cols));
    const b = buf(randoms(cols));
    const out = k.alloc(rows * cols),
      mean = k.alloc(rows),
      rstd = k.alloc(rows);
    const dOut = randoms(rows * cols);
    const fwd = () => k.layerNorm(out, mean, rstd, x, w, b, rows, cols, 1e-5);
    fwd();
    const dx = k.alloc(rows * cols),
      dw = k.alloc(cols),
      db = k.alloc(cols);
    k.layerNormBackward(dx, dw, db, buf(dOut), x, w, mean, rstd, rows, cols);
    check(x, rows * cols, out, rows * cols, fwd, k.downloadF64(dx, rows * cols), dOut);
    check(w, cols, out, rows * cols, fwd, k.downloadF64(dw, cols), dOut);
    check(b, cols, out, rows * cols, fwd, k.downloadF64(db, cols), dOut);

    const rms = () => k.rmsNorm(out, rstd, x, w, rows, cols, 1e-5);
    rms();
    const dx2 = k.alloc(rows * cols),
      dw2 = k.alloc(cols);
    k.rmsNormBackward(dx2, dw2, buf(dOut), x, w, rstd, rows, cols);
    check(x, rows * cols, out, rows * cols, rms, k.downloadF64(dx2, rows * cols), dOut);
    check(w, cols, out, rows * cols, rms, k.downloadF64(dw2, cols), dOut);
  });

  it("attention with a padding mask, with and without dropout, and RoPE's inverse", () => {
    const shape: AttentionShape = { b: 2, t: 3, h: 2, d: 4 };
    const n = shape.b * shape.t * 3 * shape.h * shape.d;
    const outN = shape.b * shape.t * shape.h * shape.d;
    const qkv = buf(randoms(n));
    const mask = ints([1, 1, 0, 1, 1, 1]);
    const out = k.alloc(outN);
    const saved = k.alloc(k.attentionSavedSize(shape));
    const dOut = randoms(outN);
    const fwd = () => k.attention(out, saved, qkv, mask, shape, 0.5);
    fwd();
    const dQkv = k.alloc(n);
    k.attentionBackward(dQkv, buf(dOut), qkv, out, saved, mask, shape, 0.5);
    check(qkv, n, out, outN, fwd, k.downloadF64(dQkv, n), dOut);

    // With dropout on the probabilities: the mask is a pure function of (seed, index).
    const dropout = { p: 0.3, seed: 42 };
    const dropped = () => k.attention(out, saved, qkv, mask, shape, 0.5, dropout);
    dropped();
    const withDrop = k.downloadF64(out, outN);
    fwd();
    expect(withDrop).not.toEqual(k.downloadF64(out, outN));
    dropped();
    const dQkv2 = k.alloc(n);
    k.attentionBackward(dQkv2, buf(dOut), qkv, out, saved, mask, shape, 0.5, dropout);
    check(qkv, n, out, outN, dropped, k.downloadF64(dQkv2, n), dOut);

    const before = k.downloadF64(qkv, n);
    k.rope(qkv, shape, 10000, false);
    expect(k.downloadF64(qkv, n)).not.toEqual(before);
    k.rope(qkv, shape, 10000, true);
    for (const [i, v] of k.downloadF64(qkv, n).entries()) expect(v).toBeCloseTo(before[i]!, 12);
  });

  it("matmul in all layouts, embedding scatter-add, cross-entropy", () => {
    const m = 3,
      n = 2,
      kk = 4;
    for (const [transA, transB] of [
      [false, false],
      [false, true],
      [true, false],
    ] as const) {
      const a = buf(randoms(m * kk)),
        b = buf(randoms(kk * n));
      const out = k.alloc(m * n);
      const dOut = randoms(m * n);
      const fwd = () => k.matmul({ out, a, b, m, n, k: kk, transA, transB });
      // dA = dOut·Bᵀ (or its transpose); check against finite differences directly.
      const dA = k.alloc(m * kk);
      if (!transA) k.matmul({ out: dA, a: buf(dOut), b, m, n: kk, k: n, transB: !transB });
      else k.matmul({ out: dA, a: b, b: buf(dOut), m: kk, n: m, k: n, transA: transB, transB: true });
      check(a, m * kk, out, m * n, fwd, k.downloadF64(dA, m * kk), dOut);
    }
    const table = buf(randoms(5 * 3));
    const ids = ints([4, 1, 4]);
    const out = k.alloc(9);
    const dOut = randoms(9);
    const dTable = k.alloc(15);
    k.embeddingBackward(dTable, buf(dOut), ids, 3, 3);
    check(table, 15, out, 9, () => k.embedding(out, table, ids, 3, 3, false), k.downloadF64(dTable, 15), dOut);

    const logits = buf(randoms(3 * 4).map((v) => v * 4));
    const labels = ints([2, -100, 0]);
    const losses = k.alloc(3),
      dLogits = k.alloc(12);
    k.crossEntropy(losses, dLogits, logits, labels, 3, 4, 1);
    const analytic = k.downloadF64(dLogits, 12);
    const scratch = k.alloc(12);
    check(logits, 12, losses, 3, () => k.crossEntropy(losses, scratch, logits, labels, 3, 4, 1), analytic, Float64Array.from([1, 1, 1]));
  });
});
