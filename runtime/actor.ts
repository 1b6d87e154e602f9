// The actor base: the lifecycle, messaging and heartbeats every actor kind shares.
//
// Owns: start → ready → draining → stopped, request/reply and pub/sub handlers with msgpack
// bodies, the heartbeat thread (runtime/heartbeat-thread.ts) and the status it publishes,
// the actor's log, and a clean stop on SIGTERM/SIGINT.
// Never: knows what a kind does; subclasses fill in onStart, onStop and status. Never sends
// a heartbeat from the main thread while the heartbeat thread lives: a busy main thread
// would make them late.
import { hostname } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { z } from "zod";
import { checkMessage, CodecError, decodeChecked, encodeMessage, type Reassembled, type TensorAssembler } from "./codec.js";
import { createLogger, type Logger } from "./log.js";
import { connectNats, type Msg, type NatsConnection } from "./nats.js";
import type { Secret } from "./nats-server.js";
import type { FromHeartbeatThread, HeartbeatThreadData, ToHeartbeatThread } from "./heartbeat-thread.js";
import { packageRoot } from "./spawn.js";
import { actorKinds, actorStates, subjects, type ActorKind, type ActorState, type Subjects } from "./subjects.js";

export { actorStates, type ActorState };

/** What a process needs to run one actor: given by whoever spawns it. */
export interface ActorSpec {
  kind: ActorKind;
  id: string;
  run: string;
  /** The run folder on this host: logs, checkpoints, metrics. */
  runDir: string;
  natsUrl: string;
  /** The identity it connects as: its own, minted for its id (runtime/identity.ts). */
  creds?: Secret;
  /** Kind-specific options (counts, config file, shard index...). */
  options: Record<string, unknown>;
}

/** What every heartbeat carries; kinds add their own fields through status(). */
export const heartbeatSchema = z.looseObject({
  kind: z.enum(actorKinds),
  id: z.string(),
  pid: z.number().int(),
  host: z.string(),
  state: z.enum(actorStates),
  time: z.number(),
  /** How long ago the actor's main thread last posted its status to its heartbeat thread. */
  mainThreadLagMs: z.number().optional(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** Requests on an actor's own control subject. */
const controlSchema = z.object({ op: z.string(), reason: z.string().optional() });

const heartbeatIntervalMs = 500;
/**
 * How often the main thread posts its status to the heartbeat thread: twice per heartbeat,
 * so a heartbeat's status is at most this old and `mainThreadLagMs` of an idle main thread
 * stays below it.
 */
const statusPostMs = heartbeatIntervalMs / 2;
/** The compiled thread, also when this file runs from sources (tests import them): threads load JavaScript. */
const heartbeatThreadEntry = join(packageRoot, "dist", "runtime", "heartbeat-thread.js");

export abstract class Actor {
  readonly kind: ActorKind;
  readonly id: string;
  readonly host = hostname();
  readonly subjects: Subjects;
  readonly log: Logger;
  state: ActorState = "starting";
  protected nc!: NatsConnection;
  private statusTimer?: NodeJS.Timeout;
  private heartbeatThread?: Worker;
  /** Resolves when the heartbeat thread is connected; rejects when it failed before that. */
  private heartbeatThreadConnected?: Promise<void>;
  private stopping?: Promise<void>;
  private readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  constructor(readonly spec: ActorSpec) {
    this.kind = spec.kind;
    this.id = spec.id;
    this.subjects = subjects(spec.run);
    this.log = createLogger(spec.runDir, spec.id);
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  /** Work of the kind once connected; the actor is `ready` when it resolves. */
  protected async onStart(): Promise<void> {}
  /** Work before the connection drains: finish or hand back what the actor holds. */
  protected async onStop(_reason: string): Promise<void> {}
  /** Kind-specific fields for heartbeats and status. */
  protected status(): Record<string, unknown> {
    return {};
  }

  async start(): Promise<void> {
    try {
      // The thread connects while this thread does; its first heartbeat waits for `ready`.
      this.startHeartbeatThread();
      await this.connect();
      await this.heartbeatThreadConnected;
      await this.onStart();
    } catch (err) {
      // Said on the run's event stream too, so `cluster up` can stop with this actor's own words.
      const error = (err as Error).message;
      this.log.error("start-failed", { error });
      if (this.nc) {
        this.publish(this.subjects.event(this.id), {
          time: Date.now(),
          type: "error",
          actor: this.id,
          message: `${this.kind} ${this.id} failed to start: ${error}`,
        });
        await this.nc.flush().catch(() => undefined);
      }
      void this.heartbeatThread?.terminate();
      throw err;
    }
    this.state = "ready";
    this.log.info("ready", { pid: process.pid, host: this.host });
    // Heartbeats travel on another connection: the server must have every subscription and
    // message of onStart before anyone learns from a heartbeat that this actor is ready.
    await this.nc.flush().catch(() => undefined); // closed: the stop under way says so
    if (this.state !== "ready") return; // stopped meanwhile
    this.postStatus();
    this.statusTimer = setInterval(() => this.postStatus(), statusPostMs);
  }

  /**
   * Starts the heartbeat thread with the actor's URL and credentials (passed on unchanged).
   * It never holds the process open (unref). A thread that fails before it connects fails
   * the start; one that ends later stops the actor, since without heartbeats the coordinator
   * would replace it while it ran on. Protected for bench/sim-host.ts, which runs many actors
   * in one process and beats for them from its main thread instead (a thread each would be an
   * engine instance each).
   */
  protected startHeartbeatThread(): void {
    const workerData: HeartbeatThreadData = {
      url: this.spec.natsUrl,
      creds: this.spec.creds,
      name: `${this.spec.run}/${this.id}/heartbeat`,
      subject: this.subjects.heartbeat(this.kind, this.id),
      intervalMs: heartbeatIntervalMs,
    };
    const thread = new Worker(heartbeatThreadEntry, { workerData });
    thread.unref();
    this.heartbeatThread = thread;
    this.heartbeatThreadConnected = new Promise<void>((resolve, reject) => {
      thread.on("message", (m: FromHeartbeatThread) => m.type === "connected" && resolve());
      thread.on("error", (err) => {
        this.log.error("heartbeat-thread-failed", { error: err.message });
        reject(new Error(`its heartbeat thread failed: ${err.message}`));
      });
      thread.on("exit", (code) => {
        if (this.heartbeatThread === thread) this.heartbeatThread = undefined;
        reject(new Error(`its heartbeat thread exited (code ${code}) before it connected`));
        if (this.state === "ready") void this.stop(`its heartbeat thread ended (code ${code})`);
      });
    });
    this.heartbeatThreadConnected.catch(() => undefined); // start() awaits it; a later failure is logged above
  }

  /** Gives the heartbeat thread the latest state and status (it publishes them on its own clock). */
  private postStatus(type: ToHeartbeatThread["type"] = "status"): void {
    this.heartbeatThread?.postMessage({ type, heartbeat: this.heartbeat() } satisfies ToHeartbeatThread);
  }

  /**
   * The final heartbeat (state stopped): the thread publishes it, drains its connection and
   * ends. Waits for that (5 s at most: a stuck thread must not hold the stop); without a live
   * thread the main connection says it, and its drain delivers it.
   */
  private async lastHeartbeat(): Promise<void> {
    const thread = this.heartbeatThread;
    if (!thread) {
      this.publish(this.subjects.heartbeat(this.kind, this.id), this.heartbeat());
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      thread.on("message", (m: FromHeartbeatThread) => m.type === "done" && resolve());
      thread.once("exit", () => resolve());
      timer = setTimeout(resolve, 5000);
      this.postStatus("last");
    });
    clearTimeout(timer);
    await thread.terminate();
  }

  /** Connects, watches the connection, and answers control requests (stop, status). */
  private async connect(): Promise<void> {
    this.nc = await connectNats({ url: this.spec.natsUrl, creds: this.spec.creds, name: `${this.spec.run}/${this.id}` });
    void (async () => {
      for await (const status of this.nc.status()) {
        if (status.type !== "disconnect" && status.type !== "reconnect") continue;
        this.connected = status.type === "reconnect";
        this.log.warn(`nats-${status.type}`, { server: String((status as { server?: unknown }).server ?? "") });
        this.onConnectionChange(this.connected);
      }
    })();
    this.handle(this.subjects.control(this.id), controlSchema, async (body) => {
      if (body.op === "stop") {
        setImmediate(() => void this.stop(body.reason ?? "asked to stop"));
        return { ok: true };
      }
      if (body.op === "status") return this.heartbeat();
      return { ok: false, error: `unknown control op ${JSON.stringify(body.op)}` };
    });
  }

  /** Resolves once the actor has stopped. */
  whenStopped(): Promise<void> {
    return this.stopped;
  }

  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info("stopping", { reason });
      this.state = "draining";
      this.postStatus();
      await this.onStop(reason).catch((err) => this.log.error("stop-failed", { error: String(err) }));
      clearInterval(this.statusTimer);
      this.state = "stopped";
      await this.lastHeartbeat();
      await this.nc.drain().catch(() => undefined); // already closed
      this.log.info("stopped", { reason });
      this.resolveStopped();
    })();
    return this.stopping;
  }

  /** Stops on SIGTERM/SIGINT, then exits the process. */
  stopOnSignals(): void {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void this.stop(`received ${signal}`).then(() => process.exit(0)));
  }

  heartbeat(): Heartbeat {
    return {
      kind: this.kind,
      id: this.id,
      pid: process.pid,
      host: this.host,
      state: this.state,
      time: Date.now(),
      memoryBytes: process.memoryUsage.rss(),
      // The node agent that started it: a coordinator that did not place it (a restarted one,
      // or one whose wait for it ran out on a loaded machine) still learns where it runs.
      ...(typeof this.spec.options.agent === "string" ? { agent: this.spec.options.agent } : {}),
      ...this.status(),
    };
  }

  protected encode(body: unknown): Uint8Array {
    return encodeMessage(body);
  }

  /**
   * Feeds a tensor chunk to an assembler: the whole tensor, with its meta checked against
   * `meta`, once complete. A bad chunk or meta is logged as rejected.
   */
  protected assemble<S extends z.ZodType>(assembler: TensorAssembler, meta: S, data: Uint8Array): Reassembled<z.infer<S>> | undefined {
    try {
      const whole = assembler.accept(data);
      return whole && { tensor: whole.tensor, meta: checkMessage(meta, whole.meta, "a tensor's meta") };
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      this.log.warn("rejected", { reason: err.message });
      return undefined;
    }
  }

  /** Publishes a msgpack message, unless the connection is closed for good. */
  protected publish(subject: string, body: unknown): void {
    if (!this.nc.isClosed()) this.nc.publish(subject, encodeMessage(body));
  }

  /**
   * Request/reply: the request is checked against `schema`; the handler's result is the
   * reply; a wrong-shaped request or a thrown error replies { ok: false, error }.
   */
  protected handle<S extends z.ZodType, R>(subject: string, schema: S, handler: (body: z.infer<S>, msg: Msg) => Promise<R> | R): void {
    this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          let reply: unknown;
          try {
            reply = await handler(decodeChecked(schema, msg.data, `request on ${subject}`), msg);
          } catch (error) {
            const message = (error as Error).message;
            this.log.warn(error instanceof CodecError ? "rejected" : "request-failed", { subject, reason: message });
            reply = { ok: false, error: message };
          }
          if (msg.reply) msg.respond(encodeMessage(reply));
        })();
      },
    });
  }

  /** Pub/sub: messages that fail to decode or to match `schema` are logged as rejected and never reach the handler. */
  protected on<S extends z.ZodType>(subject: string, schema: S, handler: (body: z.infer<S>, msg: Msg) => void | Promise<void>): void {
    this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let body: z.infer<S>;
        try {
          body = decodeChecked(schema, msg.data, `message on ${msg.subject}`);
        } catch (error) {
          this.log.warn("rejected", { subject: msg.subject, reason: (error as Error).message });
          return;
        }
        Promise.resolve(handler(body, msg)).catch((error) => this.log.error("handler-failed", { subject: msg.subject, error: String(error) }));
      },
    });
  }

  /** Whether the NATS connection is up right now (it reconnects by itself). */
  protected connected = true;

  /** Called when the connection drops and when it comes back. */
  protected onConnectionChange(_connected: boolean): void {}
}
