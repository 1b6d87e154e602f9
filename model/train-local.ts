// `aze-run train --local`: the whole run in one process, walking the same groups and the
// same reduction tree as a cluster. It is the reference every distributed run must equal.
//
// Owns: the single-process step loop, its metrics.jsonl and its checkpoints (one slice file).
// Never: computes anything differently from the actors: every piece comes from training.ts.
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alignedBlocks, blockKey, reduceTree } from "../actors/reduction-tree.js";
import { configHash, loadRunConfig } from "../runtime/config.js";
import { globalNorm } from "./optimizer.js";
import { openTraining, planTraining, toBytes } from "./training.js";

export interface LocalOptions {
  config: string;
  run?: string;
  steps?: number;
  resume?: string;
  backend?: string;
  runsRoot?: string;
  /** Called after every step (the CLI prints a line). */
  onStep?: (m: { step: number; steps: number; loss: number; lr: number; gradNorm: number; tokensPerSec: number }) => void;
}

export async function trainLocal(opts: LocalOptions): Promise<{ runDir: string; checkpoint?: string; losses: number[] }> {
  const config = loadRunConfig(opts.config);
  const runsRoot = opts.runsRoot ?? join(process.cwd(), "runs");
  const runDir = join(runsRoot, opts.run ?? `${config.name}-local`);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, "config.json"), JSON.stringify({ ...config, configHash: configHash(config) }, null, 2) + "\n");
  const options = await planTraining(config, { configFile: opts.config, runsRoot, shards: 1, loaders: 1, steps: opts.steps, resume: opts.resume });
  const training = await openTraining(options);
  const { kernels } = await training.createKernels(opts.backend ?? config.cluster.backend);
  const model = training.createModel(kernels);
  const data = training.openData();
  const slice = await training.initialSlice(0, training.total);
  let step = slice.step;
  const losses: number[] = [];
  let checkpoint: string | undefined;
  const save = () => {
    const pending = training.beginCheckpoint(runDir, step);
    if (!pending) return;
    const file = training.saveSlice(pending.temp, 0, 1, 0, slice);
    checkpoint = training.finishCheckpoint(pending, step, [file]);
  };
  try {
    while (step < training.steps) {
      const t0 = performance.now();
      model.setParameters(slice.params);
      const leaves = new Map<string, Float32Array>();
      let lossSum = 0;
      let count = 0;
      let tokens = 0;
      for (let g = 0; g < training.groups; g++) {
        const r = await model.groupGradient(step, g, (i) => toBytes(data.maskedBatch(step, g, i)));
        leaves.set(blockKey({ lo: g, hi: g + 1 }), r.gradient);
        lossSum += r.lossSum;
        count += r.count;
        tokens += r.tokens;
      }
      // The same tree a cluster reduces along, whatever blocks its actors pre-combined.
      const [root] = alignedBlocks(Array.from({ length: training.groups }, (_, g) => g), training.groups);
      const gradient = reduceTree(leaves, root!.lo, root!.hi, training.add)!;
      const gradNorm = globalNorm(training.chunkSumSquares(kernels, gradient));
      const lr = training.learningRate(step);
      if (Number.isFinite(gradNorm)) training.adamw(kernels, { ...slice, grad: gradient, start: 0, lr, step: step + 1, clip: training.clipFactor(gradNorm) });
      step++;
      const loss = count > 0 ? lossSum / count : NaN;
      losses.push(loss);
      const ms = performance.now() - t0;
      const metrics = { step, steps: training.steps, loss, lr, gradNorm, tokens, tokensPerSec: tokens / (ms / 1000), stepMs: ms };
      appendFileSync(join(runDir, "metrics.jsonl"), JSON.stringify(metrics) + "\n");
      opts.onStep?.(metrics);
      const every = training.config.checkpoint.every;
      if ((every > 0 && step % every === 0) || step === training.steps) save();
    }
  } finally {
    data.close();
  }
  return { runDir, checkpoint, losses };
}
