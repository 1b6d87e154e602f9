// The coordinator: one per run. Owns membership and the desired shape of the cluster.
//
// Owns: who is alive (from heartbeats), how many actors of each kind should run, placing
// new actors on node agents, replacing the dead, stopping the surplus, answering
// `cluster status`, `cluster scale` and `cluster down`.
// Never: computes gradients or holds parameters.
import type { z } from "zod";
import { openPlan, type TrainingPlan } from "../model/training.js";
import { Actor, heartbeatSchema, type Heartbeat } from "../runtime/actor.js";
import { requestMessage } from "../runtime/nats.js";
import { servePrometheus, type Gauge } from "../runtime/prometheus.js";
import {
  clusterEventSchema,
  commandSchema,
  coordinatorOptionsSchema,
  emptySchema,
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
type PlacedKind = "param-shard" | "data-loader" | "compute";

const idPrefix: Record<PlacedKind, string> = { "param-shard": "shard", "data-loader": "loader", compute: "compute" };

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
  private reconcileTimer?: NodeJS.Timeout;
  private snapshotTimer?: NodeJS.Timeout;
  private metricsServer?: import("node:http").Server;
  private metricsUrl?: string;
  private reconciling = false;
  /** When a heartbeat of any actor (this one's own echo included) last arrived: the server's pulse. */
  private lastTraffic = Date.now();
  private shuttingDown = false;

  private training?: TrainingPlan;
  private driver?: StepDriver;
  private driverDone?: Promise<void>;
  private startedAt = Date.now();
  /** The peak FLOP/s the compute actors measured, last published in the run info. */
  private peakFlops?: number;

  protected override async onStart(): Promise<void> {
    this.on(this.subjects.heartbeats, heartbeatSchema, (hb) => this.onHeartbeat(hb));
    this.on(this.subjects.events, clusterEventSchema, (event) => {
      // A child that exited is gone now; do not wait for its heartbeat deadline.
      if ((event.type === "death" || event.type === "leave") && event.actor) this.forget(event.actor, event.type === "death" ? "died" : "left");
    });
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
      const driver = new StepDriver(this.driverHost(), this.training);
      this.driver = driver;
      // Runs once this actor is ready and the shards have loaded their slices.
      setImmediate(() => {
        this.publish(this.subjects.runInfo, this.runInfo());
        this.driverDone = driver.run().catch((err) => {
          this.log.error("training-failed", { error: String((err as Error).stack ?? err) });
          this.event("error", undefined, `training stopped: ${(err as Error).message}`, { end: "error" });
        });
      });
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
      liveShards: () => live("param-shard"),
      hostOf: (id: string) => this.members.get(id)?.host,
      retire: (id: string, reason: string) => {
        const member = this.members.get(id);
        if (member && !this.leaving.has(id)) void this.retire(member, reason);
      },
      event: (type: ClusterEventType, actor: string | undefined, message: string, extra?: Record<string, unknown>) => this.event(type, actor, message, extra),
      publish: (subject: string, body: unknown) => this.publish(subject, body),
      on: <S extends z.ZodType>(subject: string, schema: S, handler: (body: z.infer<S>) => void) => this.on(subject, schema, handler),
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
        return { ok: true, run: this.runInfo(), actors: this.actorStatuses() };
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
    const training = d ? { training: { step: d.step, steps: d.totalSteps, finished: d.finished, lastCheckpoint: d.lastCheckpoint } } : {};
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
    if (!known || known.state !== hb.state) setImmediate(() => this.driver?.membershipChanged(hb.kind, false));
    this.members.set(hb.id, { ...hb, lastHeartbeat: Date.now(), agent: known?.agent ?? started?.agent ?? (hb.agent as string | undefined) });
    if (!known) this.event("join", hb.id, `${hb.kind} ${hb.id} joined on ${hb.host} (pid ${hb.pid})`);
    // The dashboard's model FLOP utilisation needs a compute actor's peak: publish it once known.
    if (hb.kind === "compute" && typeof hb.peakFlops === "number" && hb.peakFlops !== this.peakFlops && this.training) {
      this.peakFlops = hb.peakFlops;
      this.publish(this.subjects.runInfo, this.runInfo());
    }
  }

  private forget(id: string, why: "died" | "left" | "missed heartbeats"): void {
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
    if (this.reconciling || this.shuttingDown || this.state !== "ready" || !this.connected) return;
    // Nobody's heartbeat arrives, the coordinator's own included: no deadline means anything.
    if (Date.now() - this.lastTraffic > this.silenceMs) return;
    this.reconciling = true;
    try {
      const now = Date.now();
      for (const entry of [...this.members.values()])
        if (now - entry.lastHeartbeat > this.options.heartbeatTimeoutMs) this.forget(entry.id, "missed heartbeats");
      for (const [id, s] of this.starting) if (now - s.since > 20_000) this.starting.delete(id); // never came up
      for (const kind of ["param-shard", "data-loader", "compute"] as const) {
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

  /** Places one actor on the agent with the fewest actors per core. */
  private async place(kind: PlacedKind): Promise<void> {
    const agents = [...this.members.values()].filter((m) => m.kind === "node-agent" && m.state === "ready");
    if (agents.length === 0) return;
    const load = (agent: ActorEntry) => {
      const children =
        [...this.members.values()].filter((m) => m.agent === agent.id).length + [...this.starting.values()].filter((s) => s.agent === agent.id).length;
      return children / Math.max(1, Number(agent.cores ?? 1));
    };
    const agent = agents.sort((a, b) => load(a) - load(b) || a.id.localeCompare(b.id))[0]!;
    const id = this.newId(kind);
    this.starting.set(id, { kind, agent: agent.id, since: Date.now() });
    const reply = await this.askAgent(agent.id, { op: "spawn", kind, id, options: { training: this.options.training, backend: this.options.backend } });
    if (!reply.ok) {
      this.starting.delete(id);
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
    this.publish(this.subjects.events, { time: Date.now(), type, actor, message, ...extra });
  }

  /** `cluster down`: every placed actor stops cleanly, then every agent, then this. */
  protected override async onStop(): Promise<void> {
    // Training stops between steps and leaves a checkpoint of where it stands.
    if (this.driver && !this.driver.finished) {
      this.driver.stop();
      await this.driverDone;
      await this.driver.checkpoint().catch((err) => this.log.error("checkpoint-failed", { error: String(err) }));
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
