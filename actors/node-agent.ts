// The node agent: one per host. Spawns and stops actor processes on request and reports
// the host's resources (cores, memory, GPUs seen by nvidia-smi).
//
// Owns: the actor processes of its host, and restarting the coordinator it spawned when
// that process dies (the coordinator replaces every other kind itself, so nothing else is
// restarted here). Never: decides how many actors run (the coordinator asks), and never
// leaves a child behind when it stops.
import { spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cpus, freemem, totalmem } from "node:os";
import { Actor, type ActorSpec } from "../runtime/actor.js";
import { spawnActor } from "../runtime/spawn.js";
import type { ActorKind } from "../runtime/subjects.js";
import { agentRequestSchema, type AgentRequest, type ClusterEventType } from "./protocol.js";

export interface GpuInfo {
  index: number;
  name: string;
  memoryMiB: number;
}

/** GPUs that nvidia-smi reports on this host; none where it is missing or fails. */
export function detectGpus(): GpuInfo[] {
  const out = spawnSync("nvidia-smi", ["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"], { encoding: "utf8", timeout: 5000 });
  if (out.status !== 0 || !out.stdout) return [];
  return out.stdout
    .trim()
    .split("\n")
    .map((line) => line.split(",").map((s) => s.trim()))
    .map(([index, name, memory]) => ({ index: Number(index), name: name ?? "", memoryMiB: Number(memory) }));
}

interface Child {
  kind: ActorKind;
  id: string;
  process: ChildProcess;
  startedAt: number;
  /** What it was spawned with: a coordinator that dies is spawned again from it. */
  request: SpawnRequest;
}

type SpawnRequest = Extract<AgentRequest, { op: "spawn" }>;

/** A coordinator that dies this many times within `restartWindowMs` is not restarted again: it would only crash-loop. */
const maxCoordinatorFailures = 3;
const restartWindowMs = 60_000;

export class NodeAgent extends Actor {
  private readonly children = new Map<string, Child>();
  private readonly gpus = detectGpus();
  /** When the coordinator this agent runs died, within the last `restartWindowMs`. */
  private coordinatorFailures: number[] = [];

  protected override async onStart(): Promise<void> {
    this.handle(this.subjects.agent(this.id), agentRequestSchema, (request) => {
      switch (request.op) {
        case "spawn":
          return this.spawnChild(request);
        case "stop":
          return this.stopChild(request.id, request.kill ?? false);
        case "list":
          return { ok: true, children: this.childList() };
      }
    });
    this.log.info("resources", this.resources());
  }

  protected override status(): Record<string, unknown> {
    return { ...this.resources(), children: this.childList() };
  }

  private resources() {
    return { cores: cpus().length, hostMemoryBytes: totalmem(), hostFreeMemoryBytes: freemem(), gpus: this.gpus };
  }

  private childList() {
    return [...this.children.values()].map((c) => ({ kind: c.kind, id: c.id, pid: c.process.pid }));
  }

  private spawnChild(request: SpawnRequest) {
    if (this.state !== "ready") return { ok: false, error: `agent ${this.id} is ${this.state}` };
    if (this.children.has(request.id)) return { ok: false, error: `an actor named ${request.id} already runs here` };
    // Each child connects as itself, with the identity the coordinator minted for it; only
    // with an existing server (no minting) do children share the agent's credentials.
    const creds = request.creds ? { ...request.creds, ca: this.spec.creds?.ca } : this.spec.creds;
    if (this.spec.creds?.jwt && !request.creds?.jwt)
      return { ok: false, error: `spawning ${request.id} needs an identity minted for it, and the request carries none` };
    const { run, runDir, natsUrl } = this.spec;
    const spec: ActorSpec = { kind: request.kind, id: request.id, run, runDir, natsUrl, creds, options: { ...request.options, agent: this.id } };
    const child = spawnActor(spec);
    const startedAt = Date.now();
    this.children.set(request.id, { kind: request.kind, id: request.id, process: child, startedAt, request });
    child.on("exit", (code, signal) => {
      this.children.delete(request.id);
      const clean = code === 0;
      if (clean) this.log.info("child-exited", { id: request.id, code, signal });
      else this.log.warn("child-died", { id: request.id, code, signal });
      const how = signal ?? `exit ${code}`;
      this.publishEvent(clean ? "leave" : "death", request.id, clean ? `${request.id} stopped` : `${request.id} died (${how})`);
      if (!clean && request.kind === "coordinator" && this.state === "ready") this.restartCoordinator(request, how, startedAt);
    });
    this.log.info("spawned", { kind: request.kind, id: request.id, pid: child.pid });
    return { ok: true, pid: child.pid };
  }

  /**
   * The coordinator died while the run goes on: spawn it again with the same spec, told
   * that it recovers (it rebuilds membership and the training step from the cluster rather
   * than starting afresh). A coordinator that keeps dying is left dead, with an error event
   * naming its last error, since restarting it again would only crash-loop.
   */
  private restartCoordinator(request: SpawnRequest, how: string, startedAt: number): void {
    const now = Date.now();
    this.coordinatorFailures = [...this.coordinatorFailures.filter((t) => now - t < restartWindowMs), now];
    const failures = this.coordinatorFailures.length;
    if (failures >= maxCoordinatorFailures) {
      const why = lastLoggedError(this.spec.runDir, request.id, startedAt) ?? `it died (${how})`;
      this.log.error("coordinator-given-up", { failures, error: why });
      this.publishEvent(
        "error",
        request.id,
        `the coordinator died ${failures} times within ${restartWindowMs / 1000} s and is not restarted again; its last error: ${why} (see logs/${request.id}.out; \`aze-run cluster down\` stops the run)`,
        { end: "error" },
      );
      return;
    }
    const reply = this.spawnChild({ ...request, options: { ...request.options, recovering: true } });
    const message = reply.ok
      ? `the coordinator died (${how}); ${this.id} restarted it (pid ${reply.pid}, failure ${failures} of ${maxCoordinatorFailures} allowed within ${restartWindowMs / 1000} s)`
      : `the coordinator died (${how}) and ${this.id} could not restart it: ${reply.error}`;
    this.log[reply.ok ? "warn" : "error"]("coordinator-restarted", { ok: reply.ok, pid: reply.pid, error: reply.error });
    this.publishEvent(reply.ok ? "info" : "error", request.id, message, reply.ok ? undefined : { end: "error" });
  }

  private stopChild(id: string, kill: boolean) {
    const child = this.children.get(id);
    if (!child) return { ok: false, error: `no actor named ${id} runs on ${this.id}` };
    child.process.kill(kill ? "SIGKILL" : "SIGTERM");
    return { ok: true, pid: child.process.pid };
  }

  private publishEvent(type: ClusterEventType, actor: string, message: string, extra?: { end: string }): void {
    this.publish(this.subjects.event(this.id), { time: Date.now(), type, actor, message, ...extra });
  }

  /** Stops every child: SIGTERM, then SIGKILL for any still alive after the grace period. */
  protected override async onStop(): Promise<void> {
    const alive = [...this.children.values()];
    for (const c of alive) c.process.kill("SIGTERM");
    const deadline = Date.now() + 8000;
    while (this.children.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.children.values()) c.process.kill("SIGKILL");
    while (this.children.size > 0 && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 20));
  }
}

/** The last error an actor logged since `since` (its `logs/<id>.jsonl`), if any: what a crash loop is about. */
function lastLoggedError(runDir: string, id: string, since: number): string | undefined {
  const file = join(runDir, "logs", `${id}.jsonl`);
  if (!existsSync(file)) return undefined;
  let last: string | undefined;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    try {
      const entry = JSON.parse(line) as { time?: string; level?: string; error?: unknown; message?: unknown };
      if (entry.level === "error" && Date.parse(entry.time ?? "") >= since) last = String(entry.error ?? entry.message ?? line).split("\n")[0];
    } catch {
      /* a line cut short by the crash */
    }
  }
  return last;
}
