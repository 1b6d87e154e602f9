// The node agent: one per host. Spawns and stops actor processes on request and reports
// the host's resources (cores, memory, GPUs seen by nvidia-smi).
//
// Owns: the actor processes of its host. Never: decides how many actors run (the
// coordinator asks), and never leaves a child behind when it stops.
import { spawnSync, type ChildProcess } from "node:child_process";
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
}

export class NodeAgent extends Actor {
  private readonly children = new Map<string, Child>();
  private readonly gpus = detectGpus();

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

  private spawnChild(request: Extract<AgentRequest, { op: "spawn" }>) {
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
    this.children.set(request.id, { kind: request.kind, id: request.id, process: child, startedAt: Date.now() });
    child.on("exit", (code, signal) => {
      this.children.delete(request.id);
      const clean = code === 0;
      if (clean) this.log.info("child-exited", { id: request.id, code, signal });
      else this.log.warn("child-died", { id: request.id, code, signal });
      this.publishEvent(clean ? "leave" : "death", request.id, clean ? `${request.id} stopped` : `${request.id} died (${signal ?? `exit ${code}`})`);
    });
    this.log.info("spawned", { kind: request.kind, id: request.id, pid: child.pid });
    return { ok: true, pid: child.pid };
  }

  private stopChild(id: string, kill: boolean) {
    const child = this.children.get(id);
    if (!child) return { ok: false, error: `no actor named ${id} runs on ${this.id}` };
    child.process.kill(kill ? "SIGKILL" : "SIGTERM");
    return { ok: true, pid: child.process.pid };
  }

  private publishEvent(type: ClusterEventType, actor: string, message: string): void {
    this.publish(this.subjects.event(this.id), { time: Date.now(), type, actor, message });
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
