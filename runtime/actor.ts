// The actor base: the lifecycle, messaging and heartbeats every actor kind shares.
//
// Owns: start → ready → draining → stopped, request/reply and pub/sub handlers with msgpack
// bodies, the heartbeat loop, the actor's log, and a clean stop on SIGTERM/SIGINT.
// Never: knows what a kind does; subclasses fill in onStart, onStop and status.
import { hostname } from "node:os";
import { z } from "zod";
import { checkMessage, CodecError, decodeChecked, encodeMessage, type Reassembled, type TensorAssembler } from "./codec.js";
import { createLogger, type Logger } from "./log.js";
import { connectNats, type Msg, type NatsConnection } from "./nats.js";
import type { Secret } from "./nats-server.js";
import { actorKinds, subjects, type ActorKind, type Subjects } from "./subjects.js";

export const actorStates = ["starting", "ready", "draining", "stopped"] as const;
export type ActorState = (typeof actorStates)[number];

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
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** Requests on an actor's own control subject. */
const controlSchema = z.object({ op: z.string(), reason: z.string().optional() });

const heartbeatIntervalMs = 500;

export abstract class Actor {
  readonly kind: ActorKind;
  readonly id: string;
  readonly host = hostname();
  readonly subjects: Subjects;
  readonly log: Logger;
  state: ActorState = "starting";
  protected nc!: NatsConnection;
  private heartbeatTimer?: NodeJS.Timeout;
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
      await this.connect();
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
      throw err;
    }
    this.state = "ready";
    this.log.info("ready", { pid: process.pid, host: this.host });
    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), heartbeatIntervalMs);
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
      this.sendHeartbeat();
      await this.onStop(reason).catch((err) => this.log.error("stop-failed", { error: String(err) }));
      clearInterval(this.heartbeatTimer);
      this.state = "stopped";
      this.sendHeartbeat();
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
      ...this.status(),
    };
  }

  private sendHeartbeat(): void {
    this.publish(this.subjects.heartbeat(this.kind, this.id), this.heartbeat());
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
