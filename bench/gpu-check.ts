// The GPU verification of the CUDA backend, as one program with no dependency outside this
// repository (the GPU machine has a carried Node.js binary and no node_modules).
// scripts/gpu-check.sh runs it; here it runs against the CPU emulation of the addon.
//
// Owns: every kernel against the reference on the device (matmul in fp32 and TF32 through
// cuBLASLt, and the own GEMM), bit-for-bit repeatability of a training-step-like sequence,
// matmul TFLOP/s on fixed shapes (set against PyTorch's figures when given), one JSON file of
// results and a summary on stdout.
// Never: exits non-zero for a slow result; only for a failed check or a missing device.
//
// node dist/bench/gpu-check.js [--addon device|emulated] [--size gpu|small] [--torch FILE] [--out FILE]
import { readFileSync, writeFileSync } from "node:fs";
import { type CheckResult, type CheckSize, checkKernels, repeatabilityHash } from "../kernels-cuda/check.js";
import { type CudaBuild, createCudaKernels, loadCudaAddon } from "../kernels-cuda/index.js";
import { createReferenceKernels } from "../model/kernels-reference.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const build = arg("addon", "device") as CudaBuild;
const size = arg("size", build === "device" ? "gpu" : "small") as CheckSize;
const torchFile = arg("torch", "");
const outFile = arg("out", "gpu-check.json");

/** PyTorch's figures from scripts/gpu-check.sh: { "4096x4096x4096": { tf32: TFLOP/s, bf16: TFLOP/s } }. */
const torch: Record<string, { tf32?: number; bf16?: number }> = torchFile ? JSON.parse(readFileSync(torchFile, "utf8")) : {};

const addon = loadCudaAddon(build);
const reference = createReferenceKernels();
const started = performance.now();
const report: Record<string, unknown> = { when: new Date().toISOString(), addon: build, size };
const failures: string[] = [];
const line = (s: string) => console.log(`gpu-check: ${s}`);

// 1. Every kernel against the reference: all kernels with cuBLASLt in fp32, then the matmul
//    cases again with TF32 and with the own GEMM.
const checks: Record<string, CheckResult[]> = {};
for (const [mode, tolerance, matmulOnly] of [
  ["fp32", 1e-5, false],
  ["tf32", 2e-3, true],
  ["own", 1e-5, true],
] as const) {
  const k = createCudaKernels(addon, { matmul: mode });
  if (mode === "fp32") {
    report.device = k.device;
    line(`device: ${k.device.name} (${((k.device.totalBytes ?? 0) / 1024 ** 3).toFixed(0)} GiB, capability ${k.device.capability})`);
  }
  line(`matmul ${mode}: ${k.matmulNote}`);
  checks[mode] = checkKernels(k, reference, { size, matmulTolerance: tolerance, matmulOnly });
  for (const c of checks[mode]!) if (!c.ok) failures.push(`${mode}: ${c.name}: error ${c.worst.toExponential(2)} above ${c.tolerance.toExponential(1)}`);
  const passed = checks[mode]!.filter((c) => c.ok).length;
  line(`kernels against the reference (${mode} matmul): ${passed}/${checks[mode]!.length} within tolerance`);
}
report.checks = checks;

// 2. The same inputs twice on one device: the same bits.
const tf32 = createCudaKernels(addon, { matmul: "tf32" });
const [first, second] = [repeatabilityHash(tf32, size), repeatabilityHash(tf32, size)];
report.repeatable = { first, second, equal: first === second };
if (first !== second) failures.push("two runs of the same sequence gave different bits");
line(`repeatability: ${first === second ? "bit for bit" : "DIFFERENT BITS"} (sha256 ${first.slice(0, 16)}…)`);

// 3. Matmul throughput, TF32 through cuBLASLt and the own GEMM, on the shapes PyTorch measured.
const shapes: [number, number, number][] =
  size === "gpu"
    ? [
        [4096, 4096, 4096],
        [8192, 8192, 8192],
        [8192, 3072, 768], // a BERT-base FFN up-projection over 8192 tokens
      ]
    : [[64, 64, 64]];
const throughput: Record<string, Record<string, number>> = {};
for (const mode of ["tf32", "own"] as const) {
  const k = createCudaKernels(addon, { matmul: mode });
  for (const [m, n, kk] of shapes) {
    if (mode === "own" && m * n * kk > 4096 ** 3) continue; // the slow path: one shape is enough
    const a = k.alloc(m * kk),
      b = k.alloc(kk * n),
      out = k.alloc(m * n);
    k.fill(a, m * kk, 0.5);
    k.fill(b, kk * n, 0.25);
    const run = () => k.matmul({ out, a, b, m, n, k: kk });
    run();
    k.synchronize();
    const reps = size === "gpu" ? 20 : 2;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    k.synchronize();
    const seconds = (performance.now() - t0) / 1000;
    const tflops = (2 * m * n * kk * reps) / seconds / 1e12;
    const key = `${m}x${n}x${kk}`;
    throughput[key] = { ...throughput[key], [mode]: tflops };
    const t = torch[key];
    const vs = mode === "tf32" && t?.tf32 ? `; PyTorch TF32 ${t.tf32.toFixed(1)}, ratio ${(tflops / t.tf32).toFixed(2)}` : "";
    const bf16 = mode === "tf32" && t?.bf16 ? `; PyTorch bf16 ${t.bf16.toFixed(1)}` : "";
    line(`matmul ${key} ${mode}: ${tflops.toFixed(size === "gpu" ? 1 : 6)} TFLOP/s${vs}${bf16}`);
    for (const x of [a, b, out]) k.free(x);
  }
}
report.throughput = throughput;
report.torch = torch;
report.failures = failures;
report.seconds = (performance.now() - started) / 1000;
writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
line(`${failures.length === 0 ? "PASS" : `FAIL (${failures.length})`} in ${(report.seconds as number).toFixed(1)} s; results in ${outFile}`);
for (const f of failures) line(`  ${f}`);
process.exit(failures.length === 0 ? 0 : 1);
