// The WebAssembly kernels agree with the reference on random shapes, odd sizes included
// (not multiples of the SIMD width or the 4×8 register tile), repeat bit for bit, and
// refuse memory past 4 GiB with a clear error.
import { beforeAll, describe, expect, it } from "vitest";
import { createWasmKernels, relaxedSimdSupported } from "../../kernels-wasm/index.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import type { Buf, Kernels } from "../../model/kernels.js";

let seed = 99;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const randoms = (n: number) => Float32Array.from({ length: n }, rand);

function put(k: Kernels, values: Float32Array | Int32Array): Buf {
  const b = k.alloc(values.length, values instanceof Int32Array ? "i32" : "f32");
  k.upload(b, values);
  return b;
}
const get = (k: Kernels, b: Buf, n: number) => {
  const out = new Float32Array(n);
  k.download(b, out);
  return out;
};
function close(actual: Float32Array, expected: Float32Array, tol: number) {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)));
  expect(worst).toBeLessThan(tol);
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
      for (const [m, n, k] of [[1, 1, 1], [5, 9, 3], [13, 17, 33], [4, 8, 16], [37, 23, 65], [64, 130, 7], [101, 530, 19]]) {
        for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
          const batch = 2;
          const A = randoms(batch * m * k), B = randoms(batch * k * n), C = randoms(batch * m * n);
          const args = { m, n, k, transA, transB, accumulate: true, alpha: 0.5, batch };
          const [wa, wb, wc] = [put(w, A), put(w, B), put(w, C)];
          const [ra, rb, rc] = [put(r, A), put(r, B), put(r, C)];
          w.matmul({ out: wc, a: wa, b: wb, ...args });
          r.matmul({ out: rc, a: ra, b: rb, ...args });
          close(get(w, wc, C.length), get(r, rc, C.length), 1e-5);
        }
      }
    });

    it("attention forward and backward with a padding mask, AdamW, sums of squares", () => {
      const shape = { b: 2, t: 7, h: 3, d: 5 };
      const n = shape.b * shape.t * 3 * shape.h * shape.d, outN = n / 3;
      const qkv = randoms(n), dOut = randoms(outN);
      const mask = Int32Array.from({ length: 14 }, (_, i) => (i % 7 < 5 ? 1 : 0));
      const run = (k: Kernels) => {
        const q = put(k, qkv), m = put(k, mask), out = k.alloc(outN), saved = k.alloc(k.attentionSavedSize(shape)), dq = k.alloc(n);
        k.attention(out, saved, q, m, shape, 0.4);
        k.attentionBackward(dq, put(k, dOut), q, out, saved, m, shape, 0.4);
        return [get(k, out, outN), get(k, dq, n)];
      };
      const [wo, wd] = run(w), [ro, rd] = run(r);
      close(wo!, ro!, 1e-5);
      close(wd!, rd!, 1e-5);

      const N = 4099; // not a multiple of 4
      const p = randoms(N), g = randoms(N), mm = randoms(N), vv = randoms(N).map(Math.abs);
      const step = (k: Kernels) => {
        const bufs = [p, g, mm, vv].map((x) => put(k, x));
        k.adamw(bufs[0]!, bufs[1]!, bufs[2]!, bufs[3]!, N, { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 3 });
        return get(k, bufs[0]!, N);
      };
      close(step(w), step(r), 1e-6);
      const x = put(w, g), xr = put(r, g);
      const ws = w.sumSquares(x, N, 1000), rs = r.sumSquares(xr, N, 1000);
      expect(ws.length).toBe(5);
      ws.forEach((v, i) => expect(Math.abs(v - rs[i]!) / rs[i]!).toBeLessThan(1e-6));
    });

    it("repeats bit for bit, and a slice's elementwise update equals the whole vector's", () => {
      const A = randoms(33 * 65), B = randoms(65 * 47);
      const once = () => {
        const out = w.alloc(33 * 47);
        w.matmul({ out, a: put(w, A), b: put(w, B), m: 33, n: 47, k: 65 });
        return Buffer.from(get(w, out, 33 * 47).buffer);
      };
      expect(once().equals(once())).toBe(true);
      const N = 1001, p = randoms(N), g = randoms(N);
      const whole = put(w, p), grad = put(w, g), m = w.alloc(N), v = w.alloc(N);
      const args = { lr: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 1 };
      w.adamw(whole, grad, m, v, N, args);
      const parts = put(w, p), grad2 = put(w, g), m2 = w.alloc(N), v2 = w.alloc(N);
      for (const [s, e] of [[0, 3], [3, 517], [517, N]] as const) w.adamw(w.view(parts, s), w.view(grad2, s), w.view(m2, s), w.view(v2, s), e - s, args);
      expect(Buffer.from(get(w, parts, N).buffer).equals(Buffer.from(get(w, whole, N).buffer))).toBe(true);
    });

    it("refuses to grow past 4 GiB with an error naming the size", () => {
      expect(() => w.alloc(1.2e9)).toThrow(/cannot hold 4\.47 GiB: the limit is 4 GiB/);
    });
  });
}
