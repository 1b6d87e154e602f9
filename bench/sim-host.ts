// A simulated host for bench:scale: one process that joins a run as a node agent (as
// `worker join` does, with the run's worker.json) and runs every compute actor the
// coordinator places on it inside this process, instead of one process each.
//
// Owns: the agent requests of its id (spawn, stop, list) for compute actors only. Each actor
// is the real Compute class with its own NATS connection and the identity the coordinator
// minted for it; only the process is shared (and the thread their heartbeats come from, see
// SimCompute), which is what lets 256 of them run on a 2-core machine when their backend is
// `sim` (model/sim-model.ts).
// Never: starts another kind (a shard or loader placed here is refused: they stay on the
// host that ran `cluster up`), or kills an actor harder than a clean stop: in one process
// there is no SIGKILL for one actor.
//
// Usage (bench/scale.ts starts it): node dist/bench/sim-host.js <nats url> <worker.json> <run folder> <room>
// where <room> is the number of actors it says it has cores for (the coordinator places on
// the agent with the fewest actors per core, so this host takes its share of the compute actors
// and the host that ran `cluster up` none). Prints `joined <agent id>` once it is ready.
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { Compute } from "../actors/compute.js";
import { agentRequestSchema, type AgentRequest, type ClusterEventType } from "../actors/protocol.js";
import { Actor, type ActorSpec } from "../runtime/actor.js";
import { askToJoin } from "../runtime/cluster.js";
import { readCredentials } from "../runtime/nats-server.js";

type SpawnRequest = Extract<AgentRequest, { op: "spawn" }>;

/**
 * The real compute actor, with its heartbeats published from this process's main thread on
 * the actor's own connection, every 500 ms, instead of from a worker thread of its own: a
 * worker thread is a JavaScript engine instance with its own connection, and a few hundred of
 * them neither fit in memory nor connect within their 5 s on a busy 2-core machine. The
 * coordinator receives the same heartbeats; the server holds one connection per actor, not
 * two. The actors' work is asynchronous and interleaves, so no one of them holds the main
 * thread for long enough to delay another's heartbeat past its deadline.
 */
class SimCompute extends Compute {
  protected override startHeartbeatThread(): void {
    const beat = setInterval(() => {
      if (this.state === "ready" || this.state === "draining") this.publish(this.subjects.heartbeat(this.kind, this.id), this.heartbeat());
    }, 500);
    // The last heartbeat (stopped) comes from the actor's stop, on the main connection, as it does without a thread.
    void this.whenStopped().then(() => clearInterval(beat));
  }
}

/** Actors this host starts at the same time; the rest wait their turn (see startInTurn). */
const startsAtOnce = 1;

class SimHost extends Actor {
  private readonly children = new Map<string, SimCompute>();
  private readonly room = Number(this.spec.options.room);
  /** Actors of this host whose start is under way. */
  private starting = 0;

  protected override async onStart(): Promise<void> {
    this.handle(this.subjects.agent(this.id), agentRequestSchema, (request) => {
      switch (request.op) {
        case "spawn":
          return this.spawnCompute(request);
        case "stop":
          return this.stopChild(request.id);
        case "list":
          return { ok: true, children: this.childList() };
      }
    });
  }

  protected override status(): Record<string, unknown> {
    return { cores: this.room, children: this.childList(), simulated: true };
  }

  private childList() {
    return [...this.children.keys()].map((id) => ({ kind: "compute", id, pid: process.pid }));
  }

  /** Starts the actor in this process and answers at once, as a node agent does once its child process is spawned. */
  private spawnCompute(request: SpawnRequest) {
    if (this.state !== "ready") return { ok: false, error: `simulated host ${this.id} is ${this.state}` };
    if (request.kind !== "compute") return { ok: false, error: `simulated host ${this.id} runs compute actors only, not ${request.kind}` };
    if (this.children.has(request.id)) return { ok: false, error: `an actor named ${request.id} already runs here` };
    const { run, runDir, natsUrl } = this.spec;
    const creds = request.creds ? { ...request.creds, ca: this.spec.creds?.ca } : this.spec.creds;
    const spec: ActorSpec = { kind: "compute", id: request.id, run, runDir, natsUrl, creds, options: { ...request.options, agent: this.id } };
    const actor = new SimCompute(spec);
    this.children.set(request.id, actor);
    const gone = (type: ClusterEventType, message: string) => {
      if (this.children.get(request.id) !== actor) return;
      this.children.delete(request.id);
      this.publish(this.subjects.event(this.id), { time: Date.now(), type, actor: request.id, message });
    };
    // A failed start has already said why on the event stream (runtime/actor.ts); this is its exit.
    this.startInTurn(actor).catch((err) => gone("death", `${request.id} failed to start: ${(err as Error).message}`));
    void actor.whenStopped().then(() => gone("leave", `${request.id} stopped`));
    return { ok: true, pid: process.pid };
  }

  /**
   * Starts `actor` once fewer than `startsAtOnce` are starting here. Its connection must be
   * made within 5 s: dozens at once on a busy machine miss that, and the coordinator stops
   * placing a kind that fails to start 3 times in a row.
   */
  private async startInTurn(actor: SimCompute): Promise<void> {
    while (this.starting >= startsAtOnce) await sleep(50);
    this.starting++;
    try {
      await actor.start();
    } finally {
      this.starting--;
    }
  }

  private stopChild(id: string) {
    const actor = this.children.get(id);
    if (!actor) return { ok: false, error: `no actor named ${id} runs on ${this.id}` };
    void actor.stop("asked by its host");
    return { ok: true, pid: process.pid };
  }

  protected override async onStop(): Promise<void> {
    await Promise.all([...this.children.values()].map((a) => a.stop("its host stopped")));
  }
}

const [url, workerFile, runDir, room] = process.argv.slice(2);
if (!url || !workerFile || !runDir || !room) throw new Error("usage: node dist/bench/sim-host.js <nats url> <worker.json> <run folder> <room>");
const worker = readCredentials(workerFile);
const joined = await askToJoin(url, worker);
const host = new SimHost({ kind: "node-agent", id: joined.id, run: worker.run, runDir, natsUrl: url, creds: joined.creds, options: { room: Number(room) } });
host.stopOnSignals();
await host.start();
process.stdout.write(`joined ${host.id} on ${hostname()}\n`);
await host.whenStopped();
process.exit(0);
