// The heartbeat thread: one worker thread per actor process, with a NATS connection of its own.
//
// Owns: publishing the actor's heartbeat every 500 ms whether or not the actor's main thread
// is busy (a kernel call, AdamW over a big slice or hashing a checkpoint blocks it for seconds),
// and saying in each heartbeat how long ago the main thread last posted its status
// (`mainThreadLagMs`), so the coordinator can tell a busy process from a stuck one.
// Never: decides what the status says (the main thread posts it, runtime/actor.ts), and never
// keeps the process alive: after the last heartbeat it drains its connection and ends.
import { parentPort, workerData } from "node:worker_threads";
import { encodeMessage } from "./codec.js";
import { connectNats, type ConnectOptions } from "./nats.js";

/** What the actor gives the thread when it starts it. */
export interface HeartbeatThreadData {
  url: string;
  /** The actor's own credentials, passed to connectNats unchanged. */
  creds: ConnectOptions["creds"];
  /** The connection's name in the server's list: `<run>/<actor id>/heartbeat`. */
  name: string;
  subject: string;
  intervalMs: number;
}

/**
 * Main thread → heartbeat thread: the actor's latest heartbeat fields (state and its kind's
 * status). "last" is the final one (state stopped): published at once, then the thread ends.
 */
export type ToHeartbeatThread = { type: "status" | "last"; heartbeat: Record<string, unknown> };
/** Heartbeat thread → main thread: connected (heartbeats can flow), done (the last one is on the server). */
export type FromHeartbeatThread = { type: "connected" } | { type: "done" };

const port = parentPort;
if (!port) throw new Error("runtime/heartbeat-thread.js runs as a worker thread of an actor (runtime/actor.ts starts it).");
const data = workerData as HeartbeatThreadData;

// A failed connect throws here: the actor sees the thread's error and fails its start.
const nc = await connectNats({ url: data.url, creds: data.creds, name: data.name });

let status: Record<string, unknown> | undefined;
/** When the main thread last posted (Date.now(), the same clock in every thread of the process). */
let answeredAt = Date.now();

function publish(): void {
  // Heartbeats start when the actor is ready, as the coordinator expects.
  if (!status || status.state === "starting" || nc.isClosed()) return;
  const now = Date.now();
  nc.publish(data.subject, encodeMessage({ ...status, time: now, memoryBytes: process.memoryUsage.rss(), mainThreadLagMs: now - answeredAt }));
}

const timer = setInterval(publish, data.intervalMs);

port.on("message", (message: ToHeartbeatThread) => {
  answeredAt = Date.now();
  const changed = message.heartbeat.state !== status?.state;
  status = message.heartbeat;
  if (changed || message.type === "last") publish(); // a new state is said at once, not up to 500 ms later
  if (message.type !== "last") return;
  // The last heartbeat must reach the server before the process exits: drain flushes it.
  clearInterval(timer);
  void nc
    .drain()
    .catch(() => undefined) // already closed: nothing more can be sent anyway
    .then(() => {
      port.postMessage({ type: "done" } satisfies FromHeartbeatThread);
      port.close(); // nothing left holds this thread: it ends
    });
});
port.postMessage({ type: "connected" } satisfies FromHeartbeatThread);
