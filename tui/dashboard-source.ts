// The dashboard's view of a live run: a DashboardSource over NATS.
//
// Owns: turning the coordinator's streams (run info, step metrics, actor snapshots, events)
// into dashboard updates, and the dashboard's controls into cluster requests.
// Never: draws anything (tui/ does) or changes the run except through those requests.
import type { z } from "zod";
import { actorStatusSchema, clusterEventSchema, replySchema, runInfoSchema, snapshotSchema, stepMetricsSchema, type Control } from "../actors/protocol.js";
import { decodeChecked } from "../runtime/codec.js";
import { requestMessage, type Msg, type NatsConnection } from "../runtime/nats.js";
import { subjects } from "../runtime/subjects.js";
import type { DashboardSource, DashboardUpdate } from "./types.js";

/** A subscription callback that hands on messages matching `schema`; others are not drawn. */
function checked<S extends z.ZodType>(schema: S, deliver: (body: z.infer<S>) => void) {
  return (_err: unknown, m: Msg) => {
    try {
      deliver(decodeChecked(schema, m.data, `message on ${m.subject}`));
    } catch {
      // A wrong-shaped message: the coordinator logs what it sends; the dashboard skips it.
    }
  };
}

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
      this.nc.subscribe(this.s.runInfo, { callback: checked(runInfoSchema, (run) => listener({ kind: "run", run })) }),
      this.nc.subscribe(this.s.metrics, { callback: checked(stepMetricsSchema, (metrics) => listener({ kind: "step", metrics })) }),
      this.nc.subscribe(this.s.actors, { callback: checked(actorStatusSchema.array(), (actors) => listener({ kind: "actors", actors })) }),
      this.nc.subscribe(this.s.events, {
        callback: checked(clusterEventSchema, (event) => {
          listener({ kind: "event", event });
          if (event.end) listener({ kind: "end", reason: event.end });
        }),
      }),
    ];
    // A late subscriber first gets the current picture from the coordinator.
    void requestMessage(this.nc, this.s.command, { type: "snapshot" }, snapshotSchema, 3000)
      .then((snap) => {
        if (snap.run) listener({ kind: "run", run: snap.run });
        listener({ kind: "actors", actors: snap.actors });
        if (snap.end) listener({ kind: "end", reason: snap.end });
      })
      .catch(() => undefined);
    return () => {
      for (const s of subs) s.unsubscribe();
    };
  }

  async control(c: Control): Promise<void> {
    const reply =
      c.type === "scale"
        ? await requestMessage(this.nc, this.s.scale, { compute: c.compute }, replySchema)
        : await requestMessage(this.nc, this.s.command, c, replySchema);
    if (!reply.ok) throw new Error(reply.error ?? `the cluster refused ${c.type}`);
  }
}
