// Starting and stopping a local nats-server for a run.
//
// Owns: finding the nats-server binary, the server config (users per role with subject
// permissions, payload limits), the credentials files, and the server process.
// Never: installs anything; a missing binary is an error that says how to install it.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "./errors.js";
import { permissionsFor, roles, type Role } from "./subjects.js";

/**
 * The largest NATS message we allow. 8 MiB is nats-server's recommended ceiling; bigger
 * tensors are chunked by the codec. Larger messages would let one tensor hold a client's
 * connection for longer and make heartbeats queue behind it.
 */
export const maxPayloadBytes = 8 * 1024 * 1024;
/** How much a slow subscriber may have queued before the server drops it. */
const maxPendingBytes = 512 * 1024 * 1024;

/** What a process needs to join a run: written to `<run>/creds/<role>.json`, mode 0600. */
export interface Credentials {
  run: string;
  role: Role;
  url: string;
  user: string;
  password: string;
  /**
   * For a node agent: the credentials of the actors it may spawn, by kind. An agent that
   * joins from another host (`worker join`) gets those of compute, data-loader and
   * param-shard, never the coordinator's.
   */
  children?: Partial<Record<Role, { user: string; password: string }>>;
}

export function findNatsServer(): string {
  const fromPath = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).stdout.trim();
  if (fromPath) return fromPath;
  for (const candidate of ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"]) if (existsSync(candidate)) return candidate;
  throw new UserError("nats-server is not installed: run scripts/setup.sh (or `sudo apt-get install nats-server`), or use an existing server with --nats URL.");
}

/** Generates one user per role with a random password. */
export function generateCredentials(run: string): Credentials[] {
  return roles.map((role) => ({ run, role, url: "", user: `${role}`, password: randomBytes(18).toString("base64url") }));
}

/**
 * Writes one file per role (mode 0600) into `dir`, with the server URL filled in. The
 * node agent's file also carries the credentials of every kind it spawns; `worker.json`
 * is the one to copy to another host for `worker join` (no coordinator credentials).
 */
export function writeCredentialsFiles(dir: string, creds: Credentials[], url: string): Record<Role | "worker", string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const byRole = Object.fromEntries(creds.map((c) => [c.role, { user: c.user, password: c.password }])) as Record<Role, { user: string; password: string }>;
  const { client: _client, "node-agent": _agent, ...spawnable } = byRole;
  const { coordinator: _coordinator, ...remoteSpawnable } = spawnable;
  const files = {} as Record<Role | "worker", string>;
  const write = (name: Role | "worker", content: Credentials) => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    files[name] = file;
  };
  for (const c of creds) write(c.role, { ...c, url, ...(c.role === "node-agent" ? { children: spawnable } : {}) });
  const agent = creds.find((c) => c.role === "node-agent")!;
  write("worker", { ...agent, url, children: remoteSpawnable });
  return files;
}

export function readCredentials(file: string): Credentials {
  let parsed: Partial<Credentials>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UserError(`cannot read credentials file ${file}: ${(err as Error).message}. Copy it from the run folder of the host that ran \`cluster up\`.`);
  }
  for (const key of ["run", "role", "user", "password"] as const)
    if (typeof parsed[key] !== "string") throw new UserError(`credentials file ${file} has no "${key}": copy it again from runs/<name>/creds/.`);
  return parsed as Credentials;
}

function serverConfig(port: number, creds: Credentials[], run: string): string {
  const users = creds.map((c) => {
    const perms = permissionsFor(c.role, run);
    return `    { user: ${JSON.stringify(c.user)}, password: ${JSON.stringify(c.password)}, permissions: { publish: { allow: ${JSON.stringify(perms.publish)} }, subscribe: { allow: ${JSON.stringify(perms.subscribe)} } } }`;
  });
  return `# Written by aze-run for run "${run}". Holds passwords: keep it private (mode 0600).
listen: "127.0.0.1:${port}"
max_payload: ${maxPayloadBytes}
max_pending: ${maxPendingBytes}
write_deadline: "20s"
authorization {
  users = [
${users.join(",\n")}
  ]
}
`;
}

/**
 * Starts nats-server bound to 127.0.0.1 (on a free port when `port` is 0) as a detached
 * process that outlives this one, and waits until it accepts clients.
 */
export async function startNatsServer(opts: { dir: string; run: string; creds: Credentials[]; port?: number }) {
  const binary = findNatsServer();
  mkdirSync(join(opts.dir, "logs"), { recursive: true });
  const configFile = join(opts.dir, "nats-server.conf");
  const logFile = join(opts.dir, "logs", "nats-server.log");
  writeFileSync(configFile, serverConfig(opts.port || -1, opts.creds, opts.run), { mode: 0o600 });
  chmodSync(configFile, 0o600);
  const log = openSync(logFile, "a");
  const child = spawn(binary, ["-c", configFile], { detached: true, stdio: ["ignore", "ignore", log] });
  child.unref();
  const port = await waitForListening(logFile, child.pid!, () => child.exitCode, opts.port);
  // Pin the port it chose, so `nats-server -c <config>` restarts the run's server where
  // every actor will look for it when it reconnects.
  writeFileSync(configFile, serverConfig(port, opts.creds, opts.run), { mode: 0o600 });
  return { pid: child.pid!, port, url: `nats://127.0.0.1:${port}` };
}

async function waitForListening(logFile: string, pid: number, exitCode: () => number | null, wanted?: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  const pidTag = `[${pid}]`;
  while (Date.now() < deadline) {
    const lines = readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l.startsWith(pidTag));
    const text = lines.join("\n");
    const listening = /Listening for client connections on [^\s:]+:(\d+)/.exec(text);
    if (listening && /Server is ready/.test(text)) return Number(listening[1]);
    if (exitCode() !== null || /\[FTL\]/.test(text)) {
      if (/address already in use/.test(text)) throw new UserError(`port ${wanted} is in use: stop what listens there or start without a fixed port.`);
      const fatal = lines.find((l) => l.includes("[FTL]") || l.includes("[ERR]")) ?? "no message";
      throw new UserError(`nats-server failed to start (see ${logFile}): ${fatal.replace(/^\S+ \S+ \S+ /, "")}`);
    }
    await sleep(30);
  }
  throw new UserError(`nats-server did not become ready within 10 s (see ${logFile}).`);
}
