// finishStep ends every step, in `train --local` and in the cluster: the norm from per-chunk
// partial sums, the clip factor, the non-finite policy and the metrics record.
import { describe, expect, it } from "vitest";
import { finishStep, type StepResult } from "../../model/training.js";
import { parseRunConfig } from "../../runtime/config.js";

const planWith = (training: Record<string, unknown>) => ({
  config: parseRunConfig({ model: { preset: "tiny" }, data: { shards: "shards" }, training }),
  flopsPerToken: 600,
});

const result = (partials: number[], extra: Partial<StepResult> = {}): StepResult => ({
  step: 4,
  lr: 1e-3,
  partials,
  lossSums: [12, 8],
  counts: [3, 2],
  tokens: 500,
  stepMs: 250,
  ...extra,
});

describe("finishStep", () => {
  it("takes the norm over the chunks in order, whichever way the chunks were split between shards", () => {
    const partials = [0.1, 2.5e-8, 3.3, 1e-12, 7.77, 0.003];
    const whole = finishStep(planWith({}), result(partials));
    const twoShards = finishStep(planWith({}), result([...partials.slice(0, 2), ...partials.slice(2)]));
    let sum = 0;
    for (const p of partials) sum += p;
    expect(whole.gradNorm).toBe(Math.sqrt(sum));
    expect(twoShards.gradNorm).toBe(whole.gradNorm);
  });

  it("clips to clipNorm, and not at all below it or with clipping off", () => {
    expect(finishStep(planWith({ clipNorm: 1 }), result([16])).clip).toBeCloseTo(1 / 4, 6);
    expect(finishStep(planWith({ clipNorm: 1 }), result([0.25])).clip).toBe(1);
    expect(finishStep(planWith({ clipNorm: 0 }), result([16])).clip).toBe(1);
  });

  it("skips or stops on a gradient that is not finite, as training.onNonFinite says", () => {
    expect(finishStep(planWith({}), result([1, 2])).update).toBe("applied");
    expect(finishStep(planWith({ onNonFinite: "skip" }), result([1, NaN])).update).toBe("skipped");
    expect(finishStep(planWith({ onNonFinite: "stop" }), result([Infinity, 1])).update).toBe("stopped");
  });

  it("records the mean loss over the step's masked tokens, the throughput and the step number", () => {
    const { metrics } = finishStep(planWith({}), result([1]));
    expect(metrics).toMatchObject({ step: 5, loss: 20 / 5, lr: 1e-3, tokens: 500, tokensPerSec: 2000, flopsPerToken: 600, update: "applied" });
    // One process: all of the step is compute, none of it communication.
    expect(metrics).toMatchObject({ computeMs: 250, commMs: 0, waitMs: 0, bytesSent: 0, actors: [] });
  });

  it("carries a cluster's timings through unchanged", () => {
    const traffic = { computeMs: 100, commMs: 40, waitMs: 10, bytesSent: 4096, actors: [{ id: "compute-0", groups: [0, 1], stepMs: 140, tokensPerSec: 3571 }] };
    expect(finishStep(planWith({}), result([1], { traffic })).metrics).toMatchObject(traffic);
  });
});
