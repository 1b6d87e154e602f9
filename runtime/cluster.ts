// The cluster launcher: `cluster up`, `status`, `scale`, `down` and `worker join`.
//
// Owns: the run folder `runs/<name>/` (config snapshot, cluster.json with pids and the NATS
// URL, credentials, logs) and the processes `cluster up` starts: nats-server and the node
// agent, which starts everything else at the coordinator's request.
// Never: places actors itself (the coordinator does) or leaves a process behind on `down`.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import { clusterEventSchema, joinHostReplySchema, joinReplySchema, replySchema, scaleReplySchema, type ClusterStatus } from "../actors/protocol.js";
import type { ActorSpec } from "./actor.js";
import { loadRunConfig, runsRootDefault, type RunConfig } from "./config.js";
import { decodeMessage } from "./codec.js";
import { UserError } from "./errors.js";
import { connectNats, requestMessage, type NatsConnection } from "./nats.js";
import { createAuthority, mintIdentity, newUserKey } from "./identity.js";
import { maxPayloadBytes, readCredentials, startNatsServer, writeRunCredentials, type Credentials, type Secret } from "./nats-server.js";
import { actorEntry, spawnActor } from "./spawn.js";
import { planTraining } from "../model/training.js";
import { subjects } from "./subjects.js";
import { certificateNames, isLoopback, makeHostRequest, makeRunTls, writeHostTls } from "./tls.js";
import { fetchStatus, isAlive, readClusterState, resolveRun, runDir, withClient, withConnection, type ClusterState } from "./run-state.js";

// Reading a run's state and asking its status live in run-state.ts, which `cluster status` loads alone.
export {
  askClusterStatus,
  connectClient,
  fetchStatus,
  isAlive,
  readClusterState,
  resolveRun,
  runDir,
  runsRootDefault,
  withClient,
  type ClusterState,
} from "./run-state.js";

export interface UpOptions {
  config?: string;
  /** Start actors that train nothing (to try scaling and membership); instead of config. */
  empty?: boolean;
  compute?: number;
  shards?: number;
  loaders?: number;
  backend?: "auto" | "wasm" | "cuda" | "sim";
  nats?: string;
  creds?: string;
  /** The address the run's nats-server listens on (default 127.0.0.1); beyond loopback it uses TLS. */
  listen?: string;
  run?: string;
  steps?: number;
  /** A checkpoint folder to continue from (any number of shards and compute actors). */
  resume?: string;
  /** Delete the run folder's checkpoints and metrics first. */
  fresh?: boolean;
  detach?: boolean;
  /** Root of the run folders (default ./runs). */
  runsRoot?: string;
  /** The run's nats-server also serves its monitoring endpoints on 127.0.0.1 at this port (bench:scale). */
  monitorPort?: number;
}

/** How many actors of each kind a run wants. */
type Shape = Record<"compute" | "shards" | "loaders", number>;

function writeClusterState(state: ClusterState, runsRoot = runsRootDefault()): void {
  const file = join(runDir(state.run, runsRoot), "cluster.json");
  const text = `${JSON.stringify(state, null, 2)}\n`;
  try {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  } catch (err) {
    // On a full disk the copy beside it cannot be written: rewrite the small file in place,
    // so `cluster down` still records the run as down.
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC" || !existsSync(file)) throw err;
    rmSync(`${file}.tmp`, { force: true });
    writeFileSync(file, text);
  }
}

// ---- cluster up -----------------------------------------------------------------------

export async function clusterUp(opts: UpOptions): Promise<ClusterState> {
  const runsRoot = opts.runsRoot ?? runsRootDefault();
  // A forgotten --config would start a cluster that trains nothing and says nothing: an
  // empty cluster is asked for by name instead.
  if (!opts.config === !opts.empty)
    throw new UserError(
      opts.empty
        ? "--empty starts a cluster that trains nothing: leave out --config, or --empty."
        : "cluster up needs --config FILE, the run to train; --empty starts actors that train nothing (to try scaling).",
    );
  const config: RunConfig | undefined = opts.config ? loadRunConfig(opts.config) : undefined;
  const run = opts.run ?? config?.name ?? "default";
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(run)) throw new UserError(`run name "${run}" may use only letters, digits, - and _.`);
  const dir = runDir(run, runsRoot);
  const previous = readClusterState(run, runsRoot);
  if (previous?.state === "up" && isAlive(previous.agentPid))
    throw new UserError(`run "${run}" is already up (agent pid ${previous.agentPid}): use \`aze-run cluster down --run ${run}\` or another --run NAME.`);
  mkdirSync(join(dir, "logs"), { recursive: true });

  const counts = {
    compute: opts.compute ?? config?.cluster.compute ?? 1,
    shards: opts.shards ?? config?.cluster.shards ?? 1,
    loaders: opts.loaders ?? config?.cluster.loaders ?? 1,
  };
  for (const [key, n] of Object.entries(counts))
    if (!Number.isSafeInteger(n) || n < (key === "compute" ? 0 : 1))
      throw new UserError(`--${key} must be a whole number${key === "compute" ? "" : " of at least 1"}, got ${n}.`);

  const agentId = `agent-${hostname()}`;
  const state: ClusterState = {
    run,
    state: "up",
    natsUrl: opts.nats ?? "",
    agentId,
    startedAt: new Date().toISOString(),
    configFile: opts.config ? resolve(opts.config) : undefined,
  };

  // Training runs: tokenizer and token shards are prepared (or found in the cache) before
  // any actor starts, so every actor opens the same files; the run folder and a resume
  // checkpoint are checked before any process starts. A run refused here is recorded as
  // down, so `cluster down` and `cluster status` still know it.
  let training: Awaited<ReturnType<typeof planTraining>> | undefined;
  try {
    training = config
      ? await planTraining(config, {
          configFile: resolve(opts.config!),
          runsRoot,
          runDir: dir,
          shards: counts.shards,
          loaders: counts.loaders,
          steps: opts.steps,
          resume: opts.resume,
          fresh: opts.fresh,
        })
      : undefined;
  } catch (err) {
    writeClusterState({ ...state, state: "down" }, runsRoot);
    throw err;
  }
  if (config) writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);

  // The server: ours, trusting the run's own keys, or an existing one. From here on the run
  // is recorded in cluster.json, so whatever fails, `cluster down` stops what started.
  const authority = opts.nats ? undefined : await createAuthority(run, maxPayloadBytes);
  if (opts.nats && opts.listen) throw new UserError("--listen sets the address of the run's own nats-server; with --nats the run uses an existing one.");
  const host = opts.listen ?? "127.0.0.1";
  const tls = authority && !isLoopback(host) ? makeRunTls(join(dir, "tls"), run, host) : undefined;
  // Beyond loopback the server also listens for routes: hosts that join with `cluster
  // join-host` run servers of their own in one NATS cluster with it.
  const trustFile = join(dir, "trust.conf");
  if (authority) {
    writeFileSync(trustFile, `${authority.serverConfig}\n`);
    const server = await startNatsServer({
      dir,
      run,
      trust: authority.serverConfig,
      name: `${run}-main`,
      host,
      tls,
      cluster: tls ? { routes: [] } : undefined,
      monitorPort: opts.monitorPort,
    });
    state.natsUrl = server.url;
    state.natsPid = server.pid;
    state.routeUrl = server.routeUrl;
    state.credsDir = join(dir, "creds");
  }
  writeClusterState(state, runsRoot);
  try {
    const files = authority ? await writeRunCredentials(state.credsDir!, authority, state.natsUrl, agentId, tls?.ca) : undefined;
    const agentCreds = files ? readCredentials(files["node-agent"]) : opts.creds ? readCredentials(opts.creds) : undefined;
    const agentSpec: ActorSpec = { kind: "node-agent", id: agentId, run, runDir: dir, natsUrl: state.natsUrl, creds: agentCreds, options: {} };
    state.agentPid = spawnActor(agentSpec, { detached: true }).pid;
    writeClusterState(state, runsRoot);
    // `cluster up` itself connects with an identity that may only start the coordinator and
    // watch the run come up; it is minted here and kept nowhere.
    const launcher = authority ? { ...(await mintIdentity(authority.issuer, "launcher", `launcher-${process.pid}`)), ca: tls?.ca } : agentCreds;
    await withConnection(state, launcher, async (nc) => {
      const failed = firstStartFailure(nc, run);
      await askUntilAnswered(
        nc,
        subjects(run).agent(agentId),
        {
          op: "spawn",
          kind: "coordinator",
          id: "coordinator",
          options: {
            ...counts,
            heartbeatTimeoutMs: config?.cluster.heartbeatTimeoutMs,
            backend: opts.backend ?? config?.cluster.backend ?? "auto",
            training,
            ...(files ? { issuerFile: files.issuer, mainAgent: agentId } : {}),
            ...(tls && state.routeUrl ? { hosts: { tlsDir: join(dir, "tls"), trust: trustFile, route: state.routeUrl } } : {}),
          },
          creds: files ? readCredentials(files.coordinator) : undefined,
        },
        state.agentPid!,
        join(dir, "logs", `${agentId}.out`),
      );
      await waitForShape(nc, run, counts, 60_000, failed);
    });
  } catch (err) {
    await clusterDown({ run, runsRoot, quiet: true }).catch(() => undefined);
    throw err;
  }
  return state;
}

/**
 * The agent needs a moment to connect (seconds on a busy machine): ask until it answers, for
 * as long as its process lives. An agent that exited says why in its log; one that lives
 * but stays silent for a minute is broken.
 */
async function askUntilAnswered(nc: NatsConnection, subject: string, body: unknown, agentPid: number, agentLog: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const reply = await requestMessage(nc, subject, body, replySchema, 1000);
      if (!reply.ok) throw new UserError(`the node agent refused to start the coordinator: ${reply.error}`);
      return;
    } catch (err) {
      if (err instanceof UserError && !/no answer/.test(err.message)) throw err;
      if (!isAlive(agentPid)) {
        const last = existsSync(agentLog) ? readFileSync(agentLog, "utf8").trim().split("\n").at(-1) : undefined;
        throw new UserError(`the node agent exited before it answered${last ? `: ${last}` : ""} (see ${agentLog}).`);
      }
      if (Date.now() > deadline) throw new UserError(`the node agent (pid ${agentPid}) runs but did not answer within 60 s: see ${agentLog}.`);
      await sleep(100);
    }
  }
}

/**
 * Watches the run's events for an actor that fails to start: the message of the first
 * such failure, once one has come. Start-up errors (a corrupt shard, a damaged checkpoint)
 * do not mend by retrying, so `cluster up` stops on the first.
 */
function firstStartFailure(nc: NatsConnection, run: string): () => string | undefined {
  let failure: string | undefined;
  nc.subscribe(subjects(run).events, {
    callback: (_err, msg) => {
      const event = clusterEventSchema.safeParse(decodeMessage(msg.data));
      if (event.success && event.data.type === "error") failure ??= event.data.message.replace(/\s*\n\s*/g, " ");
    },
  });
  return () => failure;
}

/** Waits until the coordinator reports the desired number of ready actors of each kind. */
async function waitForShape(nc: NatsConnection, run: string, counts: Shape, patienceMs: number, failed: () => string | undefined): Promise<ClusterStatus> {
  // The limit is on silence, not on the whole start: every actor that becomes ready (or a
  // first answer of the coordinator) starts the wait anew, so a slow, busy machine that
  // still makes progress is never given up on; start-up errors end it at once (failed()).
  let deadline = Date.now() + patienceMs;
  let progress = -1;
  let last: ClusterStatus | undefined;
  while (Date.now() < deadline) {
    const failure = failed();
    if (failure) throw new UserError(`${failure} (the run is stopped; its logs are in the run folder's logs/).`);
    try {
      last = await fetchStatus(nc, run, 1000);
      const ready = (kind: string) => last!.actors.filter((a) => a.kind === kind && a.state === "ready").length;
      if (ready("compute") === counts.compute && ready("param-shard") === counts.shards && ready("data-loader") === counts.loaders) return last;
      const now = last.actors.filter((a) => a.state === "ready").length;
      if (now > progress) {
        progress = now;
        deadline = Date.now() + patienceMs;
      }
    } catch {
      /* the coordinator is still starting */
    }
    await sleep(150);
  }
  const seen = last ? last.actors.map((a) => `${a.id}:${a.state}`).join(", ") : "no answer from the coordinator";
  throw new UserError(
    `the cluster did not reach ${counts.compute} compute, ${counts.shards} shards, ${counts.loaders} loaders: nothing more became ready for ${patienceMs / 1000} s (seen: ${seen}); see the logs in the run folder.`,
  );
}

// ---- cluster down ---------------------------------------------------------------------

export async function clusterDown(opts: { run?: string; runsRoot?: string; quiet?: boolean }): Promise<ClusterState> {
  const run = resolveRun(opts.run, opts.runsRoot);
  const state = readClusterState(run, opts.runsRoot)!;
  const dir = runDir(run, opts.runsRoot);
  const pids = new Set<number>(state.agentPid ? [state.agentPid] : []);
  let coordinator: number | undefined;
  try {
    await withClient(state, async (nc) => {
      const status = await fetchStatus(nc, run, 2000).catch(() => undefined);
      for (const a of status?.actors ?? []) if (a.host === hostname()) pids.add(a.pid);
      coordinator = status?.actors.find((a) => a.kind === "coordinator" && a.host === hostname())?.pid;
      const asked = await requestMessage(nc, subjects(run).shutdown, {}, replySchema, 5000).catch(() => undefined);
      if (!asked?.ok) coordinator = undefined;
    });
  } catch {
    /* the server or the coordinator is gone already: fall through to signals */
  }
  // A coordinator that took the shutdown ends the step, checkpoints where the run stands and
  // stops every actor itself: signals now would stop the shards under that checkpoint. Wait
  // while it works (a minute at most), then signal whatever is left.
  for (const until = Date.now() + 60_000; coordinator && isAlive(coordinator) && Date.now() < until; ) await sleep(100);
  // Actors are looked up after the shutdown request: a coordinator may have placed one meanwhile.
  await stopPids([...pids, ...processesOf(dir).actors], 20_000);
  const { servers } = processesOf(dir);
  await stopPids(state.natsPid ? [state.natsPid, ...servers] : servers, 5000);
  const down = { ...state, state: "down" as const };
  writeClusterState(down, opts.runsRoot);
  return down;
}

/**
 * The processes of this host that belong to the run in `dir`, found by their command line
 * (Linux /proc): nats-servers started with its config, however they were started (a
 * restart by hand included), and actor processes, whose argv names the run folder, even
 * those whose node agent is gone.
 */
export function processesOf(dir: string): { servers: number[]; actors: number[] } {
  const found = { servers: [] as number[], actors: [] as number[] };
  if (!existsSync("/proc")) return found;
  const config = join(dir, "nats-server.conf");
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isSafeInteger(pid) || pid === process.pid) continue;
    try {
      const [program = "", ...args] = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (args[0] === actorEntry && args[1] === dir) found.actors.push(pid);
      else if (basename(program) === "nats-server" && args.some((a) => resolve(readlinkSync(`/proc/${pid}/cwd`), a) === config)) found.servers.push(pid);
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found;
}

/** SIGTERM, then SIGKILL for whatever still lives when the grace period ends. */
async function stopPids(pids: number[], graceMs: number): Promise<void> {
  const alive = () => pids.filter(isAlive);
  // A process may exit between the check and the signal: that is the goal, not an error.
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  };
  for (const pid of alive()) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive().length > 0 && Date.now() < deadline) await sleep(50);
  for (const pid of alive()) signal(pid, "SIGKILL");
  while (alive().length > 0 && Date.now() < deadline + 2000) await sleep(20);
}

// ---- scale ----------------------------------------------------------------------------

export async function clusterScale(opts: { run?: string; compute: number; runsRoot?: string }): Promise<{ compute: number; warning?: string }> {
  const run = resolveRun(opts.run, opts.runsRoot);
  return withClient(readClusterState(run, opts.runsRoot)!, async (nc) => {
    const reply = await requestMessage(nc, subjects(run).scale, { compute: opts.compute }, scaleReplySchema);
    if (!reply.ok) throw new UserError(`scale refused: ${reply.error}`);
    return { compute: reply.compute ?? opts.compute, warning: reply.warning };
  });
}

// ---- worker join, cluster join-host ---------------------------------------------------

/**
 * Runs a node agent for another host in this process, until Ctrl-C. With the run's own
 * server, `worker.json` only lets it ask to join: it makes a key, sends the public half, and
 * the coordinator mints an agent identity bound to that key (the seed stays here).
 */
export async function workerJoin(opts: { nats: string; creds: string; runsRoot?: string }): Promise<void> {
  const creds = readCredentials(opts.creds);
  if (creds.role !== "worker" && creds.role !== "node-agent")
    throw new UserError(`${opts.creds} holds credentials for "${creds.role}"; worker join needs runs/<name>/creds/worker.json.`);
  const joined = creds.role === "worker" ? await askToJoin(opts.nats, creds) : { id: `agent-${hostname()}-${process.pid}`, creds };
  await runAgent({ id: joined.id, run: creds.run, runsRoot: opts.runsRoot, natsUrl: opts.nats, creds: joined.creds }, () => undefined);
}

async function runAgent(
  spec: { id: string; run: string; runsRoot?: string; natsUrl: string; creds: Secret },
  onStopped: () => void | Promise<void>,
): Promise<void> {
  const { NodeAgent } = await import("../actors/node-agent.js");
  const agent = new NodeAgent({
    kind: "node-agent",
    id: spec.id,
    run: spec.run,
    runDir: runDir(spec.run, spec.runsRoot ?? runsRootDefault()),
    natsUrl: spec.natsUrl,
    creds: spec.creds,
    options: {},
  });
  agent.stopOnSignals();
  try {
    await agent.start();
    process.stdout.write(`joined run "${spec.run}" at ${spec.natsUrl.split(",")[0]} as ${agent.id}; Ctrl-C to leave.\n`);
    await agent.whenStopped();
  } finally {
    await onStopped();
  }
}

export async function askToJoin(url: string, worker: Credentials): Promise<{ id: string; creds: Secret }> {
  const { key, reply } = await requestJoin(url, worker, subjects(worker.run).join, {}, joinReplySchema, 10_000);
  return { id: reply.id, creds: { name: reply.id, jwt: reply.jwt, seed: key.seed, ca: worker.ca } };
}

/**
 * Asks the run's coordinator to let this host join (`worker join`, `cluster join-host`): makes
 * the agent's key, sends its public half with `extra`, and returns the key and the accepted reply.
 */
async function requestJoin<T extends { ok: true } | { ok: false; error: string }>(
  url: string,
  creds: Credentials,
  subject: string,
  extra: Record<string, unknown>,
  schema: z.ZodType<T>,
  timeoutMs: number,
): Promise<{ key: { publicKey: string; seed: string }; reply: Extract<T, { ok: true }> }> {
  const key = newUserKey();
  const nc = await connectNats({ url, creds, name: `${creds.run}/joining-${hostname()}`, timeoutMs: 5000 });
  try {
    const reply: T = await requestMessage(nc, subject, { host: hostname(), publicKey: key.publicKey, ...extra }, schema, timeoutMs);
    if (!reply.ok) throw new UserError(`the run's coordinator refused to let this host join: ${reply.error}`);
    return { key, reply: reply as Extract<T, { ok: true }> };
  } finally {
    await nc.close();
  }
}

/**
 * `cluster join-host`: joins this host to a run with a nats-server of its own, in the run's
 * NATS cluster. The host makes its server's key and a certificate request for the address
 * its peers reach it at (`listen`, else the address this host reaches the run's server
 * from), the coordinator has the run's CA sign it; the server then routes to the run's
 * servers over TLS, and this host's agent and actors talk to it first, failing over to the
 * others when it dies. Runs until Ctrl-C, then stops the server too.
 */
export async function hostJoin(opts: {
  nats: string;
  creds: string;
  listen?: string;
  /** Route URLs to dial instead of those the coordinator gives: a relay or tunnel in between. */
  routes?: string;
  /** Where this host's server listens for routes, when not at `listen` (a cluster network of its own). */
  routeListen?: string;
  runsRoot?: string;
}): Promise<void> {
  const creds = readCredentials(opts.creds);
  if (creds.role !== "host")
    throw new UserError(
      `${opts.creds} holds credentials for "${creds.role}"; cluster join-host needs runs/<name>/creds/host.json (worker.json joins without a server: \`worker join\`).`,
    );
  if (!creds.ca) throw new UserError(`${opts.creds} carries no CA: the run listens on loopback only; start it with \`cluster up --listen ADDRESS\`.`);
  const listen = opts.listen ?? (await localAddressTowards(opts.nats.split(",")[0]!));
  if (isLoopback(listen))
    throw new UserError(`--listen ${listen} is loopback: other hosts could not reach this host's server; give an address of this host they can reach.`);
  const dir = runDir(creds.run, opts.runsRoot ?? runsRootDefault());
  const tlsDir = join(dir, "tls");
  const csr = makeHostRequest(tlsDir);
  const { key, reply } = await requestJoin(
    opts.nats,
    creds,
    subjects(creds.run).joinHost,
    { csr, names: certificateNames(listen) },
    joinHostReplySchema,
    20_000,
  );
  const tls = writeHostTls(tlsDir, reply.cert, creds.ca);
  const server = await startNatsServer({
    dir,
    run: creds.run,
    trust: reply.trust,
    name: `${creds.run}-${reply.id}`,
    host: listen,
    tls,
    cluster: { routes: opts.routes?.split(",") ?? reply.routes, host: opts.routeListen },
  });
  const stopServer = () => {
    try {
      process.kill(server.pid, "SIGTERM");
    } catch {
      /* gone already */
    }
  };
  process.once("exit", stopServer);
  process.stdout.write(`this host's nats-server listens at ${server.url} (routes at ${server.routeUrl}) in run "${creds.run}"\n`);
  // This host's server first, the run's servers after it: a dead local server fails over.
  const natsUrl = [server.url, ...opts.nats.split(",")].join(",");
  await runAgent(
    { id: reply.id, run: creds.run, runsRoot: opts.runsRoot, natsUrl, creds: { name: reply.id, jwt: reply.jwt, seed: key.seed, ca: creds.ca } },
    stopServer,
  );
}

/** The address of this host that packets to `url`'s host leave from: the address a peer there can reach this host at. */
async function localAddressTowards(url: string): Promise<string> {
  const { hostname: host, port } = new URL(url);
  const { connect } = await import("node:net");
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port) || 4222 }, () => {
      const address = socket.localAddress ?? "";
      socket.destroy();
      resolve(address.replace(/^::ffff:/, ""));
    });
    socket.on("error", (err) =>
      reject(new UserError(`cannot reach the run's server at ${url} (${err.message}): check the address, or give this host's with --listen.`)),
    );
  });
}
