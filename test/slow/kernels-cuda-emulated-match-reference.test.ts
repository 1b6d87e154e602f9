// The CUDA kernels (kernels-cuda/src/*.cu), compiled by g++ against the emulation header and
// driven through the same addon and TypeScript dispatch as on a GPU, agree with the reference
// on odd shapes: sizes that are not multiples of a warp (32), of the GEMM's 64×64 tile and 16
// deep K step, of attention's 32-key tiles, of the 256-row column parts and of a 256-thread
// block. They repeat bit for bit, and a slice's AdamW update equals the whole vector's.
//
// This proves the kernels' arithmetic, indexing, bounds, barriers and shuffles. It does not
// prove speed, the GPU memory model or anything about tensor cores (docs/kernels.md).
import { beforeAll, describe, expect, it } from "vitest";
import { emulatedCudaKernels, hasCompiler } from "../helpers/cuda-emulation.js";
import type { CudaKernels } from "../../kernels-cuda/index.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { bitsEqual, get, put, randomsFrom, worstError } from "../../model/kernel-probes.js";
import type { AttentionShape, Buf, Kernels } from "../../model/kernels.js";

if (!hasCompiler) console.log("kernels-cuda emulation: skipped, no C++ compiler on this machine");

let nextKey = 1;
const randoms = (n: number) => randomsFrom(n, nextKey++ * 7919);

describe.skipIf(!hasCompiler)("CUDA kernels under the CPU emulation", () => {
  let c: CudaKernels;
  const r = createReferenceKernels();
  beforeAll(() => {
    c = emulatedCudaKernels();
  }, 600_000);

  it("names the emulated device and the own GEMM", () => {
    expect(c.device).toMatchObject({ count: 1, emulated: true });
    expect(c.matmulNote).toMatch(/own tiled GEMM/);
  });

  it("matmul in every layout, with accumulate, alpha and batches, across the 64×64 tiles and K steps of 16", () => {
    for (const [m, n, k] of [
      [1, 1, 1],
      [5, 9, 3],
      [13, 17, 33],
      [37, 23, 65],
      [65, 70, 17],
      [3, 4, 0],
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
        const run = (kk: Kernels) => {
          const out = put(kk, C);
          kk.matmul({ out, a: put(kk, A), b: put(kk, B), ...args });
          return get(kk, out, C.length);
        };
        expect(worstError(run(c), run(r)), `${m}x${n}x${k} ${transA} ${transB}`).toBeLessThan(1e-5);
      }
    }
    // Overwrite rather than accumulate, with strides that leave gaps between the batches.
    const run = (kk: Kernels) => {
      const out = put(kk, randomsFrom(2 * 40, 3));
      kk.matmul({
        out,
        a: put(kk, randomsFrom(2 * 30, 4)),
        b: put(kk, randomsFrom(2 * 30, 5)),
        m: 5,
        n: 6,
        k: 5,
        batch: 2,
        strideA: 30,
        strideB: 30,
        strideOut: 40,
      });
      return get(kk, out, 80);
    };
    expect(worstError(run(c), run(r))).toBeLessThan(1e-5);
  });

  it("attention forward and backward with padding (a fully padded sequence too) or a document mask, with and without dropout, at head sizes 5, 37 and 72", () => {
    const cases: [AttentionShape, Int32Array][] = [
      // d = 5: one thread per row; the second sequence is all padding (its rows attend to nothing).
      [{ b: 2, t: 7, h: 3, d: 5 }, Int32Array.from({ length: 14 }, (_, i) => (i < 5 ? 1 : 0))],
      // d = 37: groups of 4 threads per row, two tiles of 32 keys, padding in the second tile.
      [{ b: 2, t: 33, h: 1, d: 37 }, Int32Array.from({ length: 66 }, (_, i) => (i % 33 < 30 || i >= 33 ? 1 : 0))],
      // d = 72: groups of 8 threads (head sizes up to 128).
      [{ b: 1, t: 9, h: 1, d: 72 }, Int32Array.from({ length: 9 }, (_, i) => (i < 8 ? 1 : 0))],
      // A document mask (packed documents numbered 1, 2, 3; then padding), documents across the tile boundary.
      [{ b: 1, t: 40, h: 2, d: 37 }, Int32Array.from({ length: 40 }, (_, i) => (i < 20 ? 1 : i < 21 ? 2 : i < 36 ? 3 : 0))],
    ];
    for (const [shape, mask] of cases) {
      const n = shape.b * shape.t * 3 * shape.h * shape.d,
        outN = n / 3;
      const qkv = Float32Array.from(randoms(n), (v) => 2 * v),
        dOut = randoms(outN);
      const run = (k: Kernels, dropout?: { p: number; seed: number }) => {
        const q = put(k, qkv),
          m = put(k, mask),
          out = k.alloc(outN),
          saved = k.alloc(k.attentionSavedSize(shape)),
          dq = k.alloc(n);
        k.attention(out, saved, q, m, shape, 0.4, dropout);
        k.attentionBackward(dq, put(k, dOut), q, out, saved, m, shape, 0.4, dropout);
        return [get(k, out, outN), get(k, dq, n)];
      };
      for (const dropout of [undefined, { p: 0.25, seed: 0xdeadbeef | 0 }]) {
        const [co, cd] = run(c, dropout),
          [ro, rd] = run(r, dropout);
        const what = `${JSON.stringify(shape)} dropout ${dropout?.p ?? 0}`;
        expect(worstError(co!, ro!), `${what}: out`).toBeLessThan(1e-5);
        expect(worstError(cd!, rd!), `${what}: dQkv`).toBeLessThan(1e-5);
        if (dropout && shape.d === 37) {
          const [co2, cd2] = run(c, dropout);
          expect(bitsEqual(co!, co2!) && bitsEqual(cd!, cd2!), `${what}: repeats bit for bit`).toBe(true);
        }
      }
    }
  });

  it("matmul repeats bit for bit; AdamW and sums of squares match, and a slice's update equals the whole's", () => {
    const A = randoms(33 * 65),
      B = randoms(65 * 47);
    const once = () => {
      const out = c.alloc(33 * 47);
      c.matmul({ out, a: put(c, A), b: put(c, B), m: 33, n: 47, k: 65 });
      return get(c, out, 33 * 47);
    };
    expect(bitsEqual(once(), once())).toBe(true);

    const N = 4099; // not a multiple of a block of 256
    const p = randoms(N),
      g = randoms(N),
      mm = randoms(N),
      vv = randoms(N).map(Math.abs);
    const args = { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01, step: 3 };
    const step = (k: Kernels) => {
      const bufs = [p, g, mm, vv].map((x) => put(k, x));
      k.adamw(bufs[0]!, bufs[1]!, bufs[2]!, bufs[3]!, N, args);
      return [0, 2, 3].map((i) => get(k, bufs[i]!, N));
    };
    const [cs, rs] = [step(c), step(r)];
    for (const i of [0, 1, 2]) expect(worstError(cs[i]!, rs[i]!)).toBeLessThan(1e-6);

    const sums = c.sumSquares(put(c, g), N, 1000),
      want = r.sumSquares(put(r, g), N, 1000);
    expect(sums.length).toBe(5);
    for (const [i, v] of sums.entries()) expect(Math.abs(v - want[i]!) / want[i]!).toBeLessThan(1e-9);

    const whole = put(c, p),
      grad = put(c, g),
      m = put(c, mm),
      v = put(c, vv);
    c.adamw(whole, grad, m, v, N, args);
    const parts = put(c, p),
      m2 = put(c, mm),
      v2 = put(c, vv);
    for (const [s, e] of [
      [0, 3],
      [3, 517],
      [517, N],
    ] as const)
      c.adamw(c.view(parts, s), c.view(grad, s), c.view(m2, s), c.view(v2, s), e - s, args);
    expect(bitsEqual(get(c, parts, N), get(c, whole, N))).toBe(true);
  });

  it("add, axpy, scale, fill and copy (overlapping too)", () => {
    const n = 1001;
    const x = randoms(n),
      y = randoms(n);
    const run = (k: Kernels) => {
      const a = put(k, x),
        b = put(k, y),
        o = k.alloc(n);
      k.add(o, a, b, n);
      k.axpy(b, a, n, -0.75);
      k.scale(a, n, 1.5);
      const f = k.alloc(n);
      k.fill(f, 700, 0.25);
      const cp = put(k, x);
      k.copy(k.view(cp, 10), cp, 500); // overlapping ranges: memmove semantics
      return [get(k, o, n), get(k, b, n), get(k, a, n), get(k, f, n), get(k, cp, n)];
    };
    const [got, want] = [run(c), run(r)];
    for (const [i, g] of got.entries()) expect(worstError(g, want[i]!), `output ${i}`).toBeLessThan(1e-6);
  });

  it("activations, bias, dropout, norms, RoPE, embeddings and cross-entropy match the reference on odd shapes", () => {
    // 300 rows: two column parts of 256 rows for the bias and norm-weight gradients (narrow,
    // so that the emulation stays quick).
    for (const [rows, cols] of [
      [7, 37],
      [300, 9],
    ] as const) {
      const n = rows * cols,
        hidden = Math.floor(cols / 2) - 1; // rows · 2 · hidden ≤ n
      const x = randoms(n),
        y = randoms(n),
        wgt = randoms(cols),
        bias = randoms(cols),
        acc = randoms(cols);
      const ids = Int32Array.from({ length: 37 }, (_, i) => (i * 5) % Math.min(rows, 11)); // repeats, out of order
      const labels = Int32Array.from({ length: rows }, (_, i) => (i % 3 === 1 ? -100 : (i * 13) % cols));
      const outs = (k: Kernels, bufs: Buf[], sizes: number[]) => bufs.map((b, i) => get(k, b, sizes[i]!));
      // The weight gradients sum `rows` values in float, the reference in double.
      const normTol = rows > 32 ? 1e-5 : 3e-6;
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
        "tanh, forward and backward",
        (k) => {
          const o = k.alloc(n),
            d = k.alloc(n);
          k.tanh(o, put(k, x), n);
          k.tanhBackward(d, put(k, x), put(k, y), n);
          return outs(k, [o, d], [n, n]);
        },
        1e-6,
      ]);
      cases.push([
        "swiglu, forward and backward",
        (k) => {
          const o = k.alloc(rows * hidden),
            d = k.alloc(rows * 2 * hidden),
            inp = put(k, x.subarray(0, rows * 2 * hidden));
          k.swiglu(o, inp, rows, hidden);
          k.swigluBackward(d, inp, put(k, y.subarray(0, rows * hidden)), rows, hidden);
          return outs(k, [o, d], [rows * hidden, rows * 2 * hidden]);
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
        1e-5, // sums of 300 rows in float, against the reference's double
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
          normTol,
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
        normTol,
      ]);
      const shape = { b: 2, t: 5, h: 3, d: 10 }; // D/2 = 5 pairs
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
      const table = randoms(Math.min(rows, 11) * cols);
      cases.push([
        "embedding and its scatter-add (repeated ids, summed in token order)",
        (k) => {
          const t = put(k, table),
            o = put(k, randomsFrom(ids.length * cols, 6)),
            o2 = k.alloc(ids.length * cols),
            i = put(k, ids);
          k.embedding(o, t, i, ids.length, cols, true);
          k.embedding(o2, t, i, ids.length, cols, false);
          const dTable = put(k, table);
          k.embeddingBackward(dTable, put(k, randomsFrom(ids.length * cols, 7)), i, ids.length, cols);
          return outs(k, [o, o2, dTable], [ids.length * cols, ids.length * cols, table.length]);
        },
        0,
      ]);
      // One block per row: the tall case would cost the emulation 300 blocks for nothing new.
      if (rows < 32)
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
        const t0 = performance.now();
        const [got, want] = [run(c), run(r)];
        if (process.env.AZE_TIME_CASES) console.log(name, rows, Math.round(performance.now() - t0), "ms");
        expect(got.length, name).toBe(want.length);
        got.forEach((g, i) => {
          if (tol === 0) expect(bitsEqual(g, want[i]!), `${name} (${rows}x${cols}), output ${i}: bit for bit`).toBe(true);
          else expect(worstError(g, want[i]!), `${name} (${rows}x${cols}), output ${i}`).toBeLessThan(tol);
        });
      }
    }
  });

  it("frees into a cache and refuses to free what it did not allocate", () => {
    const before = c.memory().inUseBytes;
    const b = c.alloc(1000);
    expect(c.memory().inUseBytes).toBeGreaterThan(before);
    c.free(b);
    expect(c.memory().inUseBytes).toBe(before);
    expect(() => c.free(c.view(b, 1))).toThrow(/not an allocated buffer/);
  });
});
