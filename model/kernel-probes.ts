// Small tools for comparing one Kernels implementation with another: the same pseudo-random
// inputs for a key, moving arrays in and out of a backend, and the error measure every
// backend check uses. Shared by the WebAssembly and CUDA tests and the GPU check
// (kernels-cuda/check.ts), which runs with no test framework.
// Never: asserts; callers decide what error is acceptable.
import type { Buf, Kernels } from "./kernels.js";

/** The same values in [-1, 1) every call for one `key` (each case runs on both backends). */
export function randomsFrom(n: number, key: number): Float32Array {
  let s = key >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** A new buffer on `k` holding `values` (i32 for an Int32Array). */
export function put(k: Kernels, values: Float32Array | Int32Array): Buf {
  const b = k.alloc(values.length, values instanceof Int32Array ? "i32" : "f32");
  k.upload(b, values);
  return b;
}

/** The first `n` f32 values of a buffer. */
export function get(k: Kernels, b: Buf, n: number): Float32Array {
  const out = new Float32Array(n);
  k.download(b, out);
  return out;
}

/** The largest error relative to max(1, |expected|); a NaN counts as infinite. */
export function worstError(actual: Float32Array, expected: Float32Array): number {
  let w = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!));
    w = Math.max(w, Number.isNaN(e) ? Infinity : e);
  }
  return w;
}

/** Whether two arrays hold the same bytes (so -0 and 0, or two NaNs' payloads, can differ). */
export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
