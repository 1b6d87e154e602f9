// The backend choice: which Kernels implementation this process computes with, and why.
//
// Owns: turning a `--backend` name (auto, wasm, cuda, reference) into kernels, a sentence
// saying what was chosen and why, and the backend's measured matmul throughput (the peak
// the dashboard divides by for model FLOP utilisation).
// Never: falls back silently: the reason always says what was asked and what runs.
import type { Kernels } from "./kernels.js";
import { createReferenceKernels } from "./kernels-reference.js";
import { createWasmKernels } from "../kernels-wasm/index.js";

/**
 * The kernels of this process: "reference" on request, else WebAssembly (relaxed SIMD
 * where the engine has it). "auto" and "cuda" say so in the reason when no GPU backend
 * is available here.
 */
export async function createBackend(backend: string): Promise<{ kernels: Kernels; reason: string }> {
  if (backend === "reference") return { kernels: createReferenceKernels(), reason: "asked for the reference kernels" };
  const kernels = await createWasmKernels();
  const simd = kernels.name === "wasm-relaxed" ? "WebAssembly relaxed SIMD" : "WebAssembly SIMD";
  const reason = backend === "wasm" ? simd : `${simd}: no CUDA backend in this build`;
  return { kernels, reason };
}

/**
 * The backend's matmul throughput in FLOP/s, measured on a square product of `size`
 * (best of `repeats`): the peak that model FLOP utilisation is a share of. A few
 * milliseconds on the WebAssembly backend.
 */
export function measurePeakFlops(k: Kernels, size = 256, repeats = 5): number {
  const n = size * size;
  const a = k.alloc(3 * n); // a, b and out side by side
  const b = k.view(a, n);
  const out = k.view(a, 2 * n);
  try {
    k.fill(a, 2 * n, 0.5);
    let best = Infinity;
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      k.matmul({ out, a, b, m: size, n: size, k: size });
      best = Math.min(best, performance.now() - t0);
    }
    return (2 * size ** 3) / (Math.max(best, 1e-3) / 1000);
  } finally {
    k.free(a);
  }
}
