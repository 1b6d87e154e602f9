// The decoder kernels' backward passes in the reference agree with finite differences of
// their forward passes, in float64: RoPE with Llama 3 scaling (whose backward is its inverse
// rotation), causal grouped-query attention at one, two and four query heads per key/value
// head, and RMSNorm and SwiGLU at a decoder's shapes. Causality is checked directly too: a
// later token changes no earlier output.
import { describe, expect, it } from "vitest";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import type { Buf, CausalAttentionShape } from "../../model/kernels.js";

const k = createReferenceKernels({ precision: "f64" });
let seed = 777;
const rand = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed / 2 ** 32) * 2 - 1;
};
const randoms = (n: number) => Float64Array.from({ length: n }, rand);
const buf = (values: Float64Array) => {
  const b = k.alloc(values.length);
  k.uploadF64(b, values);
  return b;
};

/** d/dx of Σ dOut·forward(x) by central differences, against `analytic`, for every element of x. */
function check(x: Buf, n: number, out: Buf, outN: number, forward: () => void, analytic: Float64Array, dOut: Float64Array) {
  const h = 1e-6;
  const loss = () => {
    forward();
    return k.downloadF64(out, outN).reduce((s, v, i) => s + v * dOut[i]!, 0);
  };
  const xs = k.downloadF64(x, n);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const at = k.view(x, i);
    k.uploadF64(at, [xs[i]! + h]);
    const up = loss();
    k.uploadF64(at, [xs[i]! - h]);
    const down = loss();
    k.uploadF64(at, [xs[i]!]);
    const numeric = (up - down) / (2 * h);
    worst = Math.max(worst, Math.abs(numeric - analytic[i]!) / Math.max(1, Math.abs(numeric)));
  }
  expect(worst).toBeLessThan(1e-6);
}

describe("decoder kernels: backward = finite differences of forward (f64)", () => {
  it("rotary with Llama 3 scaling: the inverse rotation is the backward", () => {
    const rope = { theta: 500000, scaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16 } };
    const args = { rows: 4, stride: 4 * 6, heads: 3, d: 6, seqLen: 2, start: 5 };
    const n = args.rows * args.stride;
    const x = buf(randoms(n)),
      out = k.alloc(n);
    const dOut = randoms(n);
    const forward = () => {
      k.copy(out, x, n);
      k.rotary(out, args, rope, false);
    };
    const dx = buf(dOut);
    k.rotary(dx, args, rope, true);
    check(x, n, out, n, forward, k.downloadF64(dx, n), dOut);
  });

  for (const kvHeads of [4, 2, 1])
    it(`causal attention with 4 query heads and ${kvHeads} key/value head${kvHeads > 1 ? "s" : ""}`, () => {
      const shape: CausalAttentionShape = { b: 2, t: 4, h: 4, kvHeads, d: 4 };
      const n = shape.b * shape.t * (shape.h + 2 * kvHeads) * shape.d;
      const outN = shape.b * shape.t * shape.h * shape.d;
      const qkv = buf(randoms(n).map((v) => 2 * v)),
        out = k.alloc(outN),
        saved = k.alloc(k.causalAttentionSavedSize(shape));
      const dOut = randoms(outN);
      const forward = () => k.causalAttention(out, saved, qkv, shape, 0.5);
      forward();
      const dQkv = k.alloc(n);
      k.causalAttentionBackward(dQkv, buf(dOut), qkv, saved, shape, 0.5);
      check(qkv, n, out, outN, forward, k.downloadF64(dQkv, n), dOut);

      // Causality: changing the last token of each sequence leaves every earlier output as it was.
      const before = k.downloadF64(out, outN);
      const rowN = (shape.h + 2 * kvHeads) * shape.d;
      for (let bi = 0; bi < shape.b; bi++) k.uploadF64(k.view(qkv, (bi * shape.t + shape.t - 1) * rowN), randoms(rowN));
      forward();
      const after = k.downloadF64(out, outN);
      const rowOut = shape.h * shape.d;
      for (let bi = 0; bi < shape.b; bi++) {
        const earlier = (a: Float64Array) => Array.from(a.subarray(bi * shape.t * rowOut, (bi * shape.t + shape.t - 1) * rowOut));
        expect(earlier(after)).toEqual(earlier(before));
        expect(Array.from(after.subarray((bi * shape.t + shape.t - 1) * rowOut, (bi + 1) * shape.t * rowOut))).not.toEqual(
          Array.from(before.subarray((bi * shape.t + shape.t - 1) * rowOut, (bi + 1) * shape.t * rowOut)),
        );
      }
    });

  it("RMSNorm (input, weight) and SwiGLU at a decoder's shapes", () => {
    const rows = 3,
      cols = 6,
      hidden = 5;
    const x = buf(randoms(rows * cols)),
      w = buf(randoms(cols)),
      out = k.alloc(rows * cols),
      rstd = k.alloc(rows);
    const dOut = randoms(rows * cols);
    const forward = () => k.rmsNorm(out, rstd, x, w, rows, cols, 1e-5);
    forward();
    const dx = k.alloc(rows * cols),
      dw = k.alloc(cols);
    k.rmsNormBackward(dx, dw, buf(dOut), x, w, rstd, rows, cols);
    check(x, rows * cols, out, rows * cols, forward, k.downloadF64(dx, rows * cols), dOut);
    check(w, cols, out, rows * cols, forward, k.downloadF64(dw, cols), dOut);

    const f1 = buf(randoms(rows * 2 * hidden).map((v) => 3 * v)),
      g = k.alloc(rows * hidden);
    const dG = randoms(rows * hidden);
    const dF = k.alloc(rows * 2 * hidden);
    k.swigluBackward(dF, f1, buf(dG), rows, hidden);
    check(f1, rows * 2 * hidden, g, rows * hidden, () => k.swiglu(g, f1, rows, hidden), k.downloadF64(dF, rows * 2 * hidden), dG);
  });
});
