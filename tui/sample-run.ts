// A fixed, realistic stream of dashboard updates: the tiny demo run on one laptop.
//
// Owns: a deterministic story (start, checkpoint at 100, compute-1 dies at 120 and its
// groups move to compute-0, compute-2 joins at 150, a rejected message) for tests, the
// docs capture and `--replay` demos.
// Never: reads the clock or Math.random; the same arguments give the same updates.
import type { ActorStatus, RunInfo, StepMetrics } from "../actors/protocol.js";
import type { DashboardUpdate } from "./types.js";

/** 2026-11-22 10:00:00 UTC. */
export const SAMPLE_START = Date.UTC(2026, 10, 22, 10, 0, 0);
export const SAMPLE_TOTAL_STEPS = 300;
export const SAMPLE_DEATH_STEP = 120;
export const SAMPLE_JOIN_STEP = 150;
const HOST = "laptop";
const TOKENS_PER_STEP = 16 * 64;
const PARAMETERS = 231_936;

export const sampleRunInfo: RunInfo = {
  run: "demo",
  configName: "tiny.yaml",
  preset: "tiny",
  architecture: "bert",
  parameters: PARAMETERS,
  totalSteps: SAMPLE_TOTAL_STEPS,
  startedAt: SAMPLE_START,
  // One WASM SIMD core, roughly: enough to show the MFU figure in the demo.
  backendPeakFlops: 2.4e10,
};

/** Wall time of a step: two compute actors share four groups; one alone is slower. */
function stepMsAt(step: number): number {
  return computeIds(step).length === 2 ? 180 + (step % 7) * 3 : 330 + (step % 5) * 4;
}

/** The ms epoch at which `step` finished. */
export function sampleTimeAt(step: number): number {
  let t = SAMPLE_START + 2500; // actors start and join before step 1
  for (let s = 1; s <= step; s++) t += stepMsAt(s);
  return t;
}

/** A small counter-based hash in [0, 1): the loss noise is the same on every run. */
function noise(step: number): number {
  let x = Math.imul(step ^ 0x9e3779b9, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return (x >>> 0) / 2 ** 32;
}

function computeIds(step: number): string[] {
  if (step < SAMPLE_DEATH_STEP) return ["compute-0", "compute-1"];
  if (step < SAMPLE_JOIN_STEP) return ["compute-0"];
  return ["compute-0", "compute-2"];
}

function stepMetrics(step: number): StepMetrics {
  const stepMs = stepMsAt(step);
  const warm = Math.min(1, step / 30);
  const lr = step <= 30 ? 2e-3 * warm : 1e-3 * (1 + Math.cos((Math.PI * (step - 30)) / (SAMPLE_TOTAL_STEPS - 30)));
  const loss = 7.6 - 2.4 * (1 - Math.exp(-step / 70)) + (noise(step) - 0.5) * 0.25;
  const ids = computeIds(step);
  const commMs = 22 + (step % 3) * 2;
  const waitMs = ids.length === 2 ? 14 + (step % 4) * 3 : 6;
  const tokensPerSec = (TOKENS_PER_STEP * 1000) / stepMs;
  return {
    step,
    loss,
    lr,
    gradNorm: 1.9 * Math.exp(-step / 150) + 0.4 + noise(step + 7) * 0.1,
    update: "applied",
    tokens: TOKENS_PER_STEP,
    tokensPerSec,
    flopsPerToken: 6 * PARAMETERS,
    stepMs,
    computeMs: stepMs - commMs - waitMs,
    commMs,
    waitMs,
    bytesSent: 2 * 4 * PARAMETERS * (ids.length + 1),
    actors: ids.map((id, i) => ({
      id,
      groups: ids.length === 1 ? [0, 1, 2, 3] : i === 0 ? [0, 1] : [2, 3],
      stepMs: stepMs - waitMs - (i === 0 ? 0 : 5),
      tokensPerSec: tokensPerSec / ids.length,
    })),
  };
}

function actors(step: number, time: number): ActorStatus[] {
  const base = (kind: ActorStatus["kind"], id: string, pid: number, memoryBytes: number): ActorStatus => ({
    kind,
    id,
    pid,
    host: HOST,
    state: "working",
    lastHeartbeat: time - 400,
    memoryBytes,
  });
  const list: ActorStatus[] = [
    base("coordinator", "coordinator", 4101, 61e6),
    base("param-shard", "shard-0", 4102, 74e6),
    base("data-loader", "loader-0", 4103, 58e6),
    base("node-agent", `agent-${HOST}`, 4100, 49e6),
  ];
  const compute = (id: string, pid: number, groups: number[]): ActorStatus => ({
    ...base("compute", id, pid, 96e6),
    backend: "wasm",
    groups,
  });
  if (step < SAMPLE_DEATH_STEP) {
    list.push(compute("compute-0", 4104, [0, 1]), compute("compute-1", 4105, [2, 3]));
  } else if (step < SAMPLE_JOIN_STEP) {
    list.push(compute("compute-0", 4104, [0, 1, 2, 3]), {
      ...compute("compute-1", 4105, []),
      state: "dead",
      lastHeartbeat: sampleTimeAt(SAMPLE_DEATH_STEP - 1) + 100,
    });
  } else {
    list.push(compute("compute-0", 4104, [0, 1]), compute("compute-2", 4131, [2, 3]));
  }
  return list;
}

/** The updates a subscriber sees from the start of the demo run through `untilStep`. */
export function sampleRun(untilStep: number): DashboardUpdate[] {
  const updates: DashboardUpdate[] = [{ kind: "run", run: sampleRunInfo }];
  updates.push({ kind: "actors", actors: actors(0, sampleTimeAt(0)) });
  for (const id of ["shard-0", "loader-0", "compute-0", "compute-1"]) {
    updates.push({ kind: "event", event: { time: SAMPLE_START + 1200, type: "join", actor: id, message: "joined" } });
  }
  for (let step = 1; step <= Math.min(untilStep, SAMPLE_TOTAL_STEPS); step++) {
    const time = sampleTimeAt(step);
    if (step === SAMPLE_DEATH_STEP) {
      updates.push(
        { kind: "event", event: { time: time - 150, type: "death", actor: "compute-1", message: "missed heartbeat deadline (1.5s)" } },
        { kind: "event", event: { time: time - 140, type: "info", message: "groups 2-3 reassigned to compute-0" } },
      );
    }
    if (step === SAMPLE_JOIN_STEP) {
      updates.push(
        { kind: "event", event: { time: time - 900, type: "scale", message: "compute 1 → 2" } },
        { kind: "event", event: { time: time - 200, type: "join", actor: "compute-2", message: "joined (wasm)" } },
      );
    }
    if (step === 137) {
      updates.push({
        kind: "event",
        event: { time, type: "rejected", actor: "shard-0", message: "gradient for step 119 group 2 from compute-1: stale step" },
      });
    }
    updates.push({ kind: "step", metrics: stepMetrics(step) });
    if (step % 100 === 0) {
      updates.push({
        kind: "event",
        event: { time: time + 60, type: "checkpoint", message: `step ${step} saved to runs/demo/checkpoints/step-${step}` },
      });
    }
    if (step === 1 || step === SAMPLE_DEATH_STEP || step === SAMPLE_JOIN_STEP || step % 10 === 0) {
      updates.push({ kind: "actors", actors: actors(step, time) });
    }
  }
  if (untilStep >= SAMPLE_TOTAL_STEPS) updates.push({ kind: "end", reason: "finished" });
  return updates;
}
