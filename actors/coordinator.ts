// The coordinator: one per run. Owns membership and the desired shape of the cluster.
//
// Owns: who is alive (from heartbeats), how many actors of each kind should run, placing
// new actors on node agents, replacing the dead, stopping the surplus (and giving up on a
// kind that keeps failing to start), answering `cluster status`, `cluster scale` and
// `cluster down`. Restarted by its node agent after a crash, it rebuilds all of this from
// the cluster: see `settle`.
// Never: computes gradients or holds parameters.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { openPlan, type TrainingPlan } from "../model/training.js";
import { Actor, heartbeatSchema, type Heartbeat } from "../runtime/actor.js";
import { mintIdentity, readIssuer, type Issuer } from "../runtime/identity.js";
import { requestMessage, type Msg } from "../runtime/nats.js";
import { servePrometheus, type Gauge } from "../runtime/prometheus.js";
import { UserError } from "../runtime/errors.js";
import { senderOf } from "../runtime/subjects.js";
import { signHostRequest } from "../runtime/tls.js";
import {
  clusterEventSchema,
  commandSchema,
  coordinatorOptionsSchema,
  emptySchema,
  joinHostRequestSchema,
  joinRequestSchema,
  type joinHostReplySchema,
  type joinReplySchema,
  replySchema,
  scaleRequestSchema,
  type ActorEntry,
  type ActorStatus,
  type AgentRequest,
  type ClusterStatus,
  type ClusterEventType,
  type RunInfo,
} from "./protocol.js";
import { StepDriver } from "./step-driver.js";

/** Kinds the coordinator places; node agents join by themselves. */
const placedKinds = ["param-shard", "data-loader", "compute"] as const;
type PlacedKind = (typeof placedKinds)[number];
const idPrefix: Record<PlacedKind, string> = { "param-shard": "shard", "data-loader": "loader", compute: "compute" };

/** Start failures of one kind in a row (no start of that kind succeeding between) after which none is placed again. */
const maxStartFailures = 3;

/** What a node agent's heartbeat says about its children. */
const agentChildrenSchema = z.array(z.object({ kind: z.string(), id: z.string() }));

/**
 * The deadline for a main thread that does not answer while its heartbeat thread still beats
 * (the process lives, but makes no progress): five times the longest recent step, and never
 * under 30 s. One synchronous call (a kernel call, AdamW over a slice, hashing a checkpoint)
 * belongs to a step, so it never takes several whole steps in a healthy run; five leaves room
 * for a machine that got busier. A death is costly (a shard's rolls the run back), so the
 * floor is generous: it holds before any step is measured, and in runs without training.
 */
const unresponsiveFloorMs = 30_000;
const unresponsiveFactor = 5;

export class Coordinator extends Actor {
  private readonly members = new Map<string, ActorEntry>();
  /** Actors asked to start that have not sent a heartbeat yet: id → when asked. */
  private readonly starting = new Map<string, { kind: PlacedKind; agent: string; since: number }>();
  /** Actors asked to stop: they no longer count towards the desired numbers. */
  private readonly leaving = new Set<string>();
  private readonly options = coordinatorOptionsSchema.parse(this.spec.options);
  private readonly desired: Record<PlacedKind, number> = {
    "param-shard": this.options.shards,
    "data-loader": this.options.loaders,
    compute: this.options.compute,
  };
  private nextIndex: Record<PlacedKind, number> = { "param-shard": 0, "data-loader": 0, compute: 0 };
  /** The run's signing key: mints each placed actor's identity. Absent with an existing server. */
  private issuer?: Issuer;
  /**
   * False while a restarted coordinator is still hearing who runs: it places, retires and
   * trains nothing until every live actor has had time to send a heartbeat.
   */
  private settled = !this.options.recovering;
  /** Actors this coordinator placed that have not sent a heartbeat yet: id → kind. Outlives `starting`, so a start failure is counted whatever arrives first. */
  private readonly unheard = new Map<string, PlacedKind>();
  /** Start failures in a row, per kind. */
  private readonly startFailures: Record<PlacedKind, number> = { "param-shard": 0, "data-loader": 0, compute: 0 };
  /** Set when a kind failed to start `maxStartFailures` times in a row: why the run stopped. */
  private gaveUp?: string;
  private reconcileTimer?: NodeJS.Timeout;
  private snapshotTimer?: NodeJS.Timeout;
  private metricsServer?: import("node:http").Server;
  private metricsUrl?: string;
  private reconciling = false;
  /** When a heartbeat of any actor (this one's own echo included) last arrived: the server's pulse. */
  private lastTraffic = Date.now();
  private shuttingDown = false;
  /** How the run ended (finished, an error...), once it has: the `end` of its last event. */
  private ended?: string;

  private training?: TrainingPlan;
  private driver?: StepDriver;
  private driverDone?: Promise<void>;
  private startedAt = Date.now();
  /** The peak FLOP/s the compute actors measured, last published in the run info. */
  private peakFlops?: number;

  protected override async onStart(): Promise<void> {
    this.issuer = this.options.issuerFile ? readIssuer(this.options.issuerFile) : undefined;
    this.on(this.subjects.heartbeats, heartbeatSchema, (hb, msg) => {
      // Only `id` may publish on `hb.<kind>.<id>` (the server enforces it): a body naming
      // someone else is a forgery, never a membership change.
      if (msg.subject !== this.subjects.heartbeat(hb.kind, hb.id))
        return this.log.warn("rejected", { subject: msg.subject, reason: `heartbeat claims to be ${hb.kind} ${hb.id}` });
      this.onHeartbeat(hb);
    });
    this.on(this.subjects.events, clusterEventSchema, (event, msg) => {
      // A child that exited is gone now; do not wait for its heartbeat deadline. Only its
      // own node agent (or the actor itself) can say so: anyone else's word is ignored.
      if (!event.actor || !this.speaksFor(senderOf(msg.subject), event.actor)) return;
      if (event.type === "death" || event.type === "leave") this.forget(event.actor, event.type === "death" ? "died" : "left");
      // An actor whose start fails says so itself before it exits, in these words (runtime/actor.ts).
      if (event.type === "error" && this.unheard.has(event.actor) && event.message.includes(`${event.actor} failed to start: `))
        this.startFailed(event.actor, event.message);
    });
    this.handle(this.subjects.join, joinRequestSchema, (body) => this.join(body));
    this.handle(this.subjects.joinHost, joinHostRequestSchema, (body) => this.joinHost(body));
    this.handle(this.subjects.status, emptySchema, () => this.clusterStatus());
    this.handle(this.subjects.scale, scaleRequestSchema, (body) => this.scale(body.compute));
    this.handle(this.subjects.shutdown, emptySchema, async () => {
      setImmediate(() => void this.stop("cluster down"));
      return { ok: true };
    });
    this.handle(this.subjects.command, commandSchema, (body) => this.command(body));
    this.reconcileTimer = setInterval(() => void this.reconcile(), 250);
    this.snapshotTimer = setInterval(() => this.publish(this.subjects.actors, this.actorStatuses()), 1000);
    const prometheus = await servePrometheus(() => this.gauges());
    this.metricsServer = prometheus.server;
    this.metricsUrl = prometheus.url;
    if (this.options.training) {
      this.training = openPlan(this.options.training);
      this.driver = new StepDriver(this.driverHost(), this.training, this.options.recovering);
    }
    // Training runs once this actor is ready; a restarted one first hears out the cluster
    // (heartbeats come every 500 ms; half the deadline hears each live actor several times).
    if (this.options.recovering) setTimeout(() => this.settle(), this.silenceMs);
    else setImmediate(() => this.startTraining());
  }

  private startTraining(): void {
    const driver = this.driver;
    if (!driver) return;
    this.publish(this.subjects.runInfo, this.runInfo());
    this.driverDone = driver.run().catch((err) => {
      this.log.error("training-failed", { error: String((err as Error).stack ?? err) });
      this.event("error", undefined, `training stopped: ${(err as Error).message}`, { end: "error" });
    });
  }

  /**
   * A restarted coordinator has heard every live actor's heartbeat. It adopts what the
   * agents are still starting (their heartbeats list their children), so nothing is placed
   * twice; keeps the number of compute actors it found (a `cluster scale` survives); and
   * then places and trains. The step driver rebuilds the training state from the shards.
   */
  private settle(): void {
    if (this.shuttingDown) return;
    const now = Date.now();
    for (const agent of this.members.values()) {
      const children = agent.kind === "node-agent" ? agentChildrenSchema.safeParse(agent.children) : undefined;
      for (const child of children?.data ?? []) {
        this.noteId(child.id);
        const kind = placedKinds.find((k) => k === child.kind);
        if (kind && !this.members.has(child.id)) this.starting.set(child.id, { kind, agent: agent.id, since: now });
      }
    }
    // Ids of actors that ran on this host and are gone: a new one never takes an old one's id.
    for (const file of readdirSync(join(this.spec.runDir, "logs"))) this.noteId(file.replace(/\.(jsonl|out)$/, ""));
    const compute = [...this.members.values(), ...this.starting.values()].filter((m) => m.kind === "compute").length;
    if (compute > 0) this.desired.compute = compute;
    const found = [...this.members.values()].map((m) => m.id).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    this.event("info", undefined, `the coordinator restarted and found ${found.length} actors (${found.join(", ")}); ${this.starting.size} still starting`);
    this.settled = true;
    this.startTraining();
  }

  /** Keeps new ids past every id seen, so a restarted coordinator never reuses one. */
  private noteId(id: string): void {
    for (const kind of placedKinds) {
      const index = new RegExp(`^${idPrefix[kind]}-(\\d+)$`).exec(id)?.[1];
      if (index !== undefined) this.nextIndex[kind] = Math.max(this.nextIndex[kind], Number(index) + 1);
    }
  }

  /**
   * An actor this coordinator placed failed to start. Start-up errors (a corrupt token
   * shard, a damaged checkpoint) do not mend: after `maxStartFailures` in a row of one kind
   * no more are placed, training stops, and the run ends with the actor's own error.
   */
  private startFailed(id: string, message: string): void {
    const kind = this.unheard.get(id)!;
    this.unheard.delete(id);
    const failures = ++this.startFailures[kind];
    this.log.warn("start-failed", { id, failures, message });
    if (failures < maxStartFailures || this.gaveUp) return;
    this.gaveUp = `${message} (${failures} ${kind} actors in a row failed to start: none is placed again and training is stopped)`;
    this.driver?.stop();
    this.event("error", id, this.gaveUp, { end: "error" });
  }

  /** Whether `sender` may report on `actor`: the actor itself, or the node agent that runs it. */
  private speaksFor(sender: string, actor: string): boolean {
    const agent = this.members.get(actor)?.agent ?? this.starting.get(actor)?.agent;
    return sender === actor || sender === agent;
  }

  /**
   * `worker join` from another host: mints a node-agent identity for the key it made, under
   * a new id. The worker's own credentials allow nothing but this request, so whoever holds
   * them can add a host that computes, and nothing more (docs/runtime.md).
   */
  private async join(body: z.infer<typeof joinRequestSchema>): Promise<z.infer<typeof joinReplySchema>> {
    if (!this.issuer) return { ok: false, error: "this run uses an existing NATS server: join with that server's credentials instead" };
    const host = body.host.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 60) || "host";
    // Random, not counted: a restarted coordinator must never hand out an id already in use.
    const id = `agent-${host}-${randomBytes(3).toString("hex")}`;
    const identity = await mintIdentity(this.issuer, "node-agent", id, body.publicKey);
    this.log.info("joined", { id, host: body.host });
    return { ok: true, id, jwt: identity.jwt };
  }

  /**
   * `cluster join-host`: a host with a nats-server of its own. Besides an agent identity, its
   * server gets a certificate from the run's CA for the addresses it names, so it may route
   * to the run's servers; the run's servers then form one NATS cluster. Only `host.json` may
   * ask (the server enforces it): a route peer sees every message of the run.
   */
  private async joinHost(body: z.infer<typeof joinHostRequestSchema>): Promise<z.infer<typeof joinHostReplySchema>> {
    const hosts = this.options.hosts;
    if (!hosts)
      return {
        ok: false,
        error: "this run's server listens on loopback only: start the run with `cluster up --listen ADDRESS` to let hosts join with servers of their own",
      };
    const joined = await this.join(body);
    if (!joined.ok) return joined;
    try {
      const cert = signHostRequest(hosts.tlsDir, body.csr, body.names);
      // The main server's route is enough: NATS servers tell each other about every peer (gossip).
      return { ...joined, cert, trust: readFileSync(hosts.trust, "utf8"), routes: [hosts.route] };
    } catch (err) {
      return { ok: false, error: err instanceof UserError ? err.message : `could not certify the host's server: ${(err as Error).message}` };
    }
  }

  private driverHost() {
    const live = (kind: string) =>
      [...this.members.values()]
        .filter((m) => m.kind === kind && m.state === "ready" && !this.leaving.has(m.id))
        .map((m) => m.id)
        .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    return {
      nc: this.nc,
      subjects: this.subjects,
      log: this.log,
      runDir: this.spec.runDir,
      liveCompute: () => live("compute"),
      desiredCompute: () => this.desired.compute,
      liveShards: () => live("param-shard"),
      computeBusy: () => [...this.members.values()].some((m) => m.kind === "compute" && Array.isArray(m.groups) && m.groups.length > 0),
      shardVersions: () =>
        [...this.members.values()].filter((m) => m.kind === "param-shard" && m.state === "ready" && !this.leaving.has(m.id)).map((m) => m.version),
      hostOf: (id: string) => this.members.get(id)?.host,
      agentOf: (id: string) => this.members.get(id)?.agent,
      retire: (id: string, reason: string) => {
        const member = this.members.get(id);
        if (member && !this.leaving.has(id)) void this.retire(member, reason);
      },
      event: (type: ClusterEventType, actor: string | undefined, message: string, extra?: Record<string, unknown>) => this.event(type, actor, message, extra),
      publish: (subject: string, body: unknown) => this.publish(subject, body),
      on: <S extends z.ZodType>(subject: string, schema: S, handler: (body: z.infer<S>, msg: Msg) => void) => this.on(subject, schema, handler),
    };
  }

  /** What the Prometheus endpoint shows: the last step's metrics and the actors by kind. */
  private gauges(): Gauge[] {
    const perKind = (counts: Iterable<[string, number]>) => [...counts].map(([kind, value]) => ({ labels: { kind }, value }));
    const byKind = new Map<string, number>();
    for (const m of this.members.values()) byKind.set(m.kind, (byKind.get(m.kind) ?? 0) + 1);
    const last = this.driver?.lastMetrics;
    const stepGauges: Gauge[] = last
      ? [
          { name: "aze_step", help: "Steps completed.", samples: [{ value: last.step }] },
          { name: "aze_loss", help: "MLM loss of the last step.", samples: [{ value: last.loss }] },
          { name: "aze_learning_rate", help: "Learning rate of the last step.", samples: [{ value: last.lr }] },
          { name: "aze_gradient_norm", help: "Global gradient norm before clipping.", samples: [{ value: last.gradNorm }] },
          { name: "aze_tokens_per_second", help: "Tokens per second over the last step.", samples: [{ value: last.tokensPerSec }] },
          { name: "aze_step_seconds", help: "Wall time of the last step.", samples: [{ value: last.stepMs / 1000 }] },
        ]
      : [];
    return [
      ...stepGauges,
      { name: "aze_actors", help: "Live actors by kind.", samples: perKind(byKind) },
      { name: "aze_desired_actors", help: "Actors the coordinator aims for, by kind.", samples: perKind(Object.entries(this.desired)) },
    ];
  }

  /** Run info for dashboards; undefined for a run without training. */
  private runInfo(): RunInfo | undefined {
    const t = this.training;
    if (!t) return undefined;
    return {
      run: this.spec.run,
      configName: t.configName,
      preset: t.config.model.preset ?? "custom",
      architecture: t.config.model.architecture,
      parameters: t.parameterCount,
      totalSteps: t.steps,
      startedAt: this.startedAt,
      backendPeakFlops: this.peakFlops,
    };
  }

  /** Dashboard and CLI commands: a snapshot, or a control. */
  private async command(body: z.infer<typeof commandSchema>): Promise<{ ok: boolean; error?: string; [k: string]: unknown }> {
    switch (body.type) {
      case "snapshot":
        return { ok: true, run: this.runInfo(), actors: this.actorStatuses(), ...(this.ended ? { end: this.ended } : {}) };
      case "scale":
        return this.scale(body.compute);
      case "stop":
        setImmediate(() => void this.stop("stopped from the dashboard"));
        return { ok: true };
    }
    const driver = this.driver;
    if (!driver) return { ok: false, error: `"${body.type}" needs a training run; this run has no training config` };
    switch (body.type) {
      case "pause":
      case "resume":
        driver.paused = body.type === "pause";
        driver.membershipChanged("", false);
        this.event(body.type, undefined, body.type === "pause" ? `paused before step ${driver.step + 1}` : `resumed at step ${driver.step + 1}`);
        return { ok: true };
      case "checkpoint":
        driver.requestCheckpoint();
        return { ok: true };
    }
    return { ok: false, error: `unknown command ${JSON.stringify((body as { type?: unknown }).type)}` };
  }

  /** The membership as the dashboard shows it. */
  actorStatuses(): ActorStatus[] {
    const stateOf = (s: string): ActorStatus["state"] => (s === "draining" || s === "stopped" ? "leaving" : s === "starting" ? "starting" : "ready");
    return this.clusterStatus().actors.map((a) => ({
      kind: a.kind,
      id: a.id,
      pid: a.pid,
      host: a.host,
      state: stateOf(a.state),
      lastHeartbeat: a.lastHeartbeat,
      ...(typeof a.memoryBytes === "number" ? { memoryBytes: a.memoryBytes } : {}),
      ...(a.backend === "wasm" || a.backend === "cuda" ? { backend: a.backend } : {}),
      ...(Array.isArray(a.groups) ? { groups: a.groups as number[] } : {}),
    }));
  }

  protected override status(): Record<string, unknown> {
    return { desired: this.desired, metricsUrl: this.metricsUrl };
  }

  clusterStatus(): ClusterStatus {
    const actors = [...this.members.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id, undefined, { numeric: true }));
    const d = this.driver;
    const training = d
      ? {
          training: {
            step: d.step,
            steps: d.totalSteps,
            finished: d.finished,
            lastCheckpoint: d.lastCheckpoint,
            ...(this.gaveUp ? { stopped: this.gaveUp } : {}),
          },
        }
      : {};
    return { run: this.spec.run, desired: { ...this.desired }, actors: [this.selfEntry(), ...actors], ...training };
  }

  private selfEntry(): ActorEntry {
    const hb = this.heartbeat();
    return { ...hb, lastHeartbeat: hb.time };
  }

  private scale(n: unknown) {
    if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > 256)
      return { ok: false, error: `compute must be a whole number from 0 to 256, got ${JSON.stringify(n)}` };
    const before = this.desired.compute;
    this.desired.compute = n as number;
    const running = [...this.members.values()].filter((m) => m.kind === "compute" && !this.leaving.has(m.id)).length;
    const agents = [...this.members.values()].filter((m) => m.kind === "node-agent" && m.state === "ready").length;
    // A "scale" event, not an "error": `cluster up` stops on the first error event.
    const warning =
      (n as number) > running && agents === 0
        ? `no node agent is ready to place compute actors on: ${running} run, none were started (join one with \`aze-run worker join\`, or \`cluster down\` and \`cluster up\` again)`
        : undefined;
    this.event("scale", undefined, `compute actors ${before} → ${n}${warning ? `; ${warning}` : ""}`);
    void this.reconcile();
    return { ok: true, compute: n, ...(warning ? { warning } : {}) };
  }

  /**
   * Silence from everyone is the server's, not the actors': a nats-server that went away,
   * or one paused (SIGSTOP keeps the TCP connections open, so no client sees a disconnect,
   * and every heartbeat arrives late at once). When traffic comes back, every member gets a
   * fresh deadline.
   */
  private restartDeadlines(why: string): void {
    const now = Date.now();
    this.log.warn("deadlines-restarted", { why });
    for (const m of this.members.values()) m.lastHeartbeat = now;
    for (const s of this.starting.values()) s.since = now;
  }

  /** Longer than this without a heartbeat of anyone's (the coordinator's own comes every 500 ms), the server is silent. */
  private get silenceMs(): number {
    return this.options.heartbeatTimeoutMs / 2;
  }

  protected override onConnectionChange(connected: boolean): void {
    if (connected) this.restartDeadlines("the connection came back");
  }

  private onHeartbeat(hb: Heartbeat): void {
    const silent = Date.now() - this.lastTraffic;
    if (silent > this.silenceMs) this.restartDeadlines(`no heartbeat of any actor for ${silent} ms`);
    this.lastTraffic = Date.now();
    if (hb.id === this.id) return;
    if (hb.state === "stopped") return this.forget(hb.id, "left");
    const known = this.members.get(hb.id);
    const started = this.starting.get(hb.id);
    this.starting.delete(hb.id);
    this.noteId(hb.id);
    const placed = this.unheard.get(hb.id);
    if (placed) this.startFailures[placed] = 0; // it started: the failures before it were not a loop
    this.unheard.delete(hb.id);
    // One the dead coordinator was retiring: it no longer counts towards the desired numbers.
    if (hb.state === "draining") this.leaving.add(hb.id);
    if (!known || known.state !== hb.state) setImmediate(() => this.driver?.membershipChanged(hb.kind, false));
    this.members.set(hb.id, { ...hb, lastHeartbeat: Date.now(), agent: known?.agent ?? started?.agent ?? (hb.agent as string | undefined) });
    // A restarted coordinator finds the actors that ran on; they did not join (settle says what it found).
    if (!known && this.settled) this.event("join", hb.id, `${hb.kind} ${hb.id} joined on ${hb.host} (pid ${hb.pid})`);
    // The dashboard's model FLOP utilisation needs a compute actor's peak: publish it once known.
    if (hb.kind === "compute" && typeof hb.peakFlops === "number" && hb.peakFlops > (this.peakFlops ?? 0) && this.training) {
      this.peakFlops = hb.peakFlops;
      this.publish(this.subjects.runInfo, this.runInfo());
    }
  }

  /** How long an actor's main thread may go without answering before it counts as dead (see unresponsiveFloorMs). */
  private get unresponsiveMs(): number {
    return Math.max(unresponsiveFloorMs, this.options.heartbeatTimeoutMs, unresponsiveFactor * (this.driver?.longestRecentStepMs ?? 0));
  }

  private forget(id: string, why: "died" | "left" | "missed heartbeats" | `did not answer for ${string}`): void {
    const entry = this.members.get(id);
    this.starting.delete(id);
    if (!entry) return;
    this.members.delete(id);
    this.leaving.delete(id);
    this.driver?.membershipChanged(entry.kind, why !== "left");
    const orphaned = entry.kind === "node-agent" ? `; its actors run on, but no new one is placed on ${entry.host} until a node agent joins` : "";
    if (why !== "left") this.event("death", id, `${entry.kind} ${id} ${why}${orphaned}`);
    else this.event("leave", id, `${entry.kind} ${id} left`);
  }

  /** Brings the cluster to the desired shape: detect the dead, start the missing, stop the surplus. */
  private async reconcile(): Promise<void> {
    if (this.reconciling || this.shuttingDown || !this.settled || this.state !== "ready" || !this.connected) return;
    // Nobody's heartbeat arrives, the coordinator's own included: no deadline means anything.
    if (Date.now() - this.lastTraffic > this.silenceMs) return;
    this.reconciling = true;
    try {
      const now = Date.now();
      // Two deadlines: heartbeats that stop say the process or its connection is gone; a
      // main thread silent for long (its heartbeat thread says how long) says it is stuck.
      const unresponsiveMs = this.unresponsiveMs;
      for (const entry of [...this.members.values()]) {
        const silentMs = now - entry.lastHeartbeat;
        const lagMs = (entry.mainThreadLagMs ?? 0) + silentMs;
        if (silentMs > this.options.heartbeatTimeoutMs) this.forget(entry.id, "missed heartbeats");
        else if (lagMs > unresponsiveMs) {
          // Its process lives on: its agent kills it, or it would wake up beside its replacement
          // (and the agent would refuse a second actor of the same id).
          if (entry.agent) void this.askAgent(entry.agent, { op: "stop", id: entry.id, kill: true });
          this.forget(entry.id, `did not answer for ${(lagMs / 1000).toFixed(1)} s (deadline ${(unresponsiveMs / 1000).toFixed(1)} s)`);
        }
      }
      // Never came up: a minute, since a new process on a loaded machine may take tens of seconds.
      for (const [id, s] of this.starting) if (now - s.since > 60_000) this.starting.delete(id);
      for (const kind of placedKinds) {
        const running = [...this.members.values()].filter((m) => m.kind === kind && !this.leaving.has(m.id));
        const pending = [...this.starting.values()].filter((s) => s.kind === kind).length;
        const missing = this.desired[kind] - running.length - pending;
        for (let i = 0; i < missing; i++) await this.place(kind);
        if (missing < 0 && pending === 0) {
          // Stop the most recently added first: long-lived actors keep their warm state.
          const surplus = running.sort((a, b) => b.id.localeCompare(a.id, undefined, { numeric: true })).slice(0, -missing);
          for (const m of surplus) await this.retire(m);
        }
      }
    } catch (err) {
      this.log.error("reconcile-failed", { error: String(err) });
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * Places one actor on the agent with the fewest actors per core, with an identity minted
   * for it alone. Param-shards hold the parameters and sign their broadcasts: they go only
   * to the agent of the host that ran `cluster up`, never to a joined worker host.
   */
  private async place(kind: PlacedKind): Promise<void> {
    if (this.gaveUp) return;
    const trusted = (agent: ActorEntry) => kind !== "param-shard" || !this.options.mainAgent || agent.id === this.options.mainAgent;
    const agents = [...this.members.values()].filter((m) => m.kind === "node-agent" && m.state === "ready" && trusted(m));
    if (agents.length === 0) return;
    const load = (agent: ActorEntry) => {
      const children =
        [...this.members.values()].filter((m) => m.agent === agent.id).length + [...this.starting.values()].filter((s) => s.agent === agent.id).length;
      return children / Math.max(1, Number(agent.cores ?? 1));
    };
    const agent = agents.sort((a, b) => load(a) - load(b) || a.id.localeCompare(b.id))[0]!;
    const id = this.newId(kind);
    this.starting.set(id, { kind, agent: agent.id, since: Date.now() });
    this.unheard.set(id, kind);
    const creds = this.issuer ? await mintIdentity(this.issuer, kind, id) : undefined;
    const reply = await this.askAgent(agent.id, { op: "spawn", kind, id, options: { training: this.options.training, backend: this.options.backend }, creds });
    if (!reply.ok) {
      this.starting.delete(id);
      this.unheard.delete(id);
      this.log.warn("spawn-failed", { id, agent: agent.id, error: reply.error });
    }
  }

  /**
   * Compute actors get ever new ids (a replacement's contributions are never mistaken for
   * its predecessor's); a param-shard replacement takes the lowest free index, since the
   * index says which slice of the parameters it owns.
   */
  private newId(kind: PlacedKind): string {
    if (kind !== "param-shard") return `${idPrefix[kind]}-${this.nextIndex[kind]++}`;
    const taken = new Set([...this.members.keys(), ...this.starting.keys()]);
    let i = 0;
    while (taken.has(`shard-${i}`)) i++;
    return `shard-${i}`;
  }

  private async retire(member: ActorEntry, reason = "scaled down"): Promise<void> {
    this.leaving.add(member.id);
    try {
      await requestMessage(this.nc, this.subjects.control(member.id), { op: "stop", reason }, replySchema, 2000);
    } catch {
      // Not answering: its agent stops the process instead.
      if (member.agent) await this.askAgent(member.agent, { op: "stop", id: member.id });
    }
  }

  private async askAgent(agent: string, request: AgentRequest): Promise<{ ok: boolean; error?: string }> {
    try {
      return await requestMessage(this.nc, this.subjects.agent(agent), request, replySchema, 5000);
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  private event(type: ClusterEventType, actor: string | undefined, message: string, extra?: Record<string, unknown>): void {
    const level = type === "error" ? "error" : type === "death" || type === "rejected" || type === "quarantine" ? "warn" : "info";
    this.log[level](`event-${type}`, { target: actor, message });
    this.publish(this.subjects.event(this.id), { time: Date.now(), type, actor, message, ...extra });
    // A dashboard that attaches after the run ended learns it from its snapshot.
    if (typeof extra?.end === "string") this.ended ??= extra.end;
  }

  /** `cluster down`: every placed actor stops cleanly, then every agent, then this. */
  protected override async onStop(): Promise<void> {
    // Training stops between steps and leaves a checkpoint of where it stands (once known).
    if (this.driver && !this.driver.finished) {
      this.driver.stop();
      await this.driverDone;
      if (this.driver.located) await this.driver.checkpoint().catch((err) => this.log.error("checkpoint-failed", { error: String(err) }));
    }
    this.shuttingDown = true;
    clearInterval(this.reconcileTimer);
    clearInterval(this.snapshotTimer);
    this.metricsServer?.close();
    const placed = () => [...this.members.values()].filter((m) => m.kind !== "node-agent");
    const stopEach = (members: ActorEntry[]) =>
      Promise.all(
        members.map((m) =>
          requestMessage(this.nc, this.subjects.control(m.id), { op: "stop", reason: "cluster down" }, replySchema, 2000).catch(() => undefined),
        ),
      );
    await stopEach(placed());
    const deadline = Date.now() + 10_000;
    while (placed().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Agents stop last; they also stop this coordinator's process, so do not wait for them.
    await stopEach([...this.members.values()].filter((m) => m.kind === "node-agent"));
  }
}
