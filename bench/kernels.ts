// bench:kernels — matmul GFLOP/s of the WebAssembly kernels (SIMD and relaxed SIMD) and of
// the naive TypeScript reference, at 256³, 512³, 1024³ and allma-small's FFN shape
// (8·128 tokens × 512 × 2048), one encoder layer's forward+backward at that shape, and,
// when python3 has numpy, numpy's single-threaded float32 matmul in the same run: with the
// machine's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides and without them, naming the BLAS
// numpy really used (a reference BLAS gets no ratio), beside the WebAssembly SIMD ceiling.
// Medians of several repetitions; this machine's speed varies between processes.
import { createWasmKernels } from "../kernels-wasm/index.js";
import { presets, modelConfigSchema } from "../model/config.js";
import { Encoder } from "../model/encoder.js";
import { createReferenceKernels } from "../model/kernels-reference.js";
import type { Kernels } from "../model/kernels.js";
import { initParameters, parameterLayout } from "../model/layout.js";
import { median, openblasOverrides, pythonFigure, ratioAgainst, wasmCeilingGflops, type PeerFigure } from "./peers.js";

const shapes: [string, number, number, number][] = [
  ["256³", 256, 256, 256],
  ["512³", 512, 512, 512],
  ["1024³", 1024, 1024, 1024],
  ["allma-small FFN (1024×2048×512)", 1024, 2048, 512],
];

function matmulGflops(k: Kernels, m: number, n: number, kk: number, reps: number): number {
  const a = k.alloc(m * kk),
    b = k.alloc(kk * n),
    out = k.alloc(m * n);
  k.upload(
    a,
    Float32Array.from({ length: m * kk }, (_, i) => Math.sin(i)),
  );
  k.upload(
    b,
    Float32Array.from({ length: kk * n }, (_, i) => Math.cos(i)),
  );
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    k.matmul({ out, a, b, m, n, k: kk });
    times.push(performance.now() - t0);
  }
  for (const x of [a, b, out]) k.free(x);
  return (2 * m * n * kk) / (median(times) / 1000) / 1e9;
}

function numpyGflops(m: number, n: number, k: number, env: Record<string, string | undefined> = {}): PeerFigure | undefined {
  const script = `
import numpy as np, time
a = np.random.rand(${m}, ${k}).astype(np.float32); b = np.random.rand(${k}, ${n}).astype(np.float32)
ts = []
for _ in range(7):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(2*${m}*${n}*${k} / sorted(ts)[3] / 1e9)`;
  return pythonFigure(script, ["python3", "/usr/bin/python3"], { env });
}

const simd = await createWasmKernels({ relaxed: false });
const relaxed = await createWasmKernels({ relaxed: "auto" });
const reference = createReferenceKernels();
const overrides = openblasOverrides();
const overridden = Object.keys(overrides).length > 0;
// numpy as the machine has it, and, where it sets OpenBLAS overrides, without them too.
const without = Object.fromEntries(Object.keys(overrides).map((k) => [k, undefined]));
const ceiling = wasmCeilingGflops();
console.log(`bench:kernels — single thread, median of 5 (reference: 1 rep at a smaller share); relaxed build: ${relaxed.name}`);
if (ceiling)
  console.log(`WebAssembly ceiling on this core: 4 f32 lanes × FMA × 2 units at ${ceiling.ghz.toFixed(2)} GHz = ${ceiling.gflops.toFixed(1)} GFLOP/s`);
console.log(
  `numpy: ${
    overridden
      ? `as this machine sets it (${Object.entries(overrides)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ")}) and without those overrides`
      : "no OpenBLAS overrides set here"
  }`,
);
console.log(
  `${"shape".padEnd(32)} ${"wasm".padStart(8)} ${"relaxed".padStart(8)} ${"TS ref".padStart(8)} ${"numpy".padStart(8)} ${"numpy-raw".padStart(9)}  best wasm vs numpy`,
);
let blasSaid = "";
for (const [label, m, n, k] of shapes) {
  const w = matmulGflops(simd, m, n, k, 5);
  const r = matmulGflops(relaxed, m, n, k, 5);
  const ref = m * n * k <= 512 ** 3 ? matmulGflops(reference, m, n, k, 1) : NaN;
  const np = numpyGflops(m, n, k);
  const raw = overridden ? numpyGflops(m, n, k, without) : undefined;
  const best = Math.max(w, r);
  const peer = raw && np && raw.value > np.value ? raw : np;
  if (np) blasSaid = `${np.blas} (${np.libraries.join(", ") || "no BLAS library mapped"})`;
  console.log(
    `${label.padEnd(32)} ${w.toFixed(2).padStart(8)} ${r.toFixed(2).padStart(8)} ${(Number.isNaN(ref) ? "-" : ref.toFixed(2)).padStart(8)} ${(np ? np.value.toFixed(2) : "-").padStart(8)} ${(raw ? raw.value.toFixed(2) : "-").padStart(9)}  ${ratioAgainst(best, peer, "python3 has no numpy")}`,
  );
}
if (blasSaid) console.log(`numpy's BLAS, from the libraries mapped into its process: ${blasSaid}; the ratio is against the faster of its two runs`);

// One allma-small layer, forward and backward, at 8 sequences of 128 tokens.
const config = modelConfigSchema.parse({ ...presets["allma-small"], layers: 1 });
const layout = parameterLayout(config, 1024);
const model = new Encoder(relaxed, config, layout, 8 * 128);
model.setParameters(initParameters(layout, 1));
const N = 8 * 128;
const batch = {
  batch: 8,
  seqLen: 128,
  inputIds: Int32Array.from({ length: N }, (_, i) => 5 + (i % 1000)),
  attentionMask: new Int32Array(N).fill(1),
  tokenTypeIds: new Int32Array(N),
  labels: Int32Array.from({ length: N }, (_, i) => (i % 7 === 0 ? 5 + (i % 1000) : -100)),
};
const times: number[] = [];
for (let r = 0; r < 3; r++) {
  model.zeroGrads();
  const t0 = performance.now();
  model.step(batch, 1);
  times.push(performance.now() - t0);
}
console.log(`one allma-small layer (hidden 512, FFN 2048, 8×128 tokens), forward+backward incl. embeddings and MLM head: ${median(times).toFixed(0)} ms`);
