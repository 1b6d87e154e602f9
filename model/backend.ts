// The backend choice: which Kernels implementation this process computes with, and why.
//
// Owns: turning a `--backend` name (auto, wasm, cuda, reference) into kernels, a sentence
// saying what was chosen and why (for a GPU: the device's name, memory and the matmul path),
// and the backend's measured matmul throughput (the peak the dashboard divides by for model
// FLOP utilisation).
// Never: falls back silently: the reason always says what was asked and what runs. `cuda`
// never falls back at all: where no device answers it is one clear error.
import type { Kernels } from "./kernels.js";
import { createReferenceKernels } from "./kernels-reference.js";
import { createWasmKernels } from "../kernels-wasm/index.js";
import { type CudaAddon, createCudaKernels, loadCudaAddon } from "../kernels-cuda/index.js";
import { UserError } from "../runtime/errors.js";

export interface BackendOptions {
  /** Loads the CUDA addon; tests hand in the CPU emulation or a stand-in. Throws with the reason. */
  loadCuda?: () => CudaAddon;
}

/**
 * The CUDA kernels, or the sentence saying why there are none here: the addon is not built
 * (no nvcc at build time), it does not load, or no device answers.
 */
export function tryCuda(loadCuda: () => CudaAddon = loadCudaAddon): { kernels: Kernels; reason: string } | { reason: string } {
  let addon: CudaAddon;
  try {
    addon = loadCuda();
  } catch (err) {
    return { reason: (err as Error).message };
  }
  const device = addon.deviceInfo();
  if (device.count <= 0) return { reason: `no CUDA device: cudaGetDeviceCount said ${device.error || "0 devices"}` };
  try {
    const kernels = createCudaKernels(addon);
    const memory = device.totalBytes ? `, ${(device.totalBytes / 1024 ** 3).toFixed(0)} GiB` : "";
    const capability = device.capability && !device.emulated ? `, compute capability ${device.capability}` : "";
    const sms = device.multiprocessors ? `, ${device.multiprocessors} SMs` : "";
    return { kernels, reason: `CUDA on ${device.name ?? "device 0"}${memory}${capability}${sms}; matmul: ${kernels.matmulNote}` };
  } catch (err) {
    return { reason: `the CUDA device did not start: ${(err as Error).message}` };
  }
}

/**
 * The kernels of this process: "reference" on request; "cuda" or an error; "auto" CUDA where
 * the addon loads and a device answers, else WebAssembly (relaxed SIMD where the engine has
 * it) with the reason CUDA is not used; "wasm" WebAssembly. "sim" (simulated compute actors,
 * model/sim-model.ts, which load no kernels) is WebAssembly for what such a run still
 * computes: the shards' norms and AdamW, and `train --local`'s.
 */
export async function createBackend(backend: string, opts: BackendOptions = {}): Promise<{ kernels: Kernels; reason: string }> {
  if (backend === "reference") return { kernels: createReferenceKernels(), reason: "asked for the reference kernels" };
  let why = "";
  if (backend === "sim") {
    why = "compute actors are simulated (backend sim); the optimizer runs here";
  } else if (backend === "cuda" || backend === "auto") {
    const cuda = tryCuda(opts.loadCuda);
    if ("kernels" in cuda) return cuda;
    // A UserError: the CLI prints its message as one line, without a stack.
    if (backend === "cuda") throw new UserError(`--backend cuda: ${cuda.reason}`);
    why = cuda.reason;
  } else if (backend !== "wasm") {
    throw new UserError(`unknown backend "${backend}": use auto, wasm, cuda, sim or reference`);
  }
  const kernels = await createWasmKernels();
  const simd = kernels.name === "wasm-relaxed" ? "WebAssembly relaxed SIMD" : "WebAssembly SIMD";
  return { kernels, reason: why ? `${simd}: ${why}` : simd };
}

/**
 * The backend's matmul throughput in FLOP/s, measured on a square product of `size`
 * (best of `repeats`): the peak that model FLOP utilisation is a share of. A few
 * milliseconds on the WebAssembly backend; on CUDA a 4096³ product, since a small one
 * measures launch latency rather than the GPU. Each timing ends with a one-element
 * download, which waits for the device.
 */
export function measurePeakFlops(k: Kernels, size = k.name === "cuda" ? 4096 : 256, repeats = 5): number {
  const n = size * size;
  const a = k.alloc(3 * n); // a, b and out side by side
  const b = k.view(a, n);
  const out = k.view(a, 2 * n);
  const one = new Float32Array(1);
  try {
    k.fill(a, 2 * n, 0.5);
    k.download(out, one);
    let best = Infinity;
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      k.matmul({ out, a, b, m: size, n: size, k: size });
      k.download(out, one);
      best = Math.min(best, performance.now() - t0);
    }
    return (2 * size ** 3) / (Math.max(best, 1e-3) / 1000);
  } finally {
    k.free(a);
  }
}
