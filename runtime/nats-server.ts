// Starting and stopping a local nats-server for a run.
//
// Owns: finding the nats-server binary, the server config (the run's trust root, payload
// limits), the credentials files of the run's fixed identities, and the server process.
// Never: installs anything; a missing binary is an error that says how to install it.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "./errors.js";
import { mintIdentity, writeIssuer, type Authority } from "./identity.js";
import type { Role } from "./subjects.js";
import { isLoopback, isWildcard, type RunTls } from "./tls.js";

/**
 * The largest NATS message we allow. 8 MiB is nats-server's recommended ceiling; bigger
 * tensors are chunked by the codec. Larger messages would let one tensor hold a client's
 * connection for longer and make heartbeats queue behind it.
 */
export const maxPayloadBytes = 8 * 1024 * 1024;
/** How much a slow subscriber may have queued before the server drops it. */
const maxPendingBytes = 512 * 1024 * 1024;

/**
 * What a process needs to join a run: written to `<run>/creds/<name>.json`, mode 0600.
 * An identity minted by the run (runtime/identity.ts): a user JWT and its key's seed; or,
 * for an existing server given with `--nats`, that server's user and password.
 */
export interface Credentials {
  run: string;
  role: Role;
  url: string;
  /** The identity's name: an actor id, "client" or "worker". */
  name: string;
  jwt?: string;
  seed?: string;
  user?: string;
  password?: string;
  /** The run's CA certificate (PEM), when its server listens beyond loopback with TLS. */
  ca?: string;
}

/** The part of credentials a connection uses. */
export type Secret = Pick<Credentials, "name" | "jwt" | "seed" | "user" | "password" | "ca">;

export function findNatsServer(): string {
  const fromPath = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).stdout.trim();
  if (fromPath) return fromPath;
  for (const candidate of ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"]) if (existsSync(candidate)) return candidate;
  throw new UserError("nats-server is not installed: run scripts/setup.sh (or `sudo apt-get install nats-server`), or use an existing server with --nats URL.");
}

/**
 * Mints the fixed identities of a run and writes one file each into `dir` (mode 0600):
 * `coordinator.json` and `node-agent.json` (this host's agent, `agentId`), `client.json`
 * for the CLI and dashboard, `worker.json` to copy to other hosts for `worker join` (it may
 * only ask the coordinator to join, which mints the agent an identity of its own),
 * `host.json` for `cluster join-host` (a host with a nats-server of its own in the run's
 * cluster: a route peer sees every message, so this file is as powerful as the run), and
 * `issuer.json`, the run's signing key, which never leaves this host. Every other actor's
 * identity is minted by the coordinator when it places the actor.
 */
export async function writeRunCredentials(
  dir: string,
  authority: Authority,
  url: string,
  agentId: string,
  /** The run's CA certificate, when its server uses TLS: every file carries it. */
  ca?: string,
): Promise<Record<"coordinator" | "node-agent" | "client" | "worker" | "host" | "issuer", string>> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { issuer } = authority;
  const file = (name: string) => join(dir, `${name}.json`);
  writeIssuer(file("issuer"), issuer);
  const write = async (fileName: string, role: Role, name: string) => {
    writeCredentials(file(fileName), { run: issuer.run, role, url, ...(await mintIdentity(issuer, role, name)), ...(ca ? { ca } : {}) });
    return file(fileName);
  };
  return {
    coordinator: await write("coordinator", "coordinator", "coordinator"),
    "node-agent": await write("node-agent", "node-agent", agentId),
    client: await write("client", "client", "client"),
    worker: await write("worker", "worker", "worker"),
    host: await write("host", "host", "host"),
    issuer: file("issuer"),
  };
}

export function writeCredentials(file: string, creds: Credentials): void {
  writeFileSync(file, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function readCredentials(file: string): Credentials {
  let parsed: Partial<Credentials>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UserError(`cannot read credentials file ${file}: ${(err as Error).message}. Copy it from the run folder of the host that ran \`cluster up\`.`);
  }
  for (const key of ["run", "role", "name"] as const)
    if (typeof parsed[key] !== "string") throw new UserError(`credentials file ${file} has no "${key}": copy it again from runs/<name>/creds/.`);
  const minted = typeof parsed.jwt === "string" && typeof parsed.seed === "string";
  const password = typeof parsed.user === "string" && typeof parsed.password === "string";
  if (!minted && !password)
    throw new UserError(`credentials file ${file} holds neither a token and seed nor a user and password: copy it again from runs/<name>/creds/.`);
  return parsed as Credentials;
}

function serverConfig(opts: ServerOptions, port: number, routePort: number): string {
  const { run, tls } = opts;
  // Beyond loopback, clients must speak TLS and check the server against the run's CA.
  const tlsBlock = (indent: string, verify: boolean) =>
    tls
      ? [
          "tls {",
          `  cert_file: ${JSON.stringify(tls.certFile)}`,
          `  key_file: ${JSON.stringify(tls.keyFile)}`,
          `  ca_file: ${JSON.stringify(tls.caFile)}`,
          // Routes: both ends show a certificate the run's CA signed, or the route is refused.
          ...(verify ? ["  verify: true"] : []),
          // The TLS handshake, on a loaded machine: seconds, as above.
          "  timeout: 20",
          "}",
        ]
          .map((line) => `${indent}${line}\n`)
          .join("")
      : "";
  // One server per host, all of a run's servers in one NATS cluster: each host's actors talk
  // to their own server, and a message crosses the network once per host that wants it.
  const cluster = opts.cluster
    ? `cluster {
  name: ${JSON.stringify(`aze-${run}`)}
  listen: "${opts.cluster.host ?? opts.host}:${routePort}"
  routes: [${opts.cluster.routes.map((r) => JSON.stringify(r)).join(", ")}]
${tlsBlock("  ", true)}}
`
    : "";
  // The monitoring endpoints (/varz: bytes and messages in and out) name every connection: loopback only.
  const monitor = opts.monitorPort ? `http: "127.0.0.1:${opts.monitorPort}"\n` : "";
  return `# Written by aze-run for run "${run}". Trusts the run's own operator: every user is a token
# its issuer signed (runtime/identity.ts), with the permissions of one actor.
server_name: ${JSON.stringify(opts.name ?? `${run}-${hostname()}`)}
listen: "${opts.host ?? "127.0.0.1"}:${port}"
max_payload: ${maxPayloadBytes}
max_pending: ${maxPendingBytes}
write_deadline: "20s"
# A client on a loaded machine may take seconds between the server's greeting and its signed
# answer: the default (2 s) would hang up on it mid-handshake, and it would wait for nothing.
authorization {
  timeout: 20
}
${monitor}${tlsBlock("", false)}${cluster}${opts.trust}
`;
}

interface ServerOptions {
  dir: string;
  run: string;
  /** The run's trust root: `Authority.serverConfig`, the same public lines on every host. */
  trust: string;
  /** A name unique in the run's cluster of servers (default `<run>-<hostname>`). */
  name?: string;
  port?: number;
  /** The address to listen on (default 127.0.0.1); anything else needs `tls`. */
  host?: string;
  tls?: RunTls;
  /** Join the run's cluster of servers: listen for routes on `host` and dial `routes` (route URLs of servers already up). */
  cluster?: { routes: string[]; port?: number; host?: string };
  /** Serve nats-server's monitoring endpoints on 127.0.0.1 at this port (bench:scale reads /varz). */
  monitorPort?: number;
}

/** A server of the run: its pid, the URL its clients use and, in a cluster, the URL its peers route to. */
export interface StartedServer {
  pid: number;
  port: number;
  url: string;
  routeUrl?: string;
}

/**
 * Starts nats-server bound to 127.0.0.1 or `host` (on free ports when none are given) as a
 * detached process that outlives this one, and waits until it accepts clients.
 */
export async function startNatsServer(opts: ServerOptions): Promise<StartedServer> {
  if (opts.host && !isLoopback(opts.host) && !opts.tls) throw new Error(`a server listening on ${opts.host} needs TLS`);
  if (opts.cluster && !opts.host) throw new Error("a server in a cluster needs the address its peers reach it at");
  const binary = findNatsServer();
  mkdirSync(join(opts.dir, "logs"), { recursive: true });
  const configFile = join(opts.dir, "nats-server.conf");
  const logFile = join(opts.dir, "logs", "nats-server.log");
  writeFileSync(configFile, serverConfig(opts, opts.port || -1, opts.cluster?.port || -1), { mode: 0o600 });
  chmodSync(configFile, 0o600);
  const log = openSync(logFile, "a");
  const child = spawn(binary, ["-c", configFile], { detached: true, stdio: ["ignore", "ignore", log] });
  child.unref();
  const ports = await waitForListening(logFile, child.pid!, () => child.exitCode, opts.port, !!opts.cluster);
  // Pin the ports it chose, so `nats-server -c <config>` restarts the run's server where
  // every actor (and every peer server) will look for it when it reconnects.
  writeFileSync(configFile, serverConfig(opts, ports.client, ports.route ?? -1), { mode: 0o600 });
  // Local clients reach a wildcard address through loopback, which the certificate names.
  const host = !opts.host || isWildcard(opts.host) ? "127.0.0.1" : opts.host;
  // Peers on other hosts dial the route listener: a wildcard one at an address they can reach.
  const routeHost = opts.cluster?.host ?? opts.host ?? "127.0.0.1";
  return {
    pid: child.pid!,
    port: ports.client,
    url: `nats://${host}:${ports.client}`,
    ...(ports.route ? { routeUrl: `nats-route://${isWildcard(routeHost) ? outsideAddress() : routeHost}:${ports.route}` } : {}),
  };
}

/** This host's first non-loopback IPv4 address (a wildcard listener's route URL names it), else loopback. */
function outsideAddress(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return "127.0.0.1";
}

async function waitForListening(
  logFile: string,
  pid: number,
  exitCode: () => number | null,
  wanted: number | undefined,
  routes: boolean,
): Promise<{ client: number; route?: number }> {
  // Generous: a busy machine may take seconds to start a process; a fatal error ends the wait at once.
  const deadline = Date.now() + 30_000;
  const pidTag = `[${pid}]`;
  while (Date.now() < deadline) {
    const lines = readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l.startsWith(pidTag));
    const text = lines.join("\n");
    const listening = /Listening for client connections on [^\s:]+:(\d+)/.exec(text);
    const route = /Listening for route connections on [^\s:]+:(\d+)/.exec(text);
    if (listening && /Server is ready/.test(text) && (route || !routes)) return { client: Number(listening[1]), route: route ? Number(route[1]) : undefined };
    if (exitCode() !== null || /\[FTL\]/.test(text)) {
      if (/address already in use/.test(text)) throw new UserError(`port ${wanted} is in use: stop what listens there or start without a fixed port.`);
      const fatal = lines.find((l) => l.includes("[FTL]") || l.includes("[ERR]")) ?? "no message";
      throw new UserError(`nats-server failed to start (see ${logFile}): ${fatal.replace(/^\S+ \S+ \S+ /, "")}`);
    }
    await sleep(30);
  }
  throw new UserError(`nats-server did not become ready within 30 s (see ${logFile}).`);
}
