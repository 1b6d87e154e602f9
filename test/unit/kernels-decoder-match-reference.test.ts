// The decoder kernels in WebAssembly (both builds) agree with the reference on odd shapes:
// RoPE at positions with Llama 3 scaling (forward and inverse), causal grouped-query attention
// forward and backward (one, two and four query heads per key/value head), the cached
// generation step (also equal to the full attention's last position) and its few-row
// product, and RMSNorm and SwiGLU at a decoder's widths. Llama 3's frequency scaling
// follows its three bands.
import { beforeAll, describe, expect, it } from "vitest";
import { createWasmKernels, relaxedSimdSupported } from "../../kernels-wasm/index.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { get, put, randomsFrom, worstError } from "../../model/kernel-probes.js";
import type { CausalAttentionShape, DecoderKernels } from "../../model/kernels.js";
import { ropeInverseFrequencies, type RopeSpec } from "../../model/rope.js";

const llama3: RopeSpec = { theta: 500000, scaling: { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } };

describe("Llama 3 RoPE frequencies", () => {
  it("keep the high frequencies, stretch the low ones by the factor, interpolate between", () => {
    const plain = ropeInverseFrequencies(64, { theta: 500000 });
    const scaled = ropeInverseFrequencies(64, llama3);
    expect(plain[0]).toBe(1);
    const bands = { high: 0, low: 0, medium: 0 };
    for (const [i, f] of plain.entries()) {
      const wavelength = (2 * Math.PI) / f;
      if (wavelength < 8192 / 4) {
        expect(scaled[i]).toBe(f);
        bands.high++;
      } else if (wavelength > 8192) {
        expect(scaled[i]).toBeCloseTo(f / 32, 15);
        bands.low++;
      } else {
        expect(scaled[i]!).toBeGreaterThan(f / 32);
        expect(scaled[i]!).toBeLessThan(f);
        bands.medium++;
      }
    }
    // All three bands occur at Llama 3.2's shape, so each branch is exercised.
    expect(bands).toEqual({ high: 15, low: 14, medium: 3 });
  });
});

const close = (name: string, actual: Float32Array, expected: Float32Array, tol: number) => expect(worstError(actual, expected), name).toBeLessThan(tol);

for (const relaxed of [false, true]) {
  describe.skipIf(relaxed && !relaxedSimdSupported())(`decoder kernels in WebAssembly (${relaxed ? "relaxed SIMD" : "SIMD"}) match the reference`, () => {
    let w: DecoderKernels;
    const r = createReferenceKernels();
    beforeAll(async () => {
      w = await createWasmKernels({ relaxed });
    });

    it("rotary on the q and k heads of qkv rows, at positions from an offset, with and without scaling, and its inverse", () => {
      // d = 10: 5 pairs, not a multiple of the 4 lanes; 3 rows per sequence, starting at 1000.
      for (const rope of [{ theta: 10000 }, llama3]) {
        const args = { rows: 6, stride: 7 * 10, heads: 5, d: 10, seqLen: 3, start: 1000 };
        const x = randomsFrom(args.rows * args.stride, 3);
        const run = (k: DecoderKernels) => {
          const a = put(k, x),
            back = put(k, x);
          k.rotary(a, args, rope, false);
          k.rotary(back, args, rope, false);
          k.rotary(back, args, rope, true);
          return [get(k, a, x.length), get(k, back, x.length)];
        };
        const [wa, wBack] = run(w);
        const [ra] = run(r);
        close("rotary", wa!, ra!, 2e-6);
        close("rotary then its inverse", wBack!, x, 2e-6);
        // The values (heads 5 and 6 of each row) are left alone.
        for (let row = 0; row < args.rows; row++)
          expect(Array.from(wa!.subarray(row * 70 + 50, row * 70 + 70))).toEqual(Array.from(x.subarray(row * 70 + 50, row * 70 + 70)));
      }
    });

    it("causal grouped-query attention, forward and backward, and the cached step", () => {
      // d = 37: 4-lane steps and a scalar tail; t = 9 crosses the softmax's lanes ragged.
      for (const shape of [
        { b: 2, t: 9, h: 4, kvHeads: 4, d: 5 },
        { b: 2, t: 9, h: 4, kvHeads: 2, d: 37 },
        { b: 1, t: 6, h: 4, kvHeads: 1, d: 8 },
      ] satisfies CausalAttentionShape[]) {
        const { b, t, h, kvHeads, d } = shape;
        const heads = h + 2 * kvHeads;
        const n = b * t * heads * d,
          outN = b * t * h * d;
        const qkv = randomsFrom(n, 11),
          dOut = randomsFrom(outN, 12);
        const scale = 1 / Math.sqrt(d);
        const run = (k: DecoderKernels) => {
          const q = put(k, qkv),
            out = k.alloc(outN),
            saved = k.alloc(k.causalAttentionSavedSize(shape)),
            dq = k.alloc(n);
          k.causalAttention(out, saved, q, shape, scale);
          k.causalAttentionBackward(dq, put(k, dOut), q, saved, shape, scale);
          // The cache holds every position; the last token's row attends to all of it.
          const capacity = t + 3;
          const keys = k.alloc(b * kvHeads * capacity * d),
            values = k.alloc(b * kvHeads * capacity * d),
            last = k.alloc(b * heads * d),
            cached = k.alloc(b * h * d);
          for (let bi = 0; bi < b; bi++) {
            for (let j = 0; j < kvHeads; j++)
              for (let pos = 0; pos < t; pos++) {
                const row = ((bi * t + pos) * heads + h + j) * d;
                const slot = ((bi * kvHeads + j) * capacity + pos) * d;
                k.copy(k.view(keys, slot), k.view(q, row), d);
                k.copy(k.view(values, slot), k.view(q, row + kvHeads * d), d);
              }
            k.copy(k.view(last, bi * heads * d), k.view(q, (bi * t + t - 1) * heads * d), heads * d);
          }
          k.cachedAttention(cached, last, keys, values, { b, h, kvHeads, d, length: t, capacity }, scale);
          return [get(k, out, outN), get(k, dq, n), get(k, cached, b * h * d)];
        };
        const [wo, wd, wc] = run(w);
        const [ro, rd, rc] = run(r);
        close(`attention ${JSON.stringify(shape)}`, wo!, ro!, 1e-5);
        close(`attention backward ${JSON.stringify(shape)}`, wd!, rd!, 1e-5);
        close(`cached step ${JSON.stringify(shape)}`, wc!, rc!, 1e-5);
        for (const [name, cached, full] of [
          ["reference", rc!, ro!],
          ["wasm", wc!, wo!],
        ] as const)
          for (let bi = 0; bi < b; bi++)
            close(
              `${name}: the cached step is the full attention's last position`,
              cached.subarray(bi * h * d, (bi + 1) * h * d),
              full.subarray((bi * t + t - 1) * h * d, (bi * t + t) * h * d),
              1e-6,
            );
      }
    });

    it("linear: the few-row product of a generation step", () => {
      // k = 37 and 67: four lanes and a scalar tail; n = 130 and 5: no blocking to line up with.
      for (const [rows, outF, inF] of [
        [1, 130, 37],
        [3, 5, 67],
        [2, 64, 64],
      ] as const) {
        const x = randomsFrom(rows * inF, 31),
          weight = randomsFrom(outF * inF, 32);
        const run = (k: DecoderKernels) => {
          const out = k.alloc(rows * outF);
          k.linear(out, put(k, x), put(k, weight), rows, outF, inF);
          return get(k, out, rows * outF);
        };
        close(`linear ${rows}×${outF}×${inF}`, run(w), run(r), 1e-5);
      }
    });

    it("RMSNorm and SwiGLU at a decoder's widths", () => {
      const rows = 5,
        cols = 83,
        hidden = 41;
      const x = randomsFrom(rows * cols, 21),
        wgt = randomsFrom(cols, 22),
        dy = randomsFrom(rows * cols, 23),
        f1 = randomsFrom(rows * 2 * hidden, 24),
        dg = randomsFrom(rows * hidden, 25);
      const run = (k: DecoderKernels) => {
        const o = k.alloc(rows * cols),
          rstd = k.alloc(rows),
          inp = put(k, x),
          w8 = put(k, wgt),
          dIn = k.alloc(rows * cols),
          dW = k.alloc(cols);
        k.rmsNorm(o, rstd, inp, w8, rows, cols, 1e-5);
        k.rmsNormBackward(dIn, dW, put(k, dy), inp, w8, rstd, rows, cols);
        const g = k.alloc(rows * hidden),
          dF = k.alloc(rows * 2 * hidden),
          fb = put(k, f1);
        k.swiglu(g, fb, rows, hidden);
        k.swigluBackward(dF, fb, put(k, dg), rows, hidden);
        return [get(k, o, rows * cols), get(k, dIn, rows * cols), get(k, dW, cols), get(k, g, rows * hidden), get(k, dF, rows * 2 * hidden)];
      };
      const got = run(w),
        want = run(r);
      for (const [i, g] of got.entries()) close(`output ${i}`, g, want[i]!, 3e-6);
    });
  });
}
