// `aze-run train --local`: the whole run in one process, walking the same groups and the
// same reduction tree as a cluster. It is the reference every distributed run must equal.
//
// Owns: the single-process step loop, its metrics.jsonl and its checkpoints (one slice file).
// Never: computes anything differently from the actors: every piece comes from training.ts,
// optimizer.ts and reduction-tree.ts, and the end of a step is `finishStep`, as in the cluster.
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configHash, loadRunConfig, runsRootDefault } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import { createBackend } from "./backend.js";
import { abandonCheckpoint, beginCheckpoint, writeSlice } from "./checkpoint.js";
import { applyAdamWOnHost, chunkSumSquares, learningRate } from "./optimizer.js";
import { addF32, blockKey, reduceTree } from "./reduction-tree.js";
import { createSimModel } from "./sim-model.js";
import { createModel, finishStep, openData, openPlan, planTraining, readSlice, sealCheckpoint, type StepMetrics } from "./training.js";

export interface LocalOptions {
  config: string;
  run?: string;
  steps?: number;
  resume?: string;
  /** Delete the run folder's checkpoints and metrics first. */
  fresh?: boolean;
  backend?: string;
  runsRoot?: string;
  /** Called after every step with the step's record and the run's total steps (the CLI prints a line). */
  onStep?: (m: StepMetrics, steps: number) => void;
}

export async function trainLocal(opts: LocalOptions): Promise<{ runDir: string; checkpoint?: string; losses: number[] }> {
  const config = loadRunConfig(opts.config);
  const runsRoot = opts.runsRoot ?? runsRootDefault();
  const runDir = join(runsRoot, opts.run ?? `${config.name}-local`);
  const plan = openPlan(
    await planTraining(config, { configFile: opts.config, runsRoot, runDir, shards: 1, loaders: 1, steps: opts.steps, resume: opts.resume, fresh: opts.fresh }),
  );
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, "config.json"), `${JSON.stringify({ ...config, configHash: configHash(config) }, null, 2)}\n`);
  const t = plan.config.training;
  const backend = opts.backend ?? config.cluster.backend;
  const { kernels } = await createBackend(backend);
  // `sim`: the simulated gradients of a cluster's compute actors, so the two still agree bit for bit.
  const model = backend === "sim" ? createSimModel(plan) : createModel(plan, kernels);
  const data = openData(plan);
  const slice = readSlice(plan, opts.resume, 0, plan.total);
  let step = slice.step;
  const losses: number[] = [];
  let checkpoint: string | undefined;
  const save = () => {
    const pending = beginCheckpoint(runDir, step);
    try {
      checkpoint = sealCheckpoint(plan, pending, step, [writeSlice(pending.temp, 0, 1, 0, slice)]);
    } catch (err) {
      throw abandonCheckpoint(pending, err);
    }
  };
  try {
    while (step < plan.steps) {
      const t0 = performance.now();
      model.setParameters(slice.params);
      const leaves = new Map<string, Float32Array>();
      const lossSums: number[] = [];
      const counts: number[] = [];
      let tokens = 0;
      for (let g = 0; g < plan.groups; g++) {
        const r = await model.groupGradient(step, g, (i) => data.maskedBatch(step, g, i));
        leaves.set(blockKey({ lo: g, hi: g + 1 }), r.gradient);
        lossSums.push(r.lossSum);
        counts.push(r.count);
        tokens += r.tokens;
      }
      // The same tree a cluster reduces along, whatever blocks its actors pre-combined.
      const gradient = reduceTree(leaves, 0, plan.groups, addF32)!;
      const lr = learningRate(step, t);
      const partials = chunkSumSquares(kernels, gradient);
      const { clip, update, metrics } = finishStep(plan, { step, lr, partials, lossSums, counts, tokens, stepMs: performance.now() - t0 });
      if (update === "applied") applyAdamWOnHost(kernels, plan.layout, { ...slice, grad: gradient, start: 0 }, { lr, step: step + 1, clip, training: t });
      appendFileSync(join(runDir, "metrics.jsonl"), `${JSON.stringify(metrics)}\n`);
      if (update === "stopped")
        throw new UserError(
          `step ${step + 1}: the gradient is not finite (norm ${metrics.gradNorm}) and training.onNonFinite is "stop": the run stopped at step ${step}; lower training.lr, or set onNonFinite: skip.`,
        );
      step++;
      losses.push(metrics.loss);
      opts.onStep?.(metrics, plan.steps);
      const every = config.checkpoint.every;
      if ((every > 0 && step % every === 0) || step === plan.steps) save();
    }
  } finally {
    data.close();
  }
  return { runDir, checkpoint, losses };
}
