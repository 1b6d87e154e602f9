// bench:cluster — tokens/s of `allma-small` trained by a cluster on this machine with 1 and
// 2 compute actors (one param-shard, one data-loader, a real nats-server), the scaling
// ratio, the share of step time spent communicating, and the cost of `cluster.verify: 2`
// (2 compute actors computing every group twice, against 2 computing it once). Steps after
// the first are measured.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { cliEntry, packageRoot } from "../runtime/spawn.js";

const steps = 5;
const dir = mkdtempSync(join(tmpdir(), "aze-bench-cluster-"));
const configFor = (verify: number) => join(dir, `allma-small-verify-${verify}.yaml`);
for (const verify of [1, 2])
  writeFileSync(
    configFor(verify),
    `name: bench
model: { preset: allma-small }
data:
  sources: [{ name: sample, path: ${JSON.stringify(join(packageRoot, "corpus", "sample", "az-sample.txt"))} }]
  vocabSize: 2000
  seqLen: 128
training: { steps: ${steps}, groups: 4, groupSize: 2, microBatch: 2, warmupSteps: 1 }
cluster: { shards: 1, loaders: 1, backend: wasm, verify: ${verify} }
`,
  );

interface Metrics {
  tokens: number;
  stepMs: number;
  commMs: number;
  waitMs: number;
  bytesSent: number;
}
const results: { compute: number; verify: number; tokensPerSec: number; commShare: number; mbPerStep: number }[] = [];
try {
  for (const [compute, verify] of [
    [1, 1],
    [2, 1],
    [2, 2],
  ] as const) {
    const run = `c${compute}-v${verify}`;
    const config = configFor(verify);
    execFileSync(process.execPath, [cliEntry, "cluster", "up", "--config", config, "--run", run, "--compute", String(compute), "--no-tui"], {
      cwd: dir,
      stdio: "ignore",
    });
    const metrics = readFileSync(join(dir, "runs", run, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Metrics)
      .slice(1);
    const tokens = metrics.reduce((n, m) => n + m.tokens, 0);
    const ms = metrics.reduce((n, m) => n + m.stepMs, 0);
    const comm = metrics.reduce((n, m) => n + m.commMs + m.waitMs, 0);
    results.push({
      compute,
      verify,
      tokensPerSec: tokens / (ms / 1000),
      commShare: comm / ms,
      mbPerStep: metrics.reduce((n, m) => n + m.bytesSent, 0) / metrics.length / 1e6,
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`bench:cluster — allma-small, 4 groups × 2 sequences × 128 tokens a step, ${steps - 1} steps measured, this machine (${cpus().length} cores)`);
for (const r of results)
  console.log(
    `${r.compute} compute, verify ${r.verify}: ${r.tokensPerSec.toFixed(0)} tok/s, communication and waiting ${(r.commShare * 100).toFixed(0)}% of step time, ${r.mbPerStep.toFixed(0)} MB of gradients sent per step`,
  );
console.log(`scaling 1 → 2 compute actors: ×${(results[1]!.tokensPerSec / results[0]!.tokensPerSec).toFixed(2)}`);
console.log(`verify 2 / verify 1 at 2 compute actors: ×${(results[2]!.tokensPerSec / results[1]!.tokensPerSec).toFixed(2)} tokens/s`);
