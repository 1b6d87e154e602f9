// NATS subjects of a run, and which role may publish or subscribe to which.
//
// Owns: every subject name (all under `aze.<run>.`) and the per-role permissions written
// into the nats-server config. Never: talks to a server.
//
// A subject names what travels on it; the last tokens name who it is for.

/** The actor kinds that run as processes; the `client` role is the CLI and dashboard. */
export const actorKinds = ["coordinator", "param-shard", "data-loader", "compute", "node-agent"] as const;
export type ActorKind = (typeof actorKinds)[number];

export const roles = [...actorKinds, "client"] as const;
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
    /** Cluster-wide requests answered by the coordinator. */
    status: `${p}.cluster.status`,
    scale: `${p}.cluster.scale`,
    command: `${p}.cluster.command`,
    shutdown: `${p}.cluster.shutdown`,
    /** Published by the coordinator: step metrics, events, actor snapshots, run info. */
    metrics: `${p}.metrics`,
    events: `${p}.events`,
    actors: `${p}.actors`,
    runInfo: `${p}.run`,
    /** Training traffic (see actors/): steps, parameters, gradients, batches. */
    step: `${p}.train.step`,
    params: (shard: number) => `${p}.train.params.${shard}`,
    paramsRequest: (shard: number) => `${p}.train.params-req.${shard}`,
    gradients: (shard: number) => `${p}.train.grad.${shard}`,
    shardReport: `${p}.train.shard-report`,
    clip: `${p}.train.clip`,
    groupDone: `${p}.train.group-done`,
    /** Micro-batch requests, served by whichever data-loader of the queue group is free. */
    batch: `${p}.train.batch`,
    /** Checkpoint orders (save, load) to one shard, request/reply. */
    checkpoint: (shard: number) => `${p}.train.checkpoint.${shard}`,
  };
}

export type Subjects = ReturnType<typeof subjects>;

/**
 * What each role may do. Replies to requests travel on `_INBOX.>`, so every role may
 * publish there and subscribe to it. The `client` role (CLI, dashboard) may read the
 * run's public streams and ask the coordinator; it can never inject training traffic.
 */
export function permissionsFor(role: Role, run: string): { publish: string[]; subscribe: string[] } {
  const p = `aze.${run}`;
  const inbox = "_INBOX.>";
  const ownHeartbeat = (kind: ActorKind) => `${p}.hb.${kind}.*`;
  switch (role) {
    case "coordinator":
      return { publish: [`${p}.>`, inbox], subscribe: [`${p}.>`, inbox] };
    case "param-shard":
      return {
        publish: [ownHeartbeat("param-shard"), `${p}.train.params.*`, `${p}.train.shard-report`, `${p}.events`, inbox],
        subscribe: [`${p}.ctl.*`, `${p}.train.grad.*`, `${p}.train.params-req.*`, `${p}.train.clip`, `${p}.train.checkpoint.*`, `${p}.train.step`, inbox],
      };
    case "data-loader":
      return {
        publish: [ownHeartbeat("data-loader"), `${p}.events`, inbox],
        subscribe: [`${p}.ctl.*`, `${p}.train.batch`, inbox],
      };
    case "compute":
      return {
        publish: [ownHeartbeat("compute"), `${p}.train.grad.*`, `${p}.train.params-req.*`, `${p}.train.batch`, `${p}.train.group-done`, `${p}.events`, inbox],
        subscribe: [`${p}.ctl.*`, `${p}.train.step`, `${p}.train.params.*`, inbox],
      };
    case "node-agent":
      return {
        publish: [ownHeartbeat("node-agent"), `${p}.events`, inbox],
        subscribe: [`${p}.agent.*`, `${p}.ctl.*`, inbox],
      };
    case "client":
      return {
        publish: [`${p}.cluster.*`, inbox],
        subscribe: [`${p}.metrics`, `${p}.events`, `${p}.actors`, `${p}.run`, inbox],
      };
  }
}
