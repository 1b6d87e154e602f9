// Simulated hosts for multi-host tests: Linux network namespaces joined by one bridge.
//
// Owns: making n hosts (one network namespace each, joined by a veth pair to a bridge in the
// root namespace, addresses in a random /24 of 198.18.0.0/15, the range reserved for benchmark
// networks), running processes inside them, cutting and restoring a host's link, reading its
// traffic counters, and removing all of it again: on destroy(), on process exit, on
// SIGINT/SIGTERM/SIGHUP, and, for sets whose owner process died without cleaning up (SIGKILL, OOM),
// at the next makeHosts() or destroy() of any process.
// Never: touches a namespace or link whose name does not follow its own pattern, nor a set whose
// owner process is still alive; shapes traffic (this kernel has no netem qdisc: delay-proxy.ts adds
// latency in user space).
//
// Names: every object of one set starts with `aze-<owner pid, base 36>-<set counter, base 36>-`,
// then `br` (the bridge), `v<k>` (root side of host k's veth) or `h<k>` (host k's namespace);
// the namespace side of each veth is called eth0. At most 15 characters, the kernel's limit for a
// link name. The owner pid in the name is what lets a later process tell a crashed run's
// leftovers (owner gone) from a set another test file is using right now (owner alive).
//
// Addresses: the root namespace has .1 on the bridge, so the test process reaches every host;
// host k has .(11 + k). IPv6 address generation is off on every link so that the byte counters
// count the hosts' own traffic, not router solicitations.
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { constants } from "node:os";

export interface Host {
  /** A label for messages and logs: "h0", "h1", ... unless makeHosts got `names`. */
  name: string;
  /** 0-based position in `hosts`. */
  index: number;
  /** The network namespace, for `ip netns exec <namespace> ...`. */
  namespace: string;
  /** The host's IPv4 address (on its eth0), reachable from every other host and from the test process. */
  address: string;
  /** The root-namespace end of the host's veth: the link cut() and restore() switch, the one bytesOf() reads. */
  rootVeth: string;
}

export interface ExecResult {
  /** The exit status; 128 + signal number when the command was killed (e.g. by the timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostBytes {
  /** Bytes the host has sent onto the bridge (Ethernet frames, headers included). */
  sent: number;
  /** Bytes the bridge has delivered to the host. */
  received: number;
}

export interface Hosts {
  hosts: Host[];
  /** The /24 of this set, e.g. "198.18.37.0/24". */
  subnet: string;
  /** The root namespace's address on the bridge. */
  rootAddress: string;
  bridge: string;
  /** child_process.spawn of `command args` inside the host; the child is killed by destroy(). */
  spawnIn(host: Host, command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Runs a short command inside the host and resolves with its output (SIGKILL after timeoutMs, default 60 s); a non-zero exit is in `code`. */
  exec(host: Host, command: string, args?: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  /** Takes the host's link down (synchronously): every packet to or from it is dropped until restore(). Processes keep running. */
  cut(host: Host): void;
  /** Brings the host's link back up; established TCP connections resume through retransmission. */
  restore(host: Host): void;
  /** The host's traffic counters since the set was made. */
  bytesOf(host: Host): HostBytes;
  /** Pids of every process inside the host's namespace (`ip netns pids`). */
  pidsIn(host: Host): number[];
  /**
   * Kills every process in every namespace of the set (SIGKILL), deletes namespaces, veths and
   * the bridge, and removes leftovers of crashed earlier runs. Synchronous, idempotent; throws
   * naming what it could not remove.
   */
  destroy(): void;
}

export interface MakeHostsOptions {
  /** Labels of the hosts, one per host (default h0, h1, ...). */
  names?: readonly string[];
}

const maxHosts = 36; // one base-36 character per host index keeps names within 15 characters
const ourName = /^aze-([0-9a-z]{1,5})-([0-9a-z]{1,2})-(br|[hv][0-9a-z])$/;
const netnsDir = "/run/netns";
const linkDir = "/sys/class/net";

// ---------------------------------------------------------------------------------------------
// Running ip(8)

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runSync(command: string, args: readonly string[], input?: string): RunResult {
  const r = spawnSync(command, args, { input, encoding: "utf8" });
  if (r.error) return { code: 127, stdout: "", stderr: r.error.message };
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

function run(command: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err) => resolve({ code: 127, stdout, stderr: err.message }));
    child.on("close", (code) => resolve({ code: code ?? 128, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** One line: the ip command that failed (for a batch, its failing line) and the first thing ip said. */
function ipFailure(command: string, r: RunResult, lines?: readonly string[]): Error {
  const said = r.stderr.trim().split("\n")[0] || `exit ${r.code}`;
  const failedLine = Number(/Command failed -:(\d+)/.exec(r.stderr)?.[1] ?? 0);
  const what = lines && failedLine > 0 ? `${command} ${lines[failedLine - 1]}` : command;
  return new Error(`${what} failed: ${said}`);
}

function ipSync(args: readonly string[]): string {
  const r = runSync("ip", args);
  if (r.code !== 0) throw ipFailure(`ip ${args.join(" ")}`, r);
  return r.stdout;
}

/** Runs ip commands (one per line) in one ip process, in `namespace` when given; stops at the first failure. */
async function ipBatch(lines: readonly string[], namespace?: string): Promise<void> {
  const r = await run("ip", [...(namespace ? ["-n", namespace] : []), "-batch", "-"], `${lines.join("\n")}\n`);
  if (r.code !== 0) throw ipFailure(namespace ? `ip -n ${namespace}` : "ip", r, lines);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ---------------------------------------------------------------------------------------------
// Finding and removing sets

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return []; // /run/netns exists only once a namespace was ever made
  }
}

/** Our namespaces and root-namespace links whose name starts with `prefix`. */
function objectsWithPrefix(prefix: string): { namespaces: string[]; links: string[] } {
  const mine = (name: string) => name.startsWith(prefix) && ourName.test(name);
  return { namespaces: listDir(netnsDir).filter(mine), links: listDir(linkDir).filter(mine) };
}

/**
 * Pids of the processes inside each namespace: what `ip netns pids` does (a process's
 * /proc/<pid>/ns/net is the same nsfs inode as /run/netns/<name>), for all namespaces in one
 * pass and without starting a process, which costs a lot on a busy machine.
 */
function pidsByNamespace(namespaces: readonly string[]): Map<string, number[]> {
  const result = new Map(namespaces.map((ns) => [ns, [] as number[]]));
  const byInode = new Map<string, string>();
  for (const ns of namespaces) {
    try {
      const st = statSync(`${netnsDir}/${ns}`);
      byInode.set(`${st.dev}:${st.ino}`, ns);
    } catch {
      /* not there (any more) */
    }
  }
  if (byInode.size === 0) return result;
  for (const entry of listDir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const st = statSync(`/proc/${entry}/ns/net`);
      const ns = byInode.get(`${st.dev}:${st.ino}`);
      if (ns) result.get(ns)!.push(Number(entry));
    } catch {
      /* exited while we looked */
    }
  }
  return result;
}

/** SIGKILLs everything in the namespaces until they are empty (a process may fork while we kill). */
function emptyNamespaces(namespaces: readonly string[]): void {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = [...pidsByNamespace(namespaces).values()].flat();
    if (pids.length === 0 || Date.now() > deadline) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    sleepSync(20);
  }
}

/**
 * Removes every object of the set named by `prefix`, whatever state its creation reached:
 * processes first (a namespace with a process inside outlives its name), then the root ends of
 * the veths (which takes the namespace ends with them), the namespaces, the bridge.
 * Returns the names still there afterwards.
 */
function removeSet(prefix: string): string[] {
  const found = objectsWithPrefix(prefix);
  emptyNamespaces(found.namespaces);
  const bridges = found.links.filter((l) => l.endsWith("-br"));
  const veths = found.links.filter((l) => !l.endsWith("-br"));
  const lines = [...veths.map((l) => `link del ${l}`), ...found.namespaces.map((ns) => `netns del ${ns}`), ...bridges.map((l) => `link del ${l}`)];
  // -force: go on after a line fails (say, a veth already gone with its namespace); what is left is checked below.
  if (lines.length > 0) runSync("ip", ["-force", "-batch", "-"], `${lines.join("\n")}\n`);
  const left = objectsWithPrefix(prefix);
  return [...left.namespaces.map((n) => `namespace ${n}`), ...left.links.map((l) => `link ${l}`)];
}

function ownerAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // A zombie has exited; only its parent has not collected it yet.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Removes sets whose owner process is gone. Sets of live processes, this one included, are left alone. */
function removeLeftovers(): void {
  const prefixes = new Set<string>();
  for (const name of [...listDir(netnsDir), ...listDir(linkDir)]) {
    const m = ourName.exec(name);
    if (!m) continue;
    const owner = Number.parseInt(m[1]!, 36);
    if (owner === process.pid || ownerAlive(owner)) continue;
    prefixes.add(`aze-${m[1]}-${m[2]}-`);
  }
  for (const prefix of prefixes) removeSet(prefix);
}

// ---------------------------------------------------------------------------------------------
// Cleanup when the process ends without destroy()

interface LiveSet {
  prefix: string;
  children: Set<ChildProcess>;
}

const live = new Map<string, LiveSet>();
const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

function teardown(set: LiveSet): string[] {
  for (const child of set.children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  set.children.clear();
  live.delete(set.prefix);
  if (live.size === 0) uninstallHooks();
  return removeSet(set.prefix);
}

function teardownAll(): void {
  for (const set of [...live.values()]) teardown(set);
}

function onSignal(signal: NodeJS.Signals): void {
  teardownAll(); // also removes our listeners
  // With no other listener the signal's default action (ending the process) was ours to keep.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

let hooked = false;

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", teardownAll);
  for (const signal of signals) process.on(signal, onSignal);
}

function uninstallHooks(): void {
  hooked = false;
  process.off("exit", teardownAll);
  for (const signal of signals) process.off(signal, onSignal);
}

// ---------------------------------------------------------------------------------------------
// Making a set
//
// Every ip(8) process costs: on a busy 2-core machine starting one takes 100-200 ms. So the
// root namespace's part of a set is one ip batch, each namespace's part one more (in parallel),
// and the routes are read from /proc/net/route rather than from `ip route`.

function benchPrefix(index: number): string {
  return `198.${18 + (index >> 8)}.${index & 255}`;
}

/**
 * The /24s of 198.18.0.0/15 (as indexes 0..511) that routes of the root namespace's main table
 * reach, with the links of those routes. A link's address puts its /24 there once the link is
 * up, so this sees every other set's subnet and anything else using the range.
 */
function benchSubnetsInUse(): Map<number, string[]> {
  const used = new Map<number, string[]>();
  let table = "";
  try {
    table = readFileSync("/proc/net/route", "utf8");
  } catch {
    return used; // no IPv4 routes at all
  }
  // Destination and Mask are 32-bit numbers printed in the machine's (little-endian) byte order.
  const bigEndian = (hex: string) => {
    const n = Number.parseInt(hex, 16);
    return (((n & 0xff) << 24) | (((n >> 8) & 0xff) << 16) | (((n >> 16) & 0xff) << 8) | ((n >>> 24) & 0xff)) >>> 0;
  };
  for (const line of table.split("\n").slice(1)) {
    const [link, dstHex, , , , , , maskHex] = line.trim().split(/\s+/);
    if (!link || !dstHex || !maskHex) continue;
    const [dst, mask] = [bigEndian(dstHex), bigEndian(maskHex)];
    if (mask < 0xfffe0000) continue; // wider than our /15: a default or summary route, not a network someone put here
    for (let index = 0; index < 512; index++) {
      const net = ((198 << 24) | ((18 + (index >> 8)) << 16) | ((index & 255) << 8)) >>> 0;
      if (((net & mask) >>> 0 === dst && mask <= 0xffffff00) || (dst & 0xffffff00) >>> 0 === net) used.set(index, [...(used.get(index) ?? []), link]);
    }
  }
  return used;
}

function randomFreeSubnet(): number {
  const used = benchSubnetsInUse();
  const free = Array.from({ length: 512 }, (_, i) => i).filter((i) => !used.has(i));
  if (free.length === 0) throw new Error("makeHosts: all 512 /24s of 198.18.0.0/15 are in use: destroy sets you no longer need.");
  return free[Math.floor(Math.random() * free.length)]!;
}

let setCounter = 0;

/**
 * Runs the root namespace's part of a new set as one ip batch under the next free prefix. The
 * batch's first line creates the bridge, which claims the prefix: the kernel refuses a second
 * link of that name (another instance of this module in this process may be taking prefixes too).
 */
function claimSet(linesFor: (prefix: string) => string[]): LiveSet {
  const pid36 = process.pid.toString(36);
  for (let tries = 0; tries < 36 * 36; tries++) {
    const prefix = `aze-${pid36}-${(setCounter++ % (36 * 36)).toString(36)}-`;
    const existing = objectsWithPrefix(prefix);
    if (existing.namespaces.length + existing.links.length > 0) continue;
    // Registered before it exists, so that an exit in the middle still removes it.
    const set: LiveSet = { prefix, children: new Set() };
    live.set(prefix, set);
    installHooks();
    const lines = [`link add ${prefix}br type bridge`, ...linesFor(prefix)];
    const r = runSync("ip", ["-batch", "-"], `${lines.join("\n")}\n`);
    if (r.code === 0) return set;
    if (/File exists/.test(r.stderr) && /Command failed -:1$/m.test(r.stderr)) {
      live.delete(prefix); // not ours: nothing to remove
      if (live.size === 0) uninstallHooks();
      continue;
    }
    const left = teardown(set);
    throw new Error(`${ipFailure("ip", r, lines).message}${left.length > 0 ? ` (and could not remove ${left.join(", ")})` : ""}`);
  }
  throw new Error("every set name of this process is in use: destroy() sets you no longer need.");
}

/**
 * Makes `n` hosts (1..36). Removes leftovers of crashed earlier runs first. On failure removes
 * what it made and rejects with one line naming the ip command that failed.
 */
export async function makeHosts(n: number, options: MakeHostsOptions = {}): Promise<Hosts> {
  if (!Number.isInteger(n) || n < 1 || n > maxHosts) throw new Error(`makeHosts: n must be a whole number from 1 to ${maxHosts}, got ${n}.`);
  const names = options.names ?? Array.from({ length: n }, (_, k) => `h${k}`);
  if (names.length !== n) throw new Error(`makeHosts: ${names.length} names for ${n} hosts.`);
  removeLeftovers();

  let index = randomFreeSubnet();
  const namespaceOf = (prefix: string, k: number) => `${prefix}h${k.toString(36)}`;
  const rootVethOf = (prefix: string, k: number) => `${prefix}v${k.toString(36)}`;
  let set: LiveSet;
  try {
    set = claimSet((prefix) => {
      const bridge = `${prefix}br`;
      const lines = [`link set ${bridge} addrgenmode none`, `addr add ${benchPrefix(index)}.1/24 dev ${bridge}`, `link set ${bridge} up`];
      for (let k = 0; k < n; k++) {
        const [ns, veth] = [namespaceOf(prefix, k), rootVethOf(prefix, k)];
        lines.push(
          `netns add ${ns}`,
          `link add ${veth} type veth peer name eth0 netns ${ns}`,
          `link set ${veth} addrgenmode none`,
          `link set ${veth} master ${bridge}`,
          `link set ${veth} up`,
        );
      }
      return lines;
    });
  } catch (err) {
    throw new Error(`makeHosts: ${(err as Error).message}`);
  }

  const bridge = `${set.prefix}br`;
  try {
    // Another process may have picked the same /24 between our look and our claim: then both move.
    for (let tries = 0; (benchSubnetsInUse().get(index) ?? []).some((link) => link !== bridge); tries++) {
      if (tries === 50) throw new Error("could not claim a free /24 of 198.18.0.0/15 after 50 tries.");
      ipSync(["addr", "del", `${benchPrefix(index)}.1/24`, "dev", bridge]);
      sleepSync(Math.random() * 50);
      index = randomFreeSubnet();
      ipSync(["addr", "add", `${benchPrefix(index)}.1/24`, "dev", bridge]);
    }
    const subnet = benchPrefix(index);
    const hosts: Host[] = names.map((name, k) => ({
      name,
      index: k,
      namespace: namespaceOf(set.prefix, k),
      address: `${subnet}.${11 + k}`,
      rootVeth: rootVethOf(set.prefix, k),
    }));
    await Promise.all(
      hosts.map((h) => ipBatch(["link set lo up", "link set eth0 addrgenmode none", `addr add ${h.address}/24 dev eth0`, "link set eth0 up"], h.namespace)),
    );
    return hostsApi(set, hosts, `${subnet}.0/24`, `${subnet}.1`, bridge);
  } catch (err) {
    const left = teardown(set);
    throw new Error(`makeHosts: ${(err as Error).message}${left.length > 0 ? ` (and could not remove ${left.join(", ")})` : ""}`);
  }
}

function hostsApi(set: LiveSet, hosts: Host[], subnet: string, rootAddress: string, bridge: string): Hosts {
  let destroyed = false;
  const ours = (host: Host): Host => {
    if (destroyed) throw new Error(`host ${host.name} (${host.namespace}) was removed by destroy(): make new hosts.`);
    if (hosts[host.index]?.namespace !== host.namespace) {
      throw new Error(`host ${host.name} (${host.namespace}) is not one of this set's hosts (${hosts.map((h) => h.namespace).join(", ")}).`);
    }
    return host;
  };
  const counter = (link: string, which: "rx_bytes" | "tx_bytes"): number => Number(readFileSync(`${linkDir}/${link}/statistics/${which}`, "utf8"));

  // `ip netns exec` execs the command in place, so the child's pid is the command's own.
  const spawnIn = (host: Host, command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess => {
    const child = spawn("ip", ["netns", "exec", ours(host).namespace, command, ...args], options);
    set.children.add(child);
    child.on("exit", () => set.children.delete(child));
    return child;
  };

  return {
    hosts,
    subnet,
    rootAddress,
    bridge,
    spawnIn,
    exec(host, command, args = [], options = {}) {
      return new Promise<ExecResult>((resolve) => {
        const child = spawnIn(host, command, args, { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
        child.on("error", (err) => {
          clearTimeout(timer);
          resolve({ code: 127, stdout, stderr: stderr + err.message });
        });
        child.on("close", (code, signal) => {
          clearTimeout(timer);
          resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout, stderr });
        });
        child.stdin!.on("error", () => {}); // a command that exits without reading its input
        child.stdin!.end(options.input ?? "");
      });
    },
    cut(host) {
      // The root end goes down, so the host's own eth0 keeps its address and routes (it only
      // loses carrier) and everything inside it sees what a pulled cable looks like.
      ipSync(["link", "set", ours(host).rootVeth, "down"]);
    },
    restore(host) {
      ipSync(["link", "set", ours(host).rootVeth, "up"]);
    },
    bytesOf(host) {
      // The root end's receive counter is what the host sent, and the other way round.
      const link = ours(host).rootVeth;
      return { sent: counter(link, "rx_bytes"), received: counter(link, "tx_bytes") };
    },
    pidsIn(host) {
      const namespace = ours(host).namespace;
      return pidsByNamespace([namespace]).get(namespace) ?? [];
    },
    destroy() {
      destroyed = true;
      const left = teardown(set);
      removeLeftovers();
      if (left.length > 0) throw new Error(`destroy: could not remove ${left.join(", ")}: remove them with \`ip netns del\` / \`ip link del\`.`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Can this machine make hosts?

let probed: { ok: true } | { ok: false; reason: string } | undefined;

/**
 * Whether makeHosts can work here: root, ip(8), and a probe namespace with a veth and a bridge
 * actually made and removed. Cached per process. Use as `describe.skipIf(!canMakeHosts().ok)`.
 */
export function canMakeHosts(): { ok: true } | { ok: false; reason: string } {
  probed ??= probe();
  return probed;
}

function probe(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: `simulated hosts need Linux network namespaces; this is ${process.platform}.` };
  if (process.getuid?.() !== 0) return { ok: false, reason: "simulated hosts need root (network namespaces, veths, a bridge); run the tests as root." };
  const version = runSync("ip", ["-V"]);
  if (version.code !== 0) return { ok: false, reason: `ip (iproute2) is not usable: ${version.stderr.trim() || `exit ${version.code}`}; install iproute2.` };
  let set: LiveSet;
  try {
    set = claimSet((prefix) => [`netns add ${prefix}h0`, `link add ${prefix}v0 type veth peer name eth0 netns ${prefix}h0`]);
  } catch (err) {
    return { ok: false, reason: `cannot make a bridge, a network namespace and a veth: ${(err as Error).message}` };
  }
  const left = teardown(set);
  if (left.length > 0) return { ok: false, reason: `made a probe bridge, namespace and veth but could not remove ${left.join(", ")}.` };
  return { ok: true };
}
