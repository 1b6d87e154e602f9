// The training part of the GPU check: compares `train --local` runs that scripts/gpu-check.sh
// made (two with --backend cuda, one with --backend wasm) and says whether they agree.
//
// Owns: reading each run's metrics.jsonl and its last checkpoint's parameter bytes, and the
// verdicts: the loss falls, the two CUDA runs give the same checkpoint bytes, and the CUDA
// loss curve stays within tolerance of WebAssembly's (not equal: TF32 matmuls and other
// summation orders change the bits, not the training).
// Never: depends on anything outside this repository (it runs on the GPU machine's carried
// Node.js without node_modules).
//
// node dist/bench/gpu-check-train.js --runs DIR --cuda a,b --wasm w [--out FILE]
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const runs = arg("runs", "runs");
const [cudaA, cudaB] = arg("cuda", "cuda-a,cuda-b").split(",") as [string, string];
const wasm = arg("wasm", "wasm");
const outFile = arg("out", "");

const losses = (run: string) =>
  readFileSync(join(runs, run, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { loss: number }).loss);

/** The parameter bytes of the run's newest checkpoint: every .safetensors file, in name order. */
function checkpointBytes(run: string): Buffer {
  const root = join(runs, run, "checkpoints");
  const last = existsSync(root)
    ? readdirSync(root)
        .filter((n) => /^step-\d+$/.test(n))
        .sort()
        .at(-1)
    : undefined;
  if (!last) throw new Error(`${join(runs, run)} has no checkpoint`);
  const dir = join(root, last);
  return Buffer.concat(
    readdirSync(dir)
      .filter((n) => n.endsWith(".safetensors"))
      .sort()
      .map((n) => readFileSync(join(dir, n))),
  );
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
const [a, b, w] = [losses(cudaA), losses(cudaB), losses(wasm)];
const window = Math.max(1, Math.min(10, Math.floor(a.length / 4)));
const first = mean(a.slice(0, window)),
  last = mean(a.slice(-window));
const sameBytes = checkpointBytes(cudaA).equals(checkpointBytes(cudaB));
const steps = Math.min(a.length, w.length);
const meanGap = mean(Array.from({ length: steps }, (_, i) => Math.abs(a[i]! - w[i]!)));
const lastGap = Math.abs(last - mean(w.slice(-window)));
// Tolerances: the curves start identical (same initial parameters and data) and drift apart
// only by rounding; a broken kernel shows as a gap of whole nats or a loss that does not fall.
const verdicts = {
  lossFalls: a.length < 20 || last < first - 0.4,
  sameCheckpointBytes: sameBytes,
  sameLossCurves: a.length === b.length && a.every((x, i) => x === b[i]),
  nearWasm: meanGap < 0.05 && lastGap < 0.1,
};
const report = { steps: a.length, first, last, wasmLast: mean(w.slice(-window)), meanGap, lastGap, ...verdicts };
if (outFile) writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
const line = (s: string) => console.log(`gpu-check: train: ${s}`);
line(`${a.length} steps, loss ${first.toFixed(3)} → ${last.toFixed(3)} (WebAssembly ${mean(w.slice(0, window)).toFixed(3)} → ${report.wasmLast.toFixed(3)})`);
line(
  `two CUDA runs: ${sameBytes ? "the same checkpoint bytes" : "DIFFERENT checkpoint bytes"}, ${verdicts.sameLossCurves ? "the same" : "DIFFERENT"} loss curves`,
);
line(`CUDA against WebAssembly: mean gap ${meanGap.toFixed(4)} per step, ${lastGap.toFixed(4)} at the end (tolerance 0.05, 0.1)`);
const ok = Object.values(verdicts).every(Boolean);
line(
  ok
    ? "PASS"
    : `FAIL (${Object.entries(verdicts)
        .filter(([, v]) => !v)
        .map(([k]) => k)
        .join(", ")})`,
);
process.exit(ok ? 0 : 1);
