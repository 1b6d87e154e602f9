// The dashboard's contract: the messages it consumes and the controls it sends.
//
// Owns: the shape of everything that flows between a running cluster and the dashboard.
// Never: imports Ink, React, NATS or anything with behaviour. These are plain objects of
// numbers, strings and arrays so they can travel as msgpack over NATS unchanged
// (times are ms since the epoch, never Date objects).

/** Published once when a run starts, and again to any late subscriber. */
export interface RunInfo {
  run: string;
  /** The config file name as the user gave it, e.g. "tiny.yaml". */
  configName: string;
  /** Model preset name, e.g. "allma-base"; "custom" when the config spelled it out. */
  preset: string;
  architecture: "bert" | "neobert";
  /** Trainable parameter count. */
  parameters: number;
  totalSteps: number;
  /** ms epoch. */
  startedAt: number;
  /**
   * Peak FLOP/s of ONE compute actor's backend (e.g. a GPU's bf16 tensor peak). The
   * dashboard multiplies it by the number of compute actors in a step for MFU.
   */
  backendPeakFlops?: number;
}

/** One compute actor's share of a step. */
export interface ActorStepMetrics {
  id: string;
  /** Gradient groups this actor computed in the step. */
  groups: number[];
  stepMs: number;
  tokensPerSec: number;
}

/** Published by the coordinator after every step. */
export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens in this step's global batch. */
  tokens: number;
  tokensPerSec: number;
  /** Model FLOPs per token for forward + backward (about 6 × parameters for an encoder). */
  flopsPerToken?: number;
  /** Wall time of the whole step at the coordinator. */
  stepMs: number;
  /** Mean over compute actors of forward/backward time. */
  computeMs: number;
  /** Time spent moving parameters and gradients through NATS. */
  commMs: number;
  /** Time the coordinator waited for the slowest group (stragglers, reassignment). */
  waitMs: number;
  /** Bytes published through NATS during the step, all actors together. */
  bytesSent: number;
  actors: ActorStepMetrics[];
}

export type ActorKind = "coordinator" | "param-shard" | "data-loader" | "compute" | "node-agent";

/**
 * The runtime's heartbeat states (starting, ready, draining, stopped) pass through as they
 * are; the coordinator may add what it knows (working, idle, paused, dead).
 */
export type ActorState = "starting" | "ready" | "working" | "idle" | "paused" | "draining" | "leaving" | "stopped" | "dead";

export interface ActorStatus {
  kind: ActorKind;
  id: string;
  pid: number;
  host: string;
  /** Compute actors only. */
  backend?: "wasm" | "cuda";
  state: ActorState;
  /** Gradient groups assigned for the current step (compute actors). */
  groups?: number[];
  /** ms epoch of the last heartbeat the coordinator received. */
  lastHeartbeat: number;
  /** Resident memory of the actor process. */
  memoryBytes?: number;
}

export type ClusterEventType = "join" | "leave" | "death" | "checkpoint" | "rollback" | "rejected" | "scale" | "pause" | "resume" | "stop" | "info" | "error";

export interface ClusterEvent {
  /** ms epoch. */
  time: number;
  type: ClusterEventType;
  /** The actor the event is about, when there is one. */
  actor?: string;
  message: string;
}

/** What the dashboard asks the cluster to do. `scale` gives the new total of compute actors. */
export type Control =
  | { type: "scale"; compute: number }
  | { type: "checkpoint" }
  | { type: "pause" }
  | { type: "resume" }
  | { type: "stop"; checkpoint: boolean };

/**
 * Everything the dashboard consumes. `actors` is always a full snapshot (the dashboard
 * replaces its table with it); `end` says the run is over (finished or stopped) and no
 * more updates will come.
 */
export type DashboardUpdate =
  | { kind: "run"; run: RunInfo }
  | { kind: "step"; metrics: StepMetrics }
  | { kind: "actors"; actors: ActorStatus[] }
  | { kind: "event"; event: ClusterEvent }
  | { kind: "end"; reason: string };

/**
 * A live or replayed run. A new subscriber must first receive enough to draw the current
 * picture (the run info, the latest actors snapshot) before live updates.
 */
export interface DashboardSource {
  /** Returns the unsubscribe function. */
  subscribe(listener: (update: DashboardUpdate) => void): () => void;
  /** Resolves once the cluster accepted the control; rejects with a message when it did not. */
  control(c: Control): Promise<void>;
}
