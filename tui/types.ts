// The dashboard's contract: the updates it consumes and the source it reads them from. The
// messages themselves (run info, step metrics, actor statuses, events, controls) are the
// wire types of actors/protocol.ts.
//
// Never: imports Ink, React, NATS or anything with behaviour.

import type { ActorStatus, ClusterEvent, Control, RunInfo, StepMetrics } from "../actors/protocol.js";

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
