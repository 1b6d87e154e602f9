// The dashboard's view of a live run: a DashboardSource over NATS.
//
// Owns: turning the coordinator's streams (run info, step metrics, actor snapshots, events)
// into dashboard updates, and the dashboard's controls into cluster requests.
// Never: draws anything (tui/ does) or changes the run except through those requests.
import type { ClusterEvent, Control, DashboardSource, DashboardUpdate, RunInfo, StepMetrics, ActorStatus } from "../tui/types.js";
import { decodeMessage } from "./codec.js";
import { requestMessage, type NatsConnection } from "./nats.js";
import { subjects } from "./subjects.js";

export class NatsDashboardSource implements DashboardSource {
  private readonly s;

  constructor(
    private readonly nc: NatsConnection,
    run: string,
  ) {
    this.s = subjects(run);
  }

  subscribe(listener: (update: DashboardUpdate) => void): () => void {
    const subs = [
      this.nc.subscribe(this.s.runInfo, { callback: (_e, m) => listener({ kind: "run", run: decodeMessage<RunInfo>(m.data) }) }),
      this.nc.subscribe(this.s.metrics, { callback: (_e, m) => listener({ kind: "step", metrics: decodeMessage<StepMetrics>(m.data) }) }),
      this.nc.subscribe(this.s.actors, { callback: (_e, m) => listener({ kind: "actors", actors: decodeMessage<ActorStatus[]>(m.data) }) }),
      this.nc.subscribe(this.s.events, {
        callback: (_e, m) => {
          const event = decodeMessage<ClusterEvent & { end?: string }>(m.data);
          listener({ kind: "event", event });
          if (event.end) listener({ kind: "end", reason: event.end });
        },
      }),
    ];
    // A late subscriber first gets the current picture from the coordinator.
    void requestMessage<{ run?: RunInfo; actors: ActorStatus[] }>(this.nc, this.s.command, { type: "snapshot" }, 3000)
      .then((snap) => {
        if (snap.run) listener({ kind: "run", run: snap.run });
        listener({ kind: "actors", actors: snap.actors });
      })
      .catch(() => undefined);
    return () => subs.forEach((s) => s.unsubscribe());
  }

  async control(c: Control): Promise<void> {
    const reply =
      c.type === "scale"
        ? await requestMessage<{ ok: boolean; error?: string }>(this.nc, this.s.scale, { compute: c.compute })
        : await requestMessage<{ ok: boolean; error?: string }>(this.nc, this.s.command, c);
    if (!reply.ok) throw new Error(reply.error ?? `the cluster refused ${c.type}`);
  }
}
