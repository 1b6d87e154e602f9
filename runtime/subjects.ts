// NATS subjects of a run, and which identity may publish or subscribe to which.
//
// Owns: every subject name (all under `aze.<run>.`) and the permissions each identity's
// token carries (runtime/identity.ts mints them). Never: talks to a server.
//
// A subject names what travels on it; its last token names who sent it (the sender's actor
// id, which the server lets only that actor use) or who it is for.

/** The actor kinds that run as processes. */
export const actorKinds = ["coordinator", "param-shard", "data-loader", "compute", "node-agent"] as const;
export type ActorKind = (typeof actorKinds)[number];

/** The states an actor reports in its heartbeats. */
export const actorStates = ["starting", "ready", "draining", "stopped"] as const;
export type ActorState = (typeof actorStates)[number];

/**
 * Identities: one per actor, named by its id, with its kind's permissions; `client` is the
 * CLI and dashboard; `worker` is what `worker join` on another host starts with (it may only
 * ask to join); `host` is what `cluster join-host` starts with (it may only ask to join with a
 * nats-server of its own, which the run's CA then certifies as a route peer); `launcher` is
 * `cluster up` itself while it starts the run.
 */
export const roles = [...actorKinds, "client", "worker", "host", "launcher"] as const;
export type Role = (typeof roles)[number];

export function subjects(run: string) {
  const p = `aze.${run}`;
  return {
    all: `${p}.>`,
    /** Heartbeats: `hb.<kind>.<id>`, published by every actor, read by the coordinator. */
    heartbeat: (kind: ActorKind, id: string) => `${p}.hb.${kind}.${id}`,
    heartbeats: `${p}.hb.>`,
    /** Requests to one actor (stop, status): `ctl.<id>`. */
    control: (id: string) => `${p}.ctl.${id}`,
    /** Requests to a node agent: spawn and stop actor processes. */
    agent: (agentId: string) => `${p}.agent.${agentId}`,
    /** A node agent on another host asks the coordinator for an identity of its own. */
    join: `${p}.join`,
    /** A host asks to join with a nats-server of its own: the coordinator certifies it as a route peer. */
    joinHost: `${p}.join-host`,
    /** Cluster-wide requests answered by the coordinator. */
    status: `${p}.cluster.status`,
    scale: `${p}.cluster.scale`,
    command: `${p}.cluster.command`,
    shutdown: `${p}.cluster.shutdown`,
    /** Published by the coordinator: step metrics, actor snapshots, run info. */
    metrics: `${p}.metrics`,
    actors: `${p}.actors`,
    runInfo: `${p}.run`,
    /** Events, `events.<sender id>`: every actor says what happened to it or its children. */
    event: (from: string) => `${p}.events.${from}`,
    events: `${p}.events.>`,
    /** Training traffic (see actors/): steps, parameters, gradients, batches. */
    step: `${p}.train.step`,
    /** A shard's slice of the parameters, `params.<shard>`: only that shard may publish it. */
    params: (shard: number) => `${p}.train.params.${shard}`,
    paramsRequest: (shard: number) => `${p}.train.params-req.${shard}`,
    /** A gradient block for one shard, `grad.<shard>.<sender id>`. */
    gradients: (shard: number, from: string) => `${p}.train.grad.${shard}.${from}`,
    gradientsTo: (shard: number) => `${p}.train.grad.${shard}.*`,
    /**
     * A whole gradient block for the host combiner `to` (a compute actor of the same host),
     * `host-grad.<to>.<sender id>`: it adds the blocks of its host and sends the sums on.
     */
    hostGradients: (to: string, from: string) => `${p}.train.host-grad.${to}.${from}`,
    hostGradientsTo: (to: string) => `${p}.train.host-grad.${to}.*`,
    /** A shard's reports to the coordinator, `shard-report.<shard>`. */
    shardReport: (shard: number) => `${p}.train.shard-report.${shard}`,
    shardReports: `${p}.train.shard-report.*`,
    clip: `${p}.train.clip`,
    /** A compute actor's losses of the groups it finished, `group-done.<sender id>`. */
    groupDone: (from: string) => `${p}.train.group-done.${from}`,
    groupDones: `${p}.train.group-done.*`,
    /** Micro-batch requests, served by whichever data-loader of the queue group is free. */
    batch: `${p}.train.batch`,
    /** Checkpoint orders (save, load) to one shard, request/reply. */
    checkpoint: (shard: number) => `${p}.train.checkpoint.${shard}`,
  };
}

export type Subjects = ReturnType<typeof subjects>;

/** The sender id a subject ends with (`grad.0.compute-3` → `compute-3`). */
export function senderOf(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}

/** Each identity reads replies on its own inbox prefix only, so no one reads another's. */
export function inboxPrefix(name: string): string {
  return `_INBOX.${name}`;
}

/** The shard index of a param-shard's id (`shard-2` → 2). */
export function shardIndexOf(id: string): number {
  return Number(id.slice(id.lastIndexOf("-") + 1));
}

/**
 * What the identity `id` of `role` may do. Publish permissions name the identity's own
 * subjects: its heartbeat, its events, its gradients (`grad.*.<id>`), its shard's
 * parameters. `respond` lets it answer requests it received (on the requester's inbox,
 * once), which is the only way anyone publishes to another's inbox. The `client` role
 * (CLI, dashboard) reads the run's public streams and asks the coordinator; it can never
 * inject training traffic.
 */
export function permissionsFor(role: Role, run: string, id: string): { publish: string[]; subscribe: string[]; respond: boolean } {
  const p = `aze.${run}`;
  const s = subjects(run);
  const inbox = `${inboxPrefix(id)}.>`;
  const own = (kind: ActorKind) => [s.heartbeat(kind, id), s.event(id)];
  switch (role) {
    case "coordinator":
      return {
        publish: [
          ...own("coordinator"),
          s.metrics,
          s.actors,
          s.runInfo,
          s.step,
          s.clip,
          `${p}.ctl.*`,
          `${p}.agent.*`,
          `${p}.train.checkpoint.*`,
          `${p}.cluster.*`,
        ],
        // Trusted with the whole run: it reads everything but other identities' inboxes.
        subscribe: [`${p}.>`, inbox],
        respond: true,
      };
    case "param-shard": {
      const shard = shardIndexOf(id);
      return {
        publish: [...own("param-shard"), s.params(shard), s.shardReport(shard)],
        subscribe: [s.control(id), s.gradientsTo(shard), s.paramsRequest(shard), s.step, s.clip, s.checkpoint(shard), inbox],
        respond: true,
      };
    }
    case "data-loader":
      return { publish: own("data-loader"), subscribe: [s.control(id), s.batch, inbox], respond: true };
    case "compute":
      return {
        publish: [...own("compute"), `${p}.train.grad.*.${id}`, `${p}.train.host-grad.*.${id}`, `${p}.train.params-req.*`, s.batch, s.groupDone(id)],
        subscribe: [s.control(id), s.step, `${p}.train.params.*`, s.hostGradientsTo(id), inbox],
        respond: true,
      };
    case "node-agent":
      return { publish: own("node-agent"), subscribe: [s.agent(id), s.control(id), inbox], respond: true };
    case "client":
      return { publish: [`${p}.cluster.*`], subscribe: [s.metrics, s.events, s.actors, s.runInfo, inbox], respond: false };
    case "worker":
      return { publish: [s.join], subscribe: [inbox], respond: false };
    case "host":
      return { publish: [s.joinHost], subscribe: [inbox], respond: false };
    case "launcher":
      return { publish: [`${p}.agent.*`, `${p}.cluster.*`], subscribe: [s.events, inbox], respond: false };
  }
}
