// bench:cluster — tokens/s of `allma-small` trained by a cluster on this machine with 1 and
// 2 compute actors (one param-shard, one data-loader, a real nats-server), the scaling
// ratio, the share of step time spent communicating, and the cost of `cluster.verify: 2`
// (2 compute actors computing every group twice, against 2 computing it once). Steps after
// the first are measured.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const results: { compute: number; verify: number; tokensPerSec: number; commShare: number; mbPerStep: number; failed?: string }[] = [];
try {
  for (const [compute, verify] of [
    [1, 1],
    [2, 1],
    [2, 2],
  ] as const) {
    const run = `c${compute}-v${verify}`;
    const config = configFor(verify);
    const cli = (...args: string[]) => execFileSync(process.execPath, [cliEntry, "cluster", ...args, "--run", run], { cwd: dir, stdio: "ignore" });
    // On a machine too busy for this model (a shard that misses its heartbeats while it loads),
    // a run fails: say so and measure the others.
    const failed = (why: string) => {
      results.push({ compute, verify, tokensPerSec: Number.NaN, commShare: Number.NaN, mbPerStep: Number.NaN, failed: why });
      try {
        cli("down");
      } catch {
        // already down
      }
    };
    try {
      cli("up", "--config", config, "--compute", String(compute), "--no-tui");
    } catch (err) {
      failed(`cluster up exited with status ${(err as { status?: number }).status}`);
      continue;
    }
    const metricsFile = join(dir, "runs", run, "metrics.jsonl");
    const lines = existsSync(metricsFile) ? readFileSync(metricsFile, "utf8").trim().split("\n") : [];
    if (lines.length < steps) {
      failed(`the run stopped after ${lines.length} of ${steps} steps`);
      continue;
    }
    const metrics = lines.map((l) => JSON.parse(l) as Metrics).slice(1);
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
    r.failed
      ? `${r.compute} compute, verify ${r.verify}: failed (${r.failed})`
      : `${r.compute} compute, verify ${r.verify}: ${r.tokensPerSec.toFixed(0)} tok/s, communication and waiting ${(r.commShare * 100).toFixed(0)}% of step time, ${r.mbPerStep.toFixed(0)} MB of gradients sent per step`,
  );
const ratio = (a: number, b: number) =>
  results[a]!.failed || results[b]!.failed ? "not measured" : `×${(results[a]!.tokensPerSec / results[b]!.tokensPerSec).toFixed(2)}`;
console.log(`scaling 1 → 2 compute actors: ${ratio(1, 0)}`);
console.log(`verify 2 / verify 1 at 2 compute actors: ${ratio(2, 1)} tokens/s`);
