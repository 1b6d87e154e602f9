// The document mask keeps packed documents apart: attention over a sequence whose mask
// numbers its documents (1, 2, …; 0 for padding) gives each document the output and the
// gradient it gets alone in a sequence of its own, on the reference and the WebAssembly
// kernels; a 0/1 mask stays the plain key padding mask.
import { beforeAll, describe, expect, it } from "vitest";
import { createWasmKernels } from "../../kernels-wasm/index.js";
import { get, put, randomsFrom, worstError } from "../../model/kernel-probes.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import type { AttentionShape, Kernels } from "../../model/kernels.js";

const h = 2;
const d = 37; // the SIMD paths with their scalar tails

/** Attention forward and backward of one sequence: out (T,H,D) and dQkv (T,3,H,D). */
function attend(k: Kernels, qkv: Float32Array, dOut: Float32Array, mask: Int32Array): [Float32Array, Float32Array] {
  const shape: AttentionShape = { b: 1, t: mask.length, h, d };
  const n = qkv.length;
  const q = put(k, qkv),
    m = put(k, mask),
    out = k.alloc(n / 3),
    saved = k.alloc(k.attentionSavedSize(shape)),
    dq = k.alloc(n);
  k.attention(out, saved, q, m, shape, 0.3);
  k.attentionBackward(dq, put(k, dOut), q, out, saved, m, shape, 0.3);
  return [get(k, out, n / 3), get(k, dq, n)];
}

describe("the document mask", () => {
  let wasm: Kernels;
  const reference = createReferenceKernels();
  beforeAll(async () => {
    wasm = await createWasmKernels();
  });

  it("gives each packed document what it gets alone, on every CPU backend", () => {
    // Documents of 5, 1 and 6 positions, then 3 of padding.
    const mask = Int32Array.from([1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 0, 0, 0]);
    const T = mask.length;
    const row = 3 * h * d;
    const qkv = randomsFrom(T * row, 17).map((v) => 2 * v);
    // No gradient reaches padding rows in training (they have no labels); padding queries see
    // every real key, so a gradient there would flow into every document.
    const dOut = randomsFrom((T * row) / 3, 18).fill(0, (mask.indexOf(0) * row) / 3);
    for (const k of [reference, wasm]) {
      const [out, dq] = attend(k, qkv, dOut, mask);
      for (const document of [1, 2, 3]) {
        const from = mask.indexOf(document);
        const to = mask.lastIndexOf(document) + 1;
        const [aloneOut, aloneDq] = attend(k, qkv.slice(from * row, to * row), dOut.slice((from * row) / 3, (to * row) / 3), new Int32Array(to - from).fill(1));
        expect(worstError(out.slice((from * row) / 3, (to * row) / 3), aloneOut)).toBeLessThan(1e-6);
        expect(worstError(dq.slice(from * row, to * row), aloneDq)).toBeLessThan(1e-6);
      }
    }
    const [wo, wd] = attend(wasm, qkv, dOut, mask);
    const [ro, rd] = attend(reference, qkv, dOut, mask);
    expect(worstError(wo, ro)).toBeLessThan(1e-5);
    expect(worstError(wd, rd)).toBeLessThan(1e-5);
  });

  it("is the padding mask where every real token holds 1: padding rows still see every real key", () => {
    const plain = Int32Array.from([1, 1, 1, 1, 1, 1, 0, 0]);
    const numbered = Int32Array.from([1, 1, 1, 2, 2, 2, 0, 0]);
    const row = 3 * h * d;
    const qkv = randomsFrom(plain.length * row, 21);
    const dOut = randomsFrom((plain.length * row) / 3, 22);
    for (const k of [reference, wasm]) {
      const [plainOut] = attend(k, qkv, dOut, plain);
      const [numberedOut] = attend(k, qkv, dOut, numbered);
      // Padding rows (6, 7) attend to all six real keys either way; real rows differ.
      expect(Array.from(numberedOut.slice((6 * row) / 3))).toEqual(Array.from(plainOut.slice((6 * row) / 3)));
      expect(worstError(numberedOut.slice(0, row / 3), plainOut.slice(0, row / 3))).toBeGreaterThan(1e-4);
    }
  });
});
