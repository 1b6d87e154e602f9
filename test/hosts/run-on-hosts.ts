// A training run spread over simulated hosts (netns.ts): the first host runs `cluster up
// --listen`, every other one `cluster join-host` with a nats-server of its own, and the
// compute actors are scaled up until each joined host holds its share.
//
// Owns: starting such a run, and reading where it stands (status, steps done, metrics).
// Never: stops it (`cluster down`, then Hosts.destroy(), do), or judges what it sees: the
// tests and bench:scale do. Used by test/hosts/many-hosts.test.ts and bench/scale-hosts.ts.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterStatus } from "../../actors/protocol.js";
import { connectClient, fetchStatus, readClusterState, type ClusterState } from "../../runtime/cluster.js";
import type { NatsConnection } from "../../runtime/nats.js";
import { cliEntry } from "../../runtime/spawn.js";
import { waitFor } from "../helpers/cluster.js";
import type { Host, Hosts } from "./netns.js";

export interface StepLine {
  step: number;
  actors: { id: string; groups: number[] }[];
  shardBytes?: number;
}

export interface HostRun {
  state: ClusterState;
  /** A client connection from the test process, which sits on the bridge like another host. */
  nc: NatsConnection;
  /** Each host's node agent id. */
  agentOf: Map<Host, string>;
  /** The run folder on the first host (metrics, logs, checkpoints). */
  runDir: string;
  status(): Promise<ClusterStatus>;
  stepsDone(): number;
  metrics(): StepLine[];
}

export interface HostRunOptions {
  /** A folder per host is made under it, as each machine would have its own. */
  cwd: string;
  run: string;
  config: string;
  computePerHost: number;
  /** Extra arguments of a joining host's `cluster join-host` (e.g. `--routes` through a proxy), once the run is up. */
  joinArgs?: (host: Host, state: ClusterState) => Promise<string[]> | string[];
  /** How long to wait for each stage without progress (default 4 minutes). */
  patienceMs?: number;
}

export function hostDir(cwd: string, host: Host): string {
  const dir = join(cwd, host.name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs the CLI inside a host, in its folder, and waits for it to exit. */
export function cliIn(hosts: Hosts, cwd: string, host: Host, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = hosts.spawnIn(host, process.execPath, [cliEntry, ...args], { cwd: hostDir(cwd, host), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout?.on("data", (d) => (out += d));
    child.stderr?.on("data", (d) => (out += d));
    child.on("exit", (code) => resolve({ code: code ?? 1, out }));
  });
}

/**
 * Starts the run on the first host with no compute actor, joins every other host with a
 * server of its own, then asks for `computePerHost` compute actors per joined host: the
 * coordinator places them on the least loaded agents, which are the joined hosts' (the
 * first host holds the coordinator, the shard and the loader).
 */
export async function startRunOnHosts(hosts: Hosts, opts: HostRunOptions): Promise<HostRun> {
  const patience = opts.patienceMs ?? 240_000;
  const [first, ...others] = hosts.hosts;
  const up = await cliIn(hosts, opts.cwd, first!, [
    "cluster",
    "up",
    "--config",
    opts.config,
    "--run",
    opts.run,
    "--listen",
    first!.address,
    "--compute",
    "0",
    "--detach",
  ]);
  if (up.code !== 0) throw new Error(`cluster up on ${first!.name} failed: ${up.out}`);
  const runsRoot = join(hostDir(opts.cwd, first!), "runs");
  const state = readClusterState(opts.run, runsRoot)!;
  const runDir = join(runsRoot, opts.run);
  const nc = await connectClient(state);
  const status = () => fetchStatus(nc, opts.run, 5000);
  for (const host of others) {
    const extra = (await opts.joinArgs?.(host, state)) ?? [];
    hosts.spawnIn(
      host,
      process.execPath,
      [cliEntry, "cluster", "join-host", "--nats", state.natsUrl, "--creds", join(state.credsDir!, "host.json"), "--listen", host.address, ...extra],
      { cwd: hostDir(opts.cwd, host), stdio: ["ignore", "ignore", "inherit"] },
    );
  }
  // Each agent runs in its host's namespace: tell them apart by pid.
  const agentOf = new Map<Host, string>();
  await waitFor(
    `${hosts.hosts.length} node agents`,
    async () => {
      for (const a of (await status()).actors.filter((x) => x.kind === "node-agent" && x.state === "ready")) {
        const host = hosts.hosts.find((h) => hosts.pidsIn(h).includes(a.pid));
        if (host) agentOf.set(host, a.id);
      }
      return agentOf.size === hosts.hosts.length || undefined;
    },
    patience,
  );
  const compute = opts.computePerHost * others.length;
  const scaled = await cliIn(hosts, opts.cwd, first!, ["cluster", "scale", "--run", opts.run, "--compute", String(compute)]);
  if (scaled.code !== 0) throw new Error(`cluster scale failed: ${scaled.out}`);
  await waitFor(
    `${compute} compute actors`,
    async () => (await status()).actors.filter((a) => a.kind === "compute" && a.state === "ready").length === compute || undefined,
    patience,
  );
  const metricsFile = join(runDir, "metrics.jsonl");
  const metrics = () =>
    existsSync(metricsFile)
      ? readFileSync(metricsFile, "utf8")
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as StepLine)
      : [];
  return { state, nc, agentOf, runDir, status, stepsDone: () => metrics().length, metrics };
}
