// What `cluster up` recorded about a run (runs/<name>/cluster.json), connecting to it as
// its client, and `cluster status`: the coordinator's answer.
//
// Owns: reading cluster.json, finding the run a command means, the client connection and
// the status request. It loads NATS and msgpack but neither zod nor the model, so that
// `aze-run cluster status` starts in a fraction of the time `cluster up` takes.
// Never: writes cluster.json or starts and stops processes (runtime/cluster.ts does).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClusterStatus } from "../actors/protocol.js";
import { checkMessage, decodeMessage, encodeMessage } from "./codec.js";
import { UserError } from "./errors.js";
import { connectNats, type NatsConnection } from "./nats.js";
import { readCredentials, type Credentials, type Secret } from "./nats-server.js";
import { actorKinds, actorStates, subjects } from "./subjects.js";

/** Where run folders live: $AZE_RUNS, else ./runs. */
export const runsRootDefault = () => resolve(process.env.AZE_RUNS || "runs");

/** What `cluster up` records about a run, in `runs/<name>/cluster.json`. */
export interface ClusterState {
  run: string;
  state: "up" | "down";
  natsUrl: string;
  /** The nats-server this run started; absent when it uses an existing one (--nats). */
  natsPid?: number;
  /** Where the run's server listens for routes from the servers of hosts that join (`--listen` beyond loopback). */
  routeUrl?: string;
  agentId: string;
  /** Absent while `cluster up` has not started the agent yet. */
  agentPid?: number;
  startedAt: string;
  configFile?: string;
  /** Credentials folder; absent when an existing server is used without credentials. */
  credsDir?: string;
}

export function runDir(run: string, runsRoot = runsRootDefault()): string {
  return join(runsRoot, run);
}

export function readClusterState(run: string, runsRoot = runsRootDefault()): ClusterState | undefined {
  const file = join(runDir(run, runsRoot), "cluster.json");
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as ClusterState;
  } catch {
    throw new UserError(`${file} is not valid JSON: the run's state is damaged; stop its processes by hand and delete the folder.`);
  }
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The run a command means: --run, else the only run that is up. */
export function resolveRun(run: string | undefined, runsRoot = runsRootDefault()): string {
  if (run) {
    if (!readClusterState(run, runsRoot)) throw new UserError(`no run named "${run}" in ${runsRoot}: start it with \`aze-run cluster up --run ${run}\`.`);
    return run;
  }
  const up = existsSync(runsRoot)
    ? readdirSync(runsRoot).filter((name) => {
        const s = readClusterState(name, runsRoot);
        return s?.state === "up" && isAlive(s.agentPid);
      })
    : [];
  if (up.length === 1) return up[0]!;
  if (up.length === 0) throw new UserError(`no run is up in ${runsRoot}: start one with \`aze-run cluster up\`.`);
  throw new UserError(`several runs are up (${up.join(", ")}): say which with --run NAME.`);
}

/** The run's `client` identity (the CLI and dashboard: read streams, ask the coordinator); none with an existing server. */
function clientCreds(state: ClusterState): Credentials | undefined {
  return state.credsDir ? readCredentials(join(state.credsDir, "client.json")) : undefined;
}

function connectAs(state: ClusterState, creds: Secret | undefined): Promise<NatsConnection> {
  return connectNats({ url: state.natsUrl, creds, name: `${state.run}/cli-${process.pid}`, timeoutMs: 3000 });
}

/** Connects to a run as its `client` identity. */
export async function connectClient(state: ClusterState): Promise<NatsConnection> {
  return connectAs(state, clientCreds(state));
}

/** Runs `use` on a fresh client connection to the run, closed once it settles. */
export async function withClient<T>(state: ClusterState, use: (nc: NatsConnection) => Promise<T>): Promise<T> {
  return withConnection(state, clientCreds(state), use);
}

export async function withConnection<T>(state: ClusterState, creds: Secret | undefined, use: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectAs(state, creds);
  try {
    return await use(nc);
  } finally {
    await nc.close();
  }
}

export async function fetchStatus(nc: NatsConnection, run: string, timeoutMs = 3000): Promise<ClusterStatus> {
  const subject = subjects(run).status;
  const what = `reply on ${subject}`;
  let data: Uint8Array;
  try {
    data = (await nc.request(subject, encodeMessage({}), { timeout: timeoutMs })).data;
  } catch (err) {
    throw new UserError(`no answer on ${subject} within ${timeoutMs} ms (${(err as Error).message}): is the run's coordinator up?`);
  }
  const reply = decodeMessage(data, what);
  if (isPlainStatus(reply)) return reply;
  // Anything else goes through the protocol's schema: it keeps what it accepts and words what it refuses.
  const { clusterStatusSchema } = await import("../actors/protocol.js");
  return checkMessage(clusterStatusSchema, reply, what);
}

/**
 * True when `value` is a status reply exactly as the coordinator builds it: every field
 * clusterStatusSchema asks for, with the right types, and no other (which the schema
 * would drop). Such a value is what the schema would return unchanged, so zod, which
 * costs more to load than the rest of `cluster status`, need not load to accept it.
 */
export function isPlainStatus(value: unknown): value is ClusterStatus {
  const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  const text = (s: unknown) => typeof s === "string";
  const record = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
  const only = (v: Record<string, unknown>, keys: string[]) => Object.keys(v).every((k) => keys.includes(k));
  const optional = (v: unknown, check: (v: unknown) => boolean) => v === undefined || check(v);
  const actor = (a: unknown) =>
    record(a) &&
    (actorKinds as readonly unknown[]).includes(a.kind) &&
    text(a.id) &&
    Number.isSafeInteger(a.pid) &&
    text(a.host) &&
    (actorStates as readonly unknown[]).includes(a.state) &&
    Number.isFinite(a.time) &&
    optional(a.mainThreadLagMs, Number.isFinite) &&
    Number.isFinite(a.lastHeartbeat) &&
    optional(a.agent, text);
  const training = (t: unknown) =>
    record(t) &&
    only(t, ["step", "steps", "finished", "lastCheckpoint", "stopped"]) &&
    count(t.step) &&
    count(t.steps) &&
    typeof t.finished === "boolean" &&
    optional(t.lastCheckpoint, text) &&
    optional(t.stopped, text);
  return (
    record(value) &&
    only(value, ["run", "desired", "actors", "training"]) &&
    text(value.run) &&
    record(value.desired) &&
    Object.values(value.desired).every(count) &&
    Array.isArray(value.actors) &&
    value.actors.every(actor) &&
    optional(value.training, training)
  );
}

/**
 * `cluster status`: the coordinator's answer. Its node agent restarts a coordinator that
 * died, which takes a few seconds: while the agent lives, ask again for `patienceMs`, then
 * say in one line where the coordinator stands.
 */
export async function askClusterStatus(state: ClusterState, runsRoot = runsRootDefault(), patienceMs = 10_000): Promise<ClusterStatus> {
  const deadline = Date.now() + patienceMs;
  return withClient(state, async (nc) => {
    for (;;) {
      try {
        return await fetchStatus(nc, state.run, 2000);
      } catch (err) {
        if (!(err instanceof UserError) || !isAlive(state.agentPid) || Date.now() > deadline) throw coordinatorSilent(state, runsRoot);
        await sleep(250);
      }
    }
  });
}

/** Why the coordinator does not answer, as far as this host can tell from its node agent's pid and log. */
function coordinatorSilent(state: ClusterState, runsRoot: string): UserError {
  const down = `\`aze-run cluster down --run ${state.run}\` stops the run`;
  if (!isAlive(state.agentPid))
    return new UserError(`the coordinator of run "${state.run}" is not answering and its node agent (pid ${state.agentPid}) is gone: ${down}.`);
  const log = join(runDir(state.run, runsRoot), "logs", `${state.agentId}.jsonl`);
  const entries = (existsSync(log) ? readFileSync(log, "utf8").split("\n") : []).flatMap((line) => {
    try {
      return [JSON.parse(line) as { event?: string; id?: string; pid?: number; error?: string }];
    } catch {
      return [];
    }
  });
  const spawned = entries.filter((e) => e.event === "spawned" && e.id === "coordinator").at(-1);
  const gaveUp = entries.filter((e) => e.event === "coordinator-given-up").at(-1);
  // A coordinator its agent has not reaped yet (a zombie) is dead all the same.
  const zombie = (pid: number) => existsSync(`/proc/${pid}/stat`) && /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  if (spawned?.pid && isAlive(spawned.pid) && !zombie(spawned.pid))
    return new UserError(`the coordinator of run "${state.run}" (pid ${spawned.pid}) is alive but not answering: see logs/coordinator.out; ${down}.`);
  if (gaveUp)
    return new UserError(
      `the coordinator of run "${state.run}" kept dying and its node agent ${state.agentId} no longer restarts it (last error: ${gaveUp.error}); ${down}.`,
    );
  return new UserError(
    `the coordinator of run "${state.run}" is not answering; it is being restarted by node agent ${state.agentId} (pid ${state.agentPid}): try again in a few seconds.`,
  );
}
