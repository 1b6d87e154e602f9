// The WebAssembly kernels agree with the reference on random shapes, odd sizes included
// (not multiples of the SIMD width or the 4×8 register tile), repeat bit for bit, and
// refuse memory past 4 GiB with a clear error.
import { beforeAll, describe, expect, it } from "vitest";
import { createWasmKernels, relaxedSimdSupported } from "../../kernels-wasm/index.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { get, put, randomsFrom, worstError } from "../../model/kernel-probes.js";
import type { Buf, Kernels } from "../../model/kernels.js";

let seed = 99;
const rand = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed / 2 ** 32) * 2 - 1;
};
const randoms = (n: number) => Float32Array.from({ length: n }, rand);
function close(actual: Float32Array, expected: Float32Array, tol: number) {
  expect(worstError(actual, expected)).toBeLessThan(tol);
}

for (const relaxed of [false, true]) {
  describe.skipIf(relaxed && !relaxedSimdSupported())(`WebAssembly kernels (${relaxed ? "relaxed SIMD" : "SIMD"})`, () => {
    let w: Kernels;
    const r = createReferenceKernels();
    beforeAll(async () => {
      w = await createWasmKernels({ relaxed });
    });

    it("matmul in every layout, with accumulate, alpha and batches, on odd shapes", () => {
      // [101, 530, 19] crosses matmul's row blocks (48) and column blocks (256) with ragged ends.
      for (const [m, n, k] of [
        [1, 1, 1],
        [5, 9, 3],
        [13, 17, 33],
        [4, 8, 16],
        [37, 23, 65],
        [64, 130, 7],
        [101, 530, 19],
      ] as const) {
        for (const [transA, transB] of [
          [false, false],
          [false, true],
          [true, false],
          [true, true],
        ] as const) {
          const batch = 2;
          const A = randoms(batch * m * k),
            B = randoms(batch * k * n),
            C = randoms(batch * m * n);
          const args = { m, n, k, transA, transB, accumulate: true, alpha: 0.5, batch };
          const [wa, wb, wc] = [put(w, A), put(w, B), put(w, C)];
          const [ra, rb, rc] = [put(r, A), put(r, B), put(r, C)];
          w.matmul({ out: wc, a: wa, b: wb, ...args });
          r.matmul({ out: rc, a: ra, b: rb, ...args });
          close(get(w, wc, C.length), get(r, rc, C.length), 1e-5);
        }
      }
    });

    it("attention forward and backward with a padding mask, with and without dropout; AdamW, sums of squares", () => {
      // d = 37: the 16-lane dot products, a 4-lane step and a scalar tail.
      for (const shape of [
        { b: 2, t: 7, h: 3, d: 5 },
        { b: 2, t: 7, h: 2, d: 37 },
      ]) {
        const n = shape.b * shape.t * 3 * shape.h * shape.d,
          outN = n / 3;
        const qkv = randoms(n),
          dOut = randoms(outN);
        const mask = Int32Array.from({ length: 14 }, (_, i) => (i % 7 < 5 ? 1 : 0));
        const run = (k: Kernels) => {
          const q = put(k, qkv),
            m = put(k, mask),
            out = k.alloc(outN),
            saved = k.alloc(k.attentionSavedSize(shape)),
            dq = k.alloc(n);
          k.attention(out, saved, q, m, shape, 0.4);
          k.attentionBackward(dq, put(k, dOut), q, out, saved, m, shape, 0.4);
          const dropout = { p: 0.25, seed: 0xdeadbeef | 0 }; // a seed with its high bit set
          const out2 = k.alloc(outN),
            dq2 = k.alloc(n);
          k.attention(out2, saved, q, m, shape, 0.4, dropout);
          k.attentionBackward(dq2, put(k, dOut), q, out2, saved, m, shape, 0.4, dropout);
          return [get(k, out, outN), get(k, dq, n), get(k, out2, outN), get(k, dq2, n)];
        };
        const [wo, wd, wo2, wd2] = run(w),
          [ro, rd, ro2, rd2] = run(r);
        close(wo!, ro!, 1e-5);
        close(wd!, rd!, 1e-5);
        close(wo2!, ro2!, 1e-5);
        close(wd2!, rd2!, 1e-5);
        expect(Buffer.from(wo2!.buffer).equals(Buffer.from(wo!.buffer))).toBe(false);
      }

      const N = 4099; // not a multiple of 4
      const p = randoms(N),
        g = randoms(N),
        mm = randoms(N),
        vv = randoms(N).map(Math.abs);
      const step = (k: Kernels) => {
        const bufs = [p, g, mm, vv].map((x) => put(k, x));
        k.adamw(bufs[0]!, bufs[1]!, bufs[2]!, bufs[3]!, N, { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 3 });
        return get(k, bufs[0]!, N);
      };
      close(step(w), step(r), 1e-6);
      const x = put(w, g),
        xr = put(r, g);
      const ws = w.sumSquares(x, N, 1000),
        rs = r.sumSquares(xr, N, 1000);
      expect(ws.length).toBe(5);
      for (const [i, v] of ws.entries()) expect(Math.abs(v - rs[i]!) / rs[i]!).toBeLessThan(1e-6);
    });

    it("repeats bit for bit, and a slice's elementwise update equals the whole vector's", () => {
      const A = randoms(33 * 65),
        B = randoms(65 * 47);
      const once = () => {
        const out = w.alloc(33 * 47);
        w.matmul({ out, a: put(w, A), b: put(w, B), m: 33, n: 47, k: 65 });
        return Buffer.from(get(w, out, 33 * 47).buffer);
      };
      expect(once().equals(once())).toBe(true);
      const N = 1001,
        p = randoms(N),
        g = randoms(N);
      const whole = put(w, p),
        grad = put(w, g),
        m = w.alloc(N),
        v = w.alloc(N);
      const args = { lr: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 1 };
      w.adamw(whole, grad, m, v, N, args);
      const parts = put(w, p),
        grad2 = put(w, g),
        m2 = w.alloc(N),
        v2 = w.alloc(N);
      for (const [s, e] of [
        [0, 3],
        [3, 517],
        [517, N],
      ] as const)
        w.adamw(w.view(parts, s), w.view(grad2, s), w.view(m2, s), w.view(v2, s), e - s, args);
      expect(Buffer.from(get(w, parts, N).buffer).equals(Buffer.from(get(w, whole, N).buffer))).toBe(true);
    });

    it("activations, bias, dropout, norms, RoPE, embeddings and cross-entropy match the reference on odd shapes", () => {
      const rows = 7,
        cols = 37,
        n = rows * cols,
        hidden = 17; // rows · 2 · hidden ≤ n
      const x = randoms(n),
        y = randoms(n),
        wgt = randoms(cols),
        bias = randoms(cols),
        acc = randoms(cols);
      const ids = Int32Array.from([3, 0, 5, 3, 1, 3, 6]); // repeats: the scatter-add must add them all, in order
      const labels = Int32Array.from([4, -100, 36, 0, 17, 35, -100]);
      const outs = (k: Kernels, bufs: Buf[], sizes: number[]) => bufs.map((b, i) => get(k, b, sizes[i]!));
      // Each case runs on a backend and returns the arrays it wrote; [case, tolerance].
      const cases: [string, (k: Kernels) => Float32Array[], number][] = [];
      for (const a of ["tanh", "erf"] as const) {
        cases.push([
          `gelu ${a}`,
          (k) => {
            const o = k.alloc(n);
            k.gelu(o, put(k, x), n, a);
            return outs(k, [o], [n]);
          },
          1e-6,
        ]);
        cases.push([
          `gelu backward ${a}`,
          (k) => {
            const d = put(k, y);
            k.geluBackward(d, put(k, x), d, n, a);
            return outs(k, [d], [n]);
          },
          2e-6,
        ]);
      }
      cases.push([
        "tanh",
        (k) => {
          const o = k.alloc(n);
          k.tanh(o, put(k, x), n);
          return outs(k, [o], [n]);
        },
        1e-6,
      ]);
      cases.push([
        "tanh backward",
        (k) => {
          const o = k.alloc(n);
          k.tanhBackward(o, put(k, x), put(k, y), n);
          return outs(k, [o], [n]);
        },
        1e-6,
      ]);
      cases.push([
        "swiglu",
        (k) => {
          const o = k.alloc(rows * hidden);
          k.swiglu(o, put(k, x.subarray(0, rows * 2 * hidden)), rows, hidden);
          return outs(k, [o], [rows * hidden]);
        },
        2e-6,
      ]);
      cases.push([
        "swiglu backward",
        (k) => {
          const d = k.alloc(rows * 2 * hidden);
          k.swigluBackward(d, put(k, x.subarray(0, rows * 2 * hidden)), put(k, y.subarray(0, rows * hidden)), rows, hidden);
          return outs(k, [d], [rows * 2 * hidden]);
        },
        2e-6,
      ]);
      cases.push([
        "bias and its gradient",
        (k) => {
          const v = put(k, x),
            db = put(k, acc),
            db2 = k.alloc(cols);
          k.addBias(v, put(k, bias), rows, cols);
          k.biasBackward(db, put(k, y), rows, cols, true);
          k.biasBackward(db2, put(k, y), rows, cols, false);
          return outs(k, [v, db, db2], [n, cols, cols]);
        },
        1e-6,
      ]);
      cases.push([
        "dropout",
        (k) => {
          const a = k.alloc(n),
            b = k.alloc(n);
          k.dropout(a, put(k, x), n, 0.3, 12345, 77);
          k.dropoutBackward(b, put(k, y), n, 0.25, 0x9abcdef0 | 0, 2 ** 32 - 50); // a high-bit seed, a counter that wraps
          return outs(k, [a, b], [n, n]);
        },
        0,
      ]);
      for (const withBias of [true, false]) {
        cases.push([
          `layerNorm${withBias ? "" : " without bias"}, forward and backward`,
          (k) => {
            const o = k.alloc(n),
              mean = k.alloc(rows),
              rstd = k.alloc(rows),
              inp = put(k, x),
              w8 = put(k, wgt);
            k.layerNorm(o, mean, rstd, inp, w8, withBias ? put(k, bias) : null, rows, cols, 1e-5);
            const dIn = k.alloc(n),
              dW = put(k, acc),
              dB = withBias ? put(k, acc) : null;
            k.layerNormBackward(dIn, dW, dB, put(k, y), inp, w8, mean, rstd, rows, cols);
            return [...outs(k, [o, mean, rstd, dIn, dW], [n, rows, rows, n, cols]), ...(dB ? outs(k, [dB], [cols]) : [])];
          },
          3e-6,
        ]);
      }
      cases.push([
        "rmsNorm, forward and backward",
        (k) => {
          const o = k.alloc(n),
            rstd = k.alloc(rows),
            inp = put(k, x),
            w8 = put(k, wgt);
          k.rmsNorm(o, rstd, inp, w8, rows, cols, 1e-5);
          const dIn = k.alloc(n),
            dW = put(k, acc);
          k.rmsNormBackward(dIn, dW, put(k, y), inp, w8, rstd, rows, cols);
          return outs(k, [o, rstd, dIn, dW], [n, rows, n, cols]);
        },
        3e-6,
      ]);
      const shape = { b: 2, t: 5, h: 3, d: 10 }; // D/2 = 5: a pair count that is not a multiple of 4
      const qkvN = shape.b * shape.t * 3 * shape.h * shape.d;
      cases.push([
        "rope, forward and inverse",
        (k) => {
          const q = put(k, randomsFrom(qkvN, 5)),
            back = put(k, randomsFrom(qkvN, 5));
          k.rope(q, shape, 10000, false);
          k.rope(back, shape, 10000, false);
          k.rope(back, shape, 10000, true);
          return outs(k, [q, back], [qkvN, qkvN]);
        },
        2e-6,
      ]);
      cases.push([
        "embedding and its scatter-add",
        (k) => {
          const table = put(k, x),
            o = put(k, y.subarray(0, ids.length * cols)),
            o2 = k.alloc(ids.length * cols),
            i = put(k, ids);
          k.embedding(o, table, i, ids.length, cols, true);
          k.embedding(o2, table, i, ids.length, cols, false);
          const dTable = put(k, y);
          k.embeddingBackward(dTable, put(k, x.subarray(0, ids.length * cols)), i, ids.length, cols);
          return outs(k, [o, o2, dTable], [ids.length * cols, ids.length * cols, n]);
        },
        1e-6,
      ]);
      cases.push([
        "cross-entropy, loss and gradient in place",
        (k) => {
          const logits = put(
              k,
              Float32Array.from(x, (v) => 4 * v),
            ),
            losses = k.alloc(rows);
          k.crossEntropy(losses, logits, logits, put(k, labels), rows, cols, 0.125);
          return outs(k, [losses, logits], [rows, n]);
        },
        2e-6,
      ]);
      for (const [name, run, tol] of cases) {
        const [got, want] = [run(w), run(r)];
        expect(got.length, name).toBe(want.length);
        got.forEach((g, i) => {
          if (tol === 0) expect(Buffer.from(g.buffer).equals(Buffer.from(want[i]!.buffer)), name).toBe(true);
          else {
            let worst = 0;
            for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j]! - want[i]![j]!) / Math.max(1, Math.abs(want[i]![j]!)));
            expect(worst, `${name}, output ${i}`).toBeLessThan(tol);
          }
        });
      }
    });

    it("refuses to grow past 4 GiB with an error naming the size", () => {
      expect(() => w.alloc(1.2e9)).toThrow(/cannot hold 4\.47 GiB: the limit is 4 GiB/);
    });
  });
}
