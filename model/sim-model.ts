// The simulated compute backend (`cluster.backend: sim`): a TrainingModel that computes nothing.
//
// Owns: for each group it is given, a wait of `cluster.simDelayMs` standing in for forward
// and backward, then a gradient of the model's parameter count and a loss that are pure
// functions of (seed, step, group). A cluster of simulated compute actors therefore sends
// the bytes a real one sends, through the same pre-combining, shards and reduction tree, and
// its final parameters are the same bits however its groups were dealt: what the benchmark
// of coordinator and shard overhead (bench/scale.ts) needs without a GPU per actor.
// Never: fetches a micro-batch (the fetch it is handed is never called), loads kernels, or
// reads the parameters it is given: nothing it returns depends on them.
import { setTimeout as sleep } from "node:timers/promises";
import { counterHash } from "./counter-hash.js";
import type { GroupResult, TrainingModel, TrainingPlan } from "./training.js";

/** How long a simulated group takes when the config does not say (`cluster.simDelayMs`). */
export const simDelayMsDefault = 50;

export function createSimModel(plan: Pick<TrainingPlan, "config" | "total" | "layout">): TrainingModel {
  const { training: t, cluster, data } = plan.config;
  const delayMs = cluster.simDelayMs ?? simDelayMsDefault;
  // Each element uniform in [-a, a) with a = 1 / (G·√n): a group's gradient has a norm of
  // about 0.6 / G and the step's sum about 0.6 / √G, so clipping and AdamW see ordinary values.
  const amplitude = 1 / (t.groups * Math.sqrt(plan.total));
  // The counts a real group of this shape predicts and holds (padding aside).
  const tokens = t.groupSize * data.seqLen;
  const count = Math.max(1, Math.round(tokens * t.masking.rate));
  return {
    setParameters: () => {},
    async groupGradient(step, group): Promise<GroupResult> {
      if (delayMs > 0) await sleep(delayMs);
      const key = counterHash(counterHash(t.seed, step), group);
      const gradient = new Float32Array(plan.total);
      for (let i = 0; i < gradient.length; i++) gradient[i] = (counterHash(key, i) / 2 ** 31 - 1) * amplitude;
      // A loss that falls with the step as a run's does, from ln(vocabulary) (a uniform guess),
      // with a little of the group in it so the step's loss really is the mean of its groups.
      const loss = Math.log(plan.layout.vocabSize) / (1 + step / 100) + counterHash(key, plan.total) / 2 ** 32 / 10;
      return { gradient, lossSum: loss * count, count, tokens, fetchMs: 0 };
    },
  };
}
