// The CUDA backend of the Kernels interface, over the native addon built from kernels-cuda/src.
//
// Owns: finding and loading the addon (the GPU build, kernels-cuda/build, or the CPU emulation
// of the same sources, kernels-cuda/emulated/build), the device's description, and the thin
// dispatch from Kernels calls to the addon's functions. A Buf is a device address in bytes;
// view() adds 4 bytes per element.
// Never: touches device memory from JavaScript, or hides a failure: the addon throws with the
// CUDA error, and a missing build or device is an error naming which.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Buf, Kernels, MatmulArgs } from "../model/kernels.js";

/** What the addon says about the device it runs on (device 0). */
export interface CudaDevice {
  /** cudaGetDeviceCount's answer (0 when it failed). */
  count: number;
  /** cudaGetDeviceCount's error string, empty when it succeeded. */
  error: string;
  name?: string;
  totalBytes?: number;
  /** compute capability, "9.0" on an H100/H200 */
  capability?: string;
  multiprocessors?: number;
  emulated: boolean;
}

type Addr = number;
/** The addon's functions, as src/addon.cc registers them (addresses are numbers of bytes). */
export interface CudaAddon {
  deviceInfo(): CudaDevice;
  init(matmul: "tf32" | "fp32" | "own"): string;
  alloc(bytes: number): Addr;
  free(p: Addr): void;
  memory(): { reservedBytes: number; inUseBytes: number };
  upload(dst: Addr, src: Float32Array | Int32Array): void;
  download(src: Addr, dst: Float32Array | Int32Array): void;
  synchronize(): void;
  fill(x: Addr, n: number, value: number): void;
  copy(dst: Addr, src: Addr, n: number): void;
  scale(x: Addr, n: number, s: number): void;
  add(out: Addr, a: Addr, b: Addr, n: number): void;
  axpy(y: Addr, x: Addr, n: number, alpha: number): void;
  sumSquares(x: Addr, n: number, chunk: number): Float64Array;
  matmul(...args: [Addr, Addr, Addr, number, number, number, boolean, boolean, boolean, number, number, number, number, number]): void;
  addBias(x: Addr, bias: Addr, rows: number, cols: number): void;
  biasBackward(dBias: Addr, dOut: Addr, rows: number, cols: number, accumulate: boolean): void;
  gelu(out: Addr, inp: Addr, n: number, erf: number): void;
  geluBackward(dInp: Addr, inp: Addr, dOut: Addr, n: number, erf: number): void;
  swiglu(out: Addr, inp: Addr, rows: number, hidden: number): void;
  swigluBackward(dInp: Addr, inp: Addr, dOut: Addr, rows: number, hidden: number): void;
  tanh(out: Addr, inp: Addr, n: number): void;
  tanhBackward(dInp: Addr, out: Addr, dOut: Addr, n: number): void;
  dropout(out: Addr, inp: Addr, n: number, p: number, seed: number, counter: number): void;
  layerNorm(out: Addr, mean: Addr, rstd: Addr, inp: Addr, weight: Addr, bias: Addr, rows: number, cols: number, eps: number): void;
  layerNormBackward(dInp: Addr, dW: Addr, dB: Addr, dOut: Addr, inp: Addr, w: Addr, mean: Addr, rstd: Addr, rows: number, cols: number): void;
  rmsNorm(out: Addr, rstd: Addr, inp: Addr, weight: Addr, rows: number, cols: number, eps: number): void;
  rmsNormBackward(dInp: Addr, dW: Addr, dOut: Addr, inp: Addr, w: Addr, rstd: Addr, rows: number, cols: number): void;
  rope(qkv: Addr, b: number, t: number, h: number, d: number, base: number, inverse: boolean): void;
  attention(out: Addr, saved: Addr, qkv: Addr, mask: Addr, b: number, t: number, h: number, d: number, scale: number, p: number, seed: number): void;
  attentionBackward(...args: [Addr, Addr, Addr, Addr, Addr, Addr, number, number, number, number, number, number, number]): void;
  embedding(out: Addr, table: Addr, ids: Addr, n: number, dim: number, accumulate: boolean): void;
  embeddingBackward(dTable: Addr, dOut: Addr, ids: Addr, n: number, dim: number): void;
  crossEntropy(losses: Addr, dLogits: Addr, logits: Addr, labels: Addr, rows: number, vocab: number, gradScale: number): void;
  adamw(p: Addr, g: Addr, m: Addr, v: Addr, n: number, lr: number, b1: number, b2: number, eps: number, wd: number, c1: number, c2: number): void;
}

export type CudaBuild = "device" | "emulated";

function rootDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) dir = dirname(dir);
  return dir;
}

/** Where the addon of `build` lies once built (`npm run build`, or build-native.mjs). */
export function cudaAddonPath(build: CudaBuild): string {
  return build === "device"
    ? join(rootDir(), "kernels-cuda", "build", "Release", "aze_cuda.node")
    : join(rootDir(), "kernels-cuda", "emulated", "build", "Release", "aze_cuda_emulated.node");
}

/**
 * Loads the addon; throws with a sentence saying why it cannot. AZE_CUDA_ADDON=emulated makes
 * the default the CPU emulation, so a whole training run can go through the CUDA kernels on a
 * machine without a GPU (slowly: for tests).
 */
export function loadCudaAddon(build: CudaBuild = process.env.AZE_CUDA_ADDON === "emulated" ? "emulated" : "device"): CudaAddon {
  const file = cudaAddonPath(build);
  if (!existsSync(file))
    throw new Error(
      build === "device"
        ? `the CUDA addon is not built (${file} is missing: nvcc was not found when \`npm run build\` ran)`
        : `the emulated CUDA addon is not built (${file} is missing: run \`node scripts/build-native.mjs kernels-cuda/emulated\`)`,
    );
  try {
    return createRequire(import.meta.url)(file) as CudaAddon;
  } catch (err) {
    throw new Error(`the CUDA addon did not load: ${(err as Error).message.split("\n")[0]}`);
  }
}

export interface CudaKernels extends Kernels {
  readonly device: CudaDevice;
  /** Which matmul runs: cuBLASLt (with its path) or the own GEMM, and why. */
  readonly matmulNote: string;
  /** Waits for every queued kernel (for timing; results are read through download anyway). */
  synchronize(): void;
  memory(): { reservedBytes: number; inUseBytes: number };
}

/**
 * Kernels over `addon`. `matmul`: "tf32" (cuBLASLt with TF32 tensor cores, the default),
 * "fp32" (cuBLASLt in full fp32, for tests against the reference), "own" (the tiled GEMM).
 * The addon has one device, one stream and one matmul mode per process: the latest call
 * sets the mode for every Kernels object over it (the checks create them one after another).
 * Throws where no device answers.
 */
export function createCudaKernels(addon: CudaAddon, { matmul = "tf32" }: { matmul?: "tf32" | "fp32" | "own" } = {}): CudaKernels {
  const device = addon.deviceInfo();
  if (device.count <= 0) throw new Error(`no CUDA device: cudaGetDeviceCount said ${device.error || "0 devices"}`);
  const matmulNote = addon.init(matmul);
  const at = (b: Buf | null) => (b === null ? 0 : (b as number));
  const dropArgs = (d: { p: number; seed: number } | undefined) => (d && d.p > 0 ? [d.p, d.seed >>> 0] : [0, 0]);

  const k: CudaKernels = {
    name: "cuda",
    device,
    matmulNote,
    synchronize: () => addon.synchronize(),
    memory: () => addon.memory(),

    alloc: (count) => addon.alloc(Math.max(1, count) * 4) as Buf,
    free: (buf) => addon.free(buf),
    view: (buf, offset) => (buf + offset * 4) as Buf,
    upload: (dst, src) => addon.upload(dst, src),
    download: (src, dst) => addon.download(src, dst),

    fill: (x, n, value) => addon.fill(x, n, value),
    copy: (dst, src, n) => addon.copy(dst, src, n),
    scale: (x, n, s) => addon.scale(x, n, s),
    add: (out, a, b, n) => addon.add(out, a, b, n),
    axpy: (y, x, n, alpha) => addon.axpy(y, x, n, alpha),
    sumSquares: (x, n, chunk) => addon.sumSquares(x, n, chunk),

    matmul({ out, a, b, m, n, k: kk, transA, transB, accumulate, alpha = 1, batch = 1, strideA, strideB, strideOut }: MatmulArgs) {
      addon.matmul(out, a, b, m, n, kk, !!transA, !!transB, !!accumulate, alpha, batch, strideA ?? m * kk, strideB ?? kk * n, strideOut ?? m * n);
    },

    addBias: (x, bias, rows, cols) => addon.addBias(x, bias, rows, cols),
    biasBackward: (dBias, dOut, rows, cols, accumulate) => addon.biasBackward(dBias, dOut, rows, cols, accumulate),
    gelu: (out, inp, n, a) => addon.gelu(out, inp, n, a === "erf" ? 1 : 0),
    geluBackward: (dInp, inp, dOut, n, a) => addon.geluBackward(dInp, inp, dOut, n, a === "erf" ? 1 : 0),
    swiglu: (out, inp, rows, hidden) => addon.swiglu(out, inp, rows, hidden),
    swigluBackward: (dInp, inp, dOut, rows, hidden) => addon.swigluBackward(dInp, inp, dOut, rows, hidden),
    tanh: (out, inp, n) => addon.tanh(out, inp, n),
    tanhBackward: (dInp, out, dOut, n) => addon.tanhBackward(dInp, out, dOut, n),
    // seed and counter are uint32 in the hash: >>> 0 keeps them so across the boundary.
    dropout: (out, inp, n, p, seed, counter) => (p === 0 ? k.copy(out, inp, n) : addon.dropout(out, inp, n, p, seed >>> 0, counter >>> 0)),
    dropoutBackward: (dInp, dOut, n, p, seed, counter) => k.dropout(dInp, dOut, n, p, seed, counter),

    layerNorm: (out, mean, rstd, inp, weight, bias, rows, cols, eps) => addon.layerNorm(out, mean, rstd, inp, weight, at(bias), rows, cols, eps),
    layerNormBackward: (dInp, dWeight, dBias, dOut, inp, weight, mean, rstd, rows, cols) =>
      addon.layerNormBackward(dInp, dWeight, at(dBias), dOut, inp, weight, mean, rstd, rows, cols),
    rmsNorm: (out, rstd, inp, weight, rows, cols, eps) => addon.rmsNorm(out, rstd, inp, weight, rows, cols, eps),
    rmsNormBackward: (dInp, dWeight, dOut, inp, weight, rstd, rows, cols) => addon.rmsNormBackward(dInp, dWeight, dOut, inp, weight, rstd, rows, cols),

    rope: (qkv, { b, t, h, d }, base, inverse) => addon.rope(qkv, b, t, h, d, base, inverse),
    // Flash-style attention keeps only each query row's log-sum-exp between forward and backward.
    attentionSavedSize: ({ b, t, h }) => b * h * t,
    attention(out, saved, qkv, mask, { b, t, h, d }, scale, dropout) {
      const [p, seed] = dropArgs(dropout);
      addon.attention(out, saved, qkv, mask, b, t, h, d, scale, p!, seed!);
    },
    attentionBackward(dQkv, dOut, qkv, out, saved, mask, { b, t, h, d }, scale, dropout) {
      const [p, seed] = dropArgs(dropout);
      addon.attentionBackward(dQkv, dOut, qkv, out, saved, mask, b, t, h, d, scale, p!, seed!);
    },

    embedding: (out, table, ids, n, dim, accumulate) => addon.embedding(out, table, ids, n, dim, accumulate),
    embeddingBackward: (dTable, dOut, ids, n, dim) => addon.embeddingBackward(dTable, dOut, ids, n, dim),
    crossEntropy: (losses, dLogits, logits, labels, rows, vocab, gradScale) => addon.crossEntropy(losses, dLogits, logits, labels, rows, vocab, gradScale),
    adamw: (p, g, m, v, n, a) =>
      addon.adamw(p, g, m, v, n, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, 1 - Math.pow(a.beta1, a.step), 1 - Math.pow(a.beta2, a.step)),
  };
  return k;
}
