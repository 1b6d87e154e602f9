// The messages between actors, and between a run and its dashboard or CLI: one zod schema
// per message, checked on receipt (runtime/actor.ts `on`/`handle`, `requestMessage`), and
// the options each actor kind is started with.
//
// Owns: the shape of every message. Never: behaviour; these travel as msgpack, and a
// message that does not match its schema is rejected with a logged reason, never applied.
//
// One step t, as the coordinator drives it:
//   coordinator  ─ train.step {t, attempt, assignment} ─▶ compute actors
//   compute      ─ train.params-req.<s> (only when it lacks version t) ─▶ shard s
//   shard s      ─ train.params.<s> (tensor, meta {version, shard}) ─▶ compute actors
//   compute      ─ train.batch.<k> request ─▶ data-loader k ─ reply: masked micro-batch
//   compute      ─ train.grad.<s> (tensor, meta GradientMeta) ─▶ shard s, per aligned block
//   compute      ─ train.group-done ─▶ coordinator (loss, tokens, timings)
//   shard s      ─ train.shard-report {reduced, partials} ─▶ coordinator
//                  (verify: 2: the shard also reads train.step, to know who was dealt each
//                  block, and reports {disagreed} or {outvoted} blocks)
//   coordinator  ─ train.clip {t, clip, apply} ─▶ shards
//   shard s      ─ applies AdamW, publishes version t+1, train.shard-report {applied}
import { z } from "zod";
import { actorStates, heartbeatSchema } from "../runtime/actor.js";
import { actorKinds } from "../runtime/subjects.js";
import { architectures } from "../model/config.js";
import { trainingOptionsSchema } from "../model/training.js";

export { stepMetricsSchema, type ActorStepMetrics, type StepMetrics } from "../model/training.js";

const count = z.number().int().nonnegative();
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, "expected raw bytes");
export const replySchema = z.object({ ok: z.boolean(), error: z.string().optional() });

// ---- a training step ---------------------------------------------------------------------------

export const stepOrderSchema = z.object({
  step: count,
  /** Raised each time the groups still missing are dealt again (a death, a timeout). */
  attempt: count,
  /** compute actor id → the groups it computes in this attempt. */
  assignment: z.record(z.string(), z.array(count)),
  /**
   * Host-level combining: compute actor id → the actor of its host that adds the host's
   * blocks together and sends the sums to the shards (the combiner maps to itself). Actors
   * not named send their own blocks to the shards.
   */
  combine: z.record(z.string(), z.string()).optional(),
});

/** A node of the reduction tree: the groups [lo, hi). */
export const blockSchema = z.object({ lo: count, hi: count });

/** Travels as the meta of a gradient tensor: the slice of one aligned block for one shard. */
export const gradientMetaSchema = z.object({ step: count, block: blockSchema, shard: count, from: z.string() });

/** Travels as the meta of a parameter slice. */
export const paramsMetaSchema = z.object({ version: count, shard: count });

/** A compute actor that lacks parameters of `version` asks a shard to publish its slice again. */
export const paramsRequestSchema = z.object({ version: count.optional() });

/** What one compute actor reports of the groups it finished (their losses, its timings and bytes). */
const groupReportSchema = z.object({
  from: z.string(),
  groups: z.array(count),
  /** Sum of the masked-token losses and their count, per group, in group order. */
  lossSums: z.array(z.number()),
  counts: z.array(count),
  tokens: count,
  computeMs: z.number(),
  commMs: z.number(),
  bytesSent: count,
});

export const groupDoneSchema = groupReportSchema.extend({
  step: count,
  attempt: count,
  /** A host combiner's report also carries those of the host's actors whose blocks it sent on. */
  combined: z.array(groupReportSchema).optional(),
});

/** Travels as the meta of a whole gradient block sent to the host combiner, with the report of its groups. */
export const hostGradientMetaSchema = z.object({ step: count, attempt: count, block: blockSchema, report: groupReportSchema });

export const shardReportSchema = z.discriminatedUnion("phase", [
  /** `partials`: the per-chunk sums of squares of the reduced slice, as float64 bytes. */
  z.object({ phase: z.literal("reduced"), step: count, shard: count, partials: bytes, bytesReceived: count }),
  z.object({ phase: z.literal("applied"), step: count, shard: count, version: count }),
  z.object({ phase: z.literal("loaded"), step: count, shard: count, version: count }),
  /**
   * `verify: 2`: the copies of a block from the actors dealt it all differ. Two actors: a
   * third must compute the block; three or more: there is no majority.
   */
  z.object({ phase: z.literal("disagreed"), step: count, shard: count, block: blockSchema, actors: z.array(z.string()) }),
  /** `verify: 2`: the block was accepted from the two actors `by`, and `actor`'s copy differs from theirs. */
  z.object({ phase: z.literal("outvoted"), step: count, shard: count, block: blockSchema, actor: z.string(), by: z.array(z.string()) }),
]);

export const clipOrderSchema = z.object({
  step: count,
  /** Multiply the reduced gradient by this before AdamW. */
  clip: z.number(),
  lr: z.number(),
  /** false: skip the update (non-finite gradient); the version still advances. */
  apply: z.boolean(),
});

export const batchRequestSchema = z.object({
  step: count,
  group: count,
  /** micro-batch index within the group */
  index: count,
});

/** A masked micro-batch: every array is (batch, seqLen) row-major int32, as raw bytes. */
export const batchReplySchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), batch: count, seqLen: count, inputIds: bytes, attentionMask: bytes, tokenTypeIds: bytes, labels: bytes }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);

export const checkpointOrderSchema = z.discriminatedUnion("op", [
  z.object({ op: z.literal("save"), step: count, dir: z.string(), shards: count }),
  /** path "": the seeded initialisation (a rollback before any checkpoint). */
  z.object({ op: z.literal("load"), path: z.string() }),
]);

export const checkpointSavedSchema = replySchema.extend({
  file: z.string().optional(),
  start: count.optional(),
  end: count.optional(),
  sha256: z.string().optional(),
});

// ---- the cluster: membership, placement, control -----------------------------------------------

export const clusterEventSchema = z.object({
  /** ms epoch. */
  time: z.number(),
  /** quarantine: a compute actor outvoted under `verify: 2`, never dealt to again in this run, and stopped. */
  type: z.enum(["join", "leave", "death", "checkpoint", "rollback", "rejected", "quarantine", "scale", "pause", "resume", "stop", "info", "error"]),
  /** The actor the event is about, when there is one. */
  actor: z.string().optional(),
  message: z.string(),
  /** Set on the event that ends a run: why it ended. */
  end: z.string().optional(),
});

/** What the dashboard asks the cluster to do. `scale` gives the new total of compute actors. */
export const controlSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("scale"), compute: count }),
  z.object({ type: z.literal("checkpoint") }),
  z.object({ type: z.literal("pause") }),
  z.object({ type: z.literal("resume") }),
  z.object({ type: z.literal("stop"), checkpoint: z.boolean() }),
]);

/** Requests on the coordinator's command subject: a control, or the dashboard's first snapshot. */
export const commandSchema = z.union([controlSchema, z.object({ type: z.literal("snapshot") })]);

export const scaleRequestSchema = z.object({ compute: z.unknown() });
/** `warning`: the new number stands, but nothing could be placed now (no node agent is ready). */
export const scaleReplySchema = replySchema.extend({ compute: count.optional(), warning: z.string().optional() });
export const emptySchema = z.object({});

/** Published once when a run starts, and again when it learns more (a compute actor's peak). */
export const runInfoSchema = z.object({
  run: z.string(),
  /** The config file name as the user gave it, e.g. "tiny.yaml". */
  configName: z.string(),
  /** Model preset name, e.g. "allma-base"; "custom" when the config spelled it out. */
  preset: z.string(),
  architecture: z.enum(architectures),
  /** Trainable parameter count. */
  parameters: count,
  totalSteps: count,
  /** ms epoch. */
  startedAt: z.number(),
  /**
   * Peak FLOP/s of ONE compute actor's backend, as that actor measured it. The dashboard
   * multiplies it by the number of compute actors in a step for model FLOP utilisation.
   */
  backendPeakFlops: z.number().optional(),
});

/**
 * An actor as the dashboard shows it: the runtime's lifecycle states pass through, and
 * the coordinator may add what it knows (working, idle, paused, leaving, dead).
 */
export const actorStatusSchema = z.object({
  kind: z.enum(actorKinds),
  id: z.string(),
  pid: z.number().int(),
  host: z.string(),
  /** Compute actors only. */
  backend: z.enum(["wasm", "cuda"]).optional(),
  state: z.enum([...actorStates, "working", "idle", "paused", "leaving", "dead"]),
  /** Gradient groups assigned for the current step (compute actors). */
  groups: z.array(count).optional(),
  /** ms epoch of the last heartbeat the coordinator received. */
  lastHeartbeat: z.number(),
  /** Resident memory of the actor process. */
  memoryBytes: count.optional(),
});

/** An actor as the coordinator knows it: its last heartbeat, when that came, and who placed it. */
export const actorEntrySchema = heartbeatSchema.extend({ lastHeartbeat: z.number(), agent: z.string().optional() });

/**
 * Where a training run stands: `finished` once its last step is applied and checkpointed;
 * `stopped`, why it ended before its last step (an actor kind that cannot start).
 */
export const trainingStatusSchema = z.object({
  step: count,
  steps: count,
  finished: z.boolean(),
  lastCheckpoint: z.string().optional(),
  stopped: z.string().optional(),
});

/** The reply to `cluster status`; `training` is absent for a run started with --empty. */
export const clusterStatusSchema = z.object({
  run: z.string(),
  desired: z.record(z.string(), count),
  actors: z.array(actorEntrySchema),
  training: trainingStatusSchema.optional(),
});

/** A dashboard's first picture of a run; `end` says how it ended, if it already has. */
export const snapshotSchema = replySchema.extend({ run: runInfoSchema.optional(), actors: z.array(actorStatusSchema).default([]), end: z.string().optional() });

/** What a process authenticates with (runtime/nats-server.ts Credentials, less the run and URL). */
export const secretSchema = z.object({
  name: z.string(),
  jwt: z.string().optional(),
  seed: z.string().optional(),
  user: z.string().optional(),
  password: z.string().optional(),
  ca: z.string().optional(),
});

/**
 * `worker join` on another host asks for an identity: it sends the public half of a key it
 * made, and gets back a token for an agent id bound to that key (the seed never travels).
 */
export const joinRequestSchema = z.object({ host: z.string().min(1).max(200), publicKey: z.string().regex(/^U[A-Z2-7]{55}$/) });
export const joinReplySchema = z.union([
  z.object({ ok: z.literal(true), id: z.string(), jwt: z.string() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);

/**
 * `cluster join-host` asks for an agent identity as above, and for its own nats-server: a
 * certificate request and the addresses its peers reach it at. The reply carries the
 * certificate the run's CA signed, the run's trust lines (public JWTs) and the route URLs of
 * the servers up already.
 */
export const joinHostRequestSchema = joinRequestSchema.extend({
  csr: z.string().max(8192),
  names: z.object({ ips: z.array(z.string().max(64)).max(32), dns: z.array(z.string().max(253)).max(32) }),
});
export const joinHostReplySchema = z.union([
  z.object({ ok: z.literal(true), id: z.string(), jwt: z.string(), cert: z.string(), trust: z.string(), routes: z.array(z.string()) }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);

/** A request to a node agent: spawn or stop an actor process of its host, or list them. */
export const agentRequestSchema = z.discriminatedUnion("op", [
  z.object({
    op: z.literal("spawn"),
    kind: z.enum(["coordinator", "param-shard", "data-loader", "compute"]),
    id: z.string(),
    options: z.record(z.string(), z.unknown()).optional(),
    /** The identity the coordinator minted for this actor; absent with an existing server, where children use the agent's own. */
    creds: secretSchema.optional(),
  }),
  /** kill: SIGKILL instead of a clean stop, for tests and the dashboard's fault injection. */
  z.object({ op: z.literal("stop"), id: z.string(), kill: z.boolean().optional() }),
  z.object({ op: z.literal("list") }),
]);

// ---- what each actor kind is started with ------------------------------------------------------

/** Shards, loaders and compute actors: the run's training (none: the actor only lives) and backend. */
export const workerOptionsSchema = z.object({
  training: trainingOptionsSchema.optional(),
  backend: z.string().default("auto"),
});

export const coordinatorOptionsSchema = workerOptionsSchema.extend({
  compute: count.default(1),
  shards: count.default(1),
  loaders: count.default(1),
  heartbeatTimeoutMs: z.number().int().positive().default(3000),
  /** The run's signing key (runtime/identity.ts): the coordinator mints each actor's identity. Absent with an existing server. */
  issuerFile: z.string().optional(),
  /** The node agent of the host that ran `cluster up`: the only one given param-shards. */
  mainAgent: z.string().optional(),
  /**
   * A run whose servers form a cluster (`cluster up --listen`): the folder of the run's CA,
   * which certifies the servers of hosts that join, the run's trust lines, and the route URL
   * of the main host's server.
   */
  hosts: z.object({ tlsDir: z.string(), trust: z.string(), route: z.string() }).optional(),
  /** Set by the node agent when it restarts a coordinator that died: rebuild the state from the cluster, do not start afresh. */
  recovering: z.boolean().default(false),
});

export type StepOrder = z.infer<typeof stepOrderSchema>;
export type GradientMeta = z.infer<typeof gradientMetaSchema>;
export type GroupDone = z.infer<typeof groupDoneSchema>;
export type GroupReport = z.infer<typeof groupReportSchema>;
export type HostGradientMeta = z.infer<typeof hostGradientMetaSchema>;
export type ShardReport = z.infer<typeof shardReportSchema>;
export type ClipOrder = z.infer<typeof clipOrderSchema>;
export type BatchRequest = z.infer<typeof batchRequestSchema>;
export type BatchReply = z.infer<typeof batchReplySchema>;
export type CheckpointOrder = z.infer<typeof checkpointOrderSchema>;
export type CheckpointSaved = z.infer<typeof checkpointSavedSchema>;
export type ClusterEvent = z.infer<typeof clusterEventSchema>;
export type ClusterEventType = ClusterEvent["type"];
export type Control = z.infer<typeof controlSchema>;
export type RunInfo = z.infer<typeof runInfoSchema>;
export type ActorStatus = z.infer<typeof actorStatusSchema>;
export type AgentRequest = z.infer<typeof agentRequestSchema>;
export type ActorEntry = z.infer<typeof actorEntrySchema>;
export type ClusterStatus = z.infer<typeof clusterStatusSchema>;
