// The dashboard reducer folds a stream into the same state every time, never mutates the
// old state, keeps the whole loss curve in bounded memory, and tracks pause/scale requests.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sampleRun, sampleRunInfo } from "../../tui/sample-run.js";
import {
  appendLoss,
  initialState,
  LOSS_CAPACITY,
  liveComputeCount,
  lossColumns,
  mfu,
  reduce,
  scaleControl,
  type DashboardState,
  type LossHistory,
} from "../../tui/state.js";
import type { ActorStatus } from "../../actors/protocol.js";
import type { DashboardUpdate } from "../../tui/types.js";

function deepFreeze<T>(x: T): T {
  if (x && typeof x === "object" && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

const fold = (updates: DashboardUpdate[], from: DashboardState = initialState) => updates.reduce((s, u) => deepFreeze(reduce(s, u)), deepFreeze(from));

const compute = (id: string, state: ActorStatus["state"] = "working"): ActorStatus => ({
  kind: "compute",
  id,
  pid: 1,
  host: "h",
  backend: "wasm",
  state,
  lastHeartbeat: 0,
});

describe("dashboard reducer", () => {
  it("folds the same stream into the same state without mutating any earlier state", () => {
    // deepFreeze makes any mutation of an earlier state throw in strict mode.
    const a = fold(sampleRun(300));
    const b = fold(sampleRun(300));
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.last?.step).toBe(300);
    expect(a.ended).toBe("finished");
    expect(a.run).toEqual(sampleRunInfo);
  });

  it("keeps the smoothed loss as an EMA and the best loss with its step", () => {
    const losses = [8, 6, 7, 5.5, 9];
    const s = fold(losses.map((loss, i) => step(i + 1, loss)));
    let ema = losses[0]!;
    for (const l of losses.slice(1)) ema += 0.1 * (l - ema);
    expect(s.lossEma).toBeCloseTo(ema, 12);
    expect(s.minLoss).toEqual({ loss: 5.5, step: 4 });
  });

  it("keeps a long run's loss curve bounded, with the same step-weighted mean", () => {
    let h: LossHistory = initialState.loss;
    let sum = 0;
    const steps = 5000;
    for (let i = 1; i <= steps; i++) {
      const loss = 10 / Math.sqrt(i);
      sum += loss;
      h = appendLoss(h, i, loss);
    }
    expect(h.means.length).toBeLessThanOrEqual(LOSS_CAPACITY);
    expect(h.bucket).toBe(16);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(steps);
    const weighted = h.means.reduce((a, m, i) => a + m * h.counts[i]!, 0);
    expect(weighted).toBeCloseTo(sum, 6);
    expect(h.firstSteps[0]).toBe(1);
  });

  it("rewinds the loss curve when a rollback repeats steps", () => {
    let s = fold(Array.from({ length: 50 }, (_, i) => step(i + 1, 5)));
    s = fold([step(41, 9)], s);
    expect(s.loss.firstSteps.at(-1)).toBe(41);
    expect(s.loss.means.length).toBe(41);
    expect(s.loss.means.at(-1)).toBe(9);
  });

  it("counts live compute actors and scales from the last requested count", () => {
    let s = fold([{ kind: "actors", actors: [compute("c0"), compute("c1"), compute("c2", "dead"), compute("c4", "draining"), compute("c5", "stopped")] }]);
    expect(liveComputeCount(s)).toBe(2);
    const up = scaleControl(s, 1);
    expect(up).toEqual({ type: "scale", compute: 3 });
    s = reduce(s, { kind: "control-sent", control: up!, time: 0 });
    // A second + before the cluster caught up asks for one more than the first asked for.
    expect(scaleControl(s, 1)).toEqual({ type: "scale", compute: 4 });
    s = reduce(s, { kind: "actors", actors: [compute("c0"), compute("c1"), compute("c3")] });
    expect(s.computeTarget).toBeUndefined();
    expect(scaleControl(s, -1)).toEqual({ type: "scale", compute: 2 });
  });

  it("never scales below one compute actor", () => {
    const s = fold([{ kind: "actors", actors: [compute("c0")] }]);
    expect(scaleControl(s, -1)).toBeUndefined();
  });

  it("forgets a refused scale and logs why", () => {
    let s = fold([{ kind: "actors", actors: [compute("c0")] }]);
    const control = { type: "scale", compute: 2 } as const;
    s = reduce(s, { kind: "control-sent", control, time: 1 });
    s = reduce(s, { kind: "control-failed", control, message: "no free cores", time: 2 });
    expect(s.computeTarget).toBeUndefined();
    expect(s.events.at(-1)).toEqual({ time: 2, type: "error", message: "scale to 2 compute failed: no free cores" });
  });

  it("follows pause and resume from both keys and cluster events", () => {
    let s = reduce(initialState, { kind: "control-sent", control: { type: "pause" }, time: 0 });
    expect(s.paused).toBe(true);
    s = reduce(s, { kind: "event", event: { time: 1, type: "resume", message: "resumed by another dashboard" } });
    expect(s.paused).toBe(false);
  });

  it("computes MFU over the compute actors of the step, only when a peak is known", () => {
    const s = fold(sampleRun(10));
    const m = s.last!;
    expect(mfu(s)).toBeCloseTo((m.tokensPerSec * m.flopsPerToken!) / (sampleRunInfo.backendPeakFlops! * 2), 12);
    const noPeak = reduce(s, { kind: "run", run: { ...sampleRunInfo, backendPeakFlops: undefined } });
    expect(mfu(noPeak)).toBeUndefined();
  });

  it("downsamples any curve to at most the width, within its range", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 20, noNaN: true }), { minLength: 1, maxLength: 1500 }),
        fc.integer({ min: 1, max: 200 }),
        (losses, width) => {
          let h: LossHistory = initialState.loss;
          for (const [i, l] of losses.entries()) h = appendLoss(h, i + 1, l);
          const cols = lossColumns(h, width);
          expect(cols.length).toBe(Math.min(width, h.means.length));
          const lo = Math.min(...losses) - 1e-9;
          const hi = Math.max(...losses) + 1e-9;
          for (const c of cols) expect(c >= lo && c <= hi).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

function step(n: number, loss: number): DashboardUpdate {
  return {
    kind: "step",
    metrics: {
      step: n,
      loss,
      update: "applied",
      lr: 1e-3,
      gradNorm: 1,
      tokens: 1024,
      tokensPerSec: 5000,
      stepMs: 200,
      computeMs: 150,
      commMs: 30,
      waitMs: 20,
      bytesSent: 1e6,
      actors: [],
    },
  };
}
