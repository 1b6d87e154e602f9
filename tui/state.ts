// The dashboard's state and the pure reducer that folds updates into it.
//
// Owns: what the dashboard remembers about a run (the whole loss curve, downsampled; the
// smoothed rates; the latest actors snapshot; the event log; pause and scale requests).
// Never: renders, reads the clock or talks to the cluster. `reduce` returns a new state and
// leaves the old one untouched, so tests can fold a fixed stream and compare.
import type { ActorStatus, ClusterEvent, Control, RunInfo, StepMetrics } from "../actors/protocol.js";
import type { DashboardUpdate } from "./types.js";

/** Points kept for the loss curve; wider than any terminal, small enough to copy per step. */
export const LOSS_CAPACITY = 512;
/** Events kept for the log; the screen shows the newest that fit. */
const EVENT_CAPACITY = 500;
/** EMA weight of the newest value: about the last ten steps dominate. */
const EMA_ALPHA = 0.1;

/**
 * The loss over the whole run in buckets of `bucket` consecutive steps each (the last one
 * may be partial). When the buckets outgrow LOSS_CAPACITY, neighbours merge and `bucket`
 * doubles, so memory stays flat however long the run.
 */
export interface LossHistory {
  bucket: number;
  /** First step of each bucket. */
  firstSteps: number[];
  means: number[];
  counts: number[];
}

export interface DashboardState {
  run?: RunInfo;
  last?: StepMetrics;
  loss: LossHistory;
  lossEma?: number;
  minLoss?: { loss: number; step: number };
  tokensPerSecEma?: number;
  stepMsEma?: number;
  actors: ActorStatus[];
  /** Oldest first. */
  events: ClusterEvent[];
  paused: boolean;
  /** The compute count the user last asked for, until a snapshot shows it reached. */
  computeTarget?: number;
  /** Why the run is over, once it is. */
  ended?: string;
}

/** The cluster's updates, and beside them what the dashboard itself did. */
export type DashboardAction =
  | DashboardUpdate
  | { kind: "control-sent"; control: Control; time: number }
  | { kind: "control-failed"; control: Control; message: string; time: number };

export const initialState: DashboardState = {
  loss: { bucket: 1, firstSteps: [], means: [], counts: [] },
  actors: [],
  events: [],
  paused: false,
};

export function reduce(state: DashboardState, action: DashboardAction): DashboardState {
  switch (action.kind) {
    case "run":
      return { ...state, run: action.run };
    case "step":
      return reduceStep(state, action.metrics);
    case "actors": {
      const next = { ...state, actors: action.actors };
      if (next.computeTarget !== undefined && liveComputeCount(next) === next.computeTarget) {
        delete next.computeTarget;
      }
      return next;
    }
    case "event":
      return { ...state, paused: pausedAfter(action.event.type, state.paused), events: appendEvent(state.events, action.event) };
    case "end":
      return { ...state, ended: action.reason };
    case "control-sent": {
      const c = action.control;
      const events = appendEvent(state.events, { time: action.time, type: "info", message: `asked: ${describeControl(c)}` });
      return { ...state, events, paused: pausedAfter(c.type, state.paused), ...(c.type === "scale" ? { computeTarget: c.compute } : {}) };
    }
    case "control-failed":
      return {
        ...state,
        // A refused scale must not leave the next +/- counting from a number never reached.
        ...(action.control.type === "scale" ? { computeTarget: undefined } : {}),
        events: appendEvent(state.events, {
          time: action.time,
          type: "error",
          message: `${describeControl(action.control)} failed: ${action.message}`,
        }),
      };
  }
}

function reduceStep(state: DashboardState, m: StepMetrics): DashboardState {
  const ema = (prev: number | undefined, x: number) => (prev === undefined || !Number.isFinite(prev) ? x : prev + EMA_ALPHA * (x - prev));
  const finite = Number.isFinite(m.loss);
  const minLoss = finite && (state.minLoss === undefined || m.loss < state.minLoss.loss) ? { loss: m.loss, step: m.step } : state.minLoss;
  return {
    ...state,
    last: m,
    loss: finite ? appendLoss(state.loss, m.step, m.loss) : state.loss,
    lossEma: finite ? ema(state.lossEma, m.loss) : state.lossEma,
    minLoss,
    tokensPerSecEma: ema(state.tokensPerSecEma, m.tokensPerSec),
    stepMsEma: ema(state.stepMsEma, m.stepMs),
  };
}

/** Adds one step's loss; a step at or before the last one (after a rollback) rewinds the curve first. */
export function appendLoss(h: LossHistory, step: number, loss: number): LossHistory {
  const { bucket } = h;
  let { firstSteps, means, counts } = h;
  const lastFirst = firstSteps[firstSteps.length - 1];
  if (lastFirst !== undefined && step <= lastFirst + counts[counts.length - 1]! - 1) {
    const keep = firstSteps.findIndex((s) => s >= step);
    firstSteps = firstSteps.slice(0, keep);
    means = means.slice(0, keep);
    counts = counts.slice(0, keep);
  }
  const n = means.length;
  if (n > 0 && counts[n - 1]! < bucket) {
    const c = counts[n - 1]!;
    means = [...means.slice(0, n - 1), (means[n - 1]! * c + loss) / (c + 1)];
    counts = [...counts.slice(0, n - 1), c + 1];
  } else {
    firstSteps = [...firstSteps, step];
    means = [...means, loss];
    counts = [...counts, 1];
  }
  if (means.length > LOSS_CAPACITY) {
    const merged: LossHistory = { bucket: bucket * 2, firstSteps: [], means: [], counts: [] };
    for (let i = 0; i < means.length; i += 2) {
      const c = counts[i]! + (counts[i + 1] ?? 0);
      merged.firstSteps.push(firstSteps[i]!);
      merged.means.push((means[i]! * counts[i]! + (means[i + 1] ?? 0) * (counts[i + 1] ?? 0)) / c);
      merged.counts.push(c);
    }
    return merged;
  }
  return { bucket, firstSteps, means, counts };
}

function appendEvent(events: ClusterEvent[], e: ClusterEvent): ClusterEvent[] {
  const next = [...events, e];
  return next.length > EVENT_CAPACITY ? next.slice(next.length - EVENT_CAPACITY) : next;
}

/** A pause or resume, asked for or reported by the cluster, sets `paused`; anything else leaves it. */
function pausedAfter(type: string, paused: boolean): boolean {
  return type === "resume" ? false : type === "pause" || paused;
}

function describeControl(c: Control): string {
  switch (c.type) {
    case "scale":
      return `scale to ${c.compute} compute`;
    case "stop":
      return c.checkpoint ? "checkpoint and stop" : "stop";
    default:
      return c.type;
  }
}

const GONE: ReadonlySet<ActorStatus["state"]> = new Set(["draining", "leaving", "stopped", "dead"]);

/** Compute actors that count toward the step: not dead and not on their way out. */
export function liveComputeCount(state: DashboardState): number {
  return state.actors.filter((a) => a.kind === "compute" && !GONE.has(a.state)).length;
}

/** The scale control for a `+` (delta 1) or `-` (delta -1); never below one compute actor. */
export function scaleControl(state: DashboardState, delta: number): Control | undefined {
  const from = state.computeTarget ?? liveComputeCount(state);
  const to = Math.max(1, from + delta);
  return to === from ? undefined : { type: "scale", compute: to };
}

/**
 * The loss curve downsampled to `width` columns, each the step-weighted mean of the buckets
 * it covers. Fewer points than columns gives one column per point.
 */
export function lossColumns(h: LossHistory, width: number): number[] {
  const n = h.means.length;
  if (n <= width) return [...h.means];
  const columns: number[] = [];
  for (let j = 0; j < width; j++) {
    const from = Math.floor((j * n) / width);
    const to = Math.floor(((j + 1) * n) / width);
    let sum = 0;
    let count = 0;
    for (let i = from; i < to; i++) {
      sum += h.means[i]! * h.counts[i]!;
      count += h.counts[i]!;
    }
    columns.push(sum / count);
  }
  return columns;
}

/** Estimated time left: remaining steps at the recent (smoothed) step time. */
export function etaMs(state: DashboardState): number | undefined {
  if (!state.run || !state.last || state.stepMsEma === undefined) return undefined;
  return Math.max(0, state.run.totalSteps - state.last.step) * state.stepMsEma;
}

/**
 * Model FLOP utilisation: achieved model FLOP/s over the peak of the compute actors that
 * took part in the step. Undefined unless the backend reports a peak and the run a FLOPs
 * per token.
 */
export function mfu(state: DashboardState): number | undefined {
  const peak = state.run?.backendPeakFlops;
  const m = state.last;
  if (!peak || !m?.flopsPerToken) return undefined;
  const actors = Math.max(1, m.actors.length);
  return (m.tokensPerSec * m.flopsPerToken) / (peak * actors);
}
