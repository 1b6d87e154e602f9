// The simulated hosts and the delay proxy that multi-host tests build on, tested with real
// namespaces and real processes: hosts reach each other, a cut host is unreachable until
// restored, the proxy delays and stalls as it says, and nothing of ours outlives destroy() or a
// test process that dies. Skipped, with the reason printed, where namespaces cannot be made.
// Only lower bounds on times: the machine may be busy, so a test waits for what it expects.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { packageRoot } from "../../runtime/spawn.js";
import { waitFor } from "../helpers/cluster.js";
import { type DelayProxy, startDelayProxy } from "./delay-proxy.js";
import { canMakeHosts, type Host, type Hosts, makeHosts } from "./netns.js";

const can = canMakeHosts();
if (!can.ok) console.warn(`simulated host tests skipped: ${can.reason}`);

/** Line server: answers each line with "echo <line>"; after the line "ticks" it also sends "tick <n>" every 20 ms. */
const serverScript = `
const net = require("node:net");
const readline = require("node:readline");
const server = net.createServer((socket) => {
  socket.on("error", () => {});
  let timer;
  const lines = readline.createInterface({ input: socket });
  lines.on("error", () => {}); // a reset connection; the socket's own handler has it too
  lines.on("line", (line) => {
    if (line === "ticks" && !timer) {
      let n = 0;
      timer = setInterval(() => socket.write("tick " + ++n + "\\n"), 20);
    } else socket.write("echo " + line + "\\n");
  });
  socket.on("close", () => clearInterval(timer));
});
server.listen(0, process.argv[1], () => console.log("listening " + server.address().port));
`;

/**
 * One-shot client, in bash to spare a node start per call: connects to host:port ($0 $1), sends
 * the line $2 and prints the first line that comes back. $2 = "MB" sends a megabyte of "x" and
 * prints the length of the reply instead.
 */
const clientScript = `
exec 3<>"/dev/tcp/$0/$1" || exit 2
if [ "$2" = MB ]; then { head -c 1000000 /dev/zero | tr "\\0" x; echo; } >&3; head -n1 <&3 | wc -c
else printf "%s\\n" "$2" >&3; head -n1 <&3
fi
`;

/** Starts the line server inside `host`; resolves with its port. */
async function startServer(hosts: Hosts, host: Host): Promise<{ child: ChildProcess; port: number }> {
  const child = hosts.spawnIn(host, process.execPath, ["-e", serverScript, host.address], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`line server in ${host.name} exited with ${code} before listening`)));
  });
  return { child, port: Number(/^listening (\d+)$/.exec(line)![1]) };
}

/** A client in this (root) namespace that keeps every line it receives with its arrival time. */
async function lineClient(host: string, port: number) {
  const socket: Socket = connect(port, host);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const lines: { text: string; at: number }[] = [];
  const reader = createInterface({ input: socket });
  reader.on("line", (text) => lines.push({ text, at: performance.now() }));
  reader.on("error", () => {}); // a reset shows as a missing line, which the test reports
  socket.on("error", () => {});
  return {
    lines,
    send: (line: string) => socket.write(`${line}\n`),
    /** The first received line equal to `text`, once it is there. */
    receive: (text: string, timeoutMs = 30_000) => waitFor(`"${text}" from ${host}:${port}`, () => lines.find((l) => l.text === text), timeoutMs),
    close: () => socket.destroy(),
  };
}

/** Runs the one-shot client in `from`; `timeout` ends it (exit 124) after timeoutMs. */
function runClient(hosts: Hosts, from: Host, to: { address: string; port: number }, line: string, timeoutMs = 30_000) {
  return hosts.exec(from, "timeout", [`${timeoutMs / 1000}`, "bash", "-c", clientScript, to.address, String(to.port), line]);
}

/** The error a TCP connect from this namespace ends in ("connected" when it succeeds). */
function connectResult(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, host, () => {
      socket.destroy();
      resolve("connected");
    });
    socket.on("error", (err) => resolve(String(err)));
  });
}

/** Whether the process exists and has not exited (a zombie has). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function inNamespace(pid: number, namespace: string): boolean {
  try {
    const [theirs, ns] = [statSync(`/proc/${pid}/ns/net`), statSync(`/run/netns/${namespace}`)];
    return theirs.dev === ns.dev && theirs.ino === ns.ino;
  } catch {
    return false;
  }
}

/** Names of the namespaces, as `ip netns list` shows them. */
function netnsList(): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(" ")[0]!);
}

/** Names of the root namespace's links, as `ip link` shows them. */
function linkList(): string[] {
  return execFileSync("ip", ["-o", "link"], { encoding: "utf8" })
    .split("\n")
    .flatMap((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? []);
}

describe.skipIf(!can.ok)("simulated hosts", () => {
  let hosts: Hosts;
  let a: Host;
  let b: Host;
  let c: Host;
  let server: { child: ChildProcess; port: number };
  const proxies: DelayProxy[] = [];

  beforeAll(async () => {
    hosts = await makeHosts(3);
    [a, b, c] = hosts.hosts as [Host, Host, Host];
    server = await startServer(hosts, a);
  });

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    hosts?.destroy();
  });

  test("hosts get distinct names and addresses in one /24 of 198.18.0.0/15, the names within 15 characters", () => {
    expect(hosts.subnet).toMatch(/^198\.1[89]\.\d{1,3}\.0\/24$/);
    const prefix = hosts.subnet.replace(/0\/24$/, "");
    expect(hosts.rootAddress).toBe(`${prefix}1`);
    for (const h of hosts.hosts) expect(h.address.startsWith(prefix)).toBe(true);
    expect(new Set(hosts.hosts.map((h) => h.address)).size).toBe(3);
    for (const name of [hosts.bridge, ...hosts.hosts.flatMap((h) => [h.namespace, h.rootVeth])]) expect(name.length).toBeLessThanOrEqual(15);
    expect(hosts.hosts.map((h) => h.name)).toEqual(["h0", "h1", "h2"]);
  });

  test("a client in one host reaches a server in another, and the test process reaches both", async () => {
    expect(hosts.pidsIn(a)).toContain(server.child.pid);
    const fromB = await runClient(hosts, b, { address: a.address, port: server.port }, "hello from b");
    expect(fromB.stdout.trim()).toBe("echo hello from b");
    const root = await lineClient(a.address, server.port);
    root.send("hello from root");
    await root.receive("echo hello from root");
    root.close();
  });

  test("bytesOf counts a megabyte sent from one host to another and back", async () => {
    const [a0, b0] = [hosts.bytesOf(a), hosts.bytesOf(b)];
    const result = await runClient(hosts, b, { address: a.address, port: server.port }, "MB");
    expect(result.stdout.trim()).toBe("1000006"); // "echo ", the megabyte, the newline
    const [a1, b1] = [hosts.bytesOf(a), hosts.bytesOf(b)];
    expect(b1.sent - b0.sent).toBeGreaterThanOrEqual(1_000_000);
    expect(a1.received - a0.received).toBeGreaterThanOrEqual(1_000_000);
    expect(a1.sent - a0.sent).toBeGreaterThanOrEqual(1_000_000);
    expect(b1.received - b0.received).toBeGreaterThanOrEqual(1_000_000);
  });

  test("cut makes a host unreachable, restore brings it back, and an open connection carries on", async () => {
    const root = await lineClient(a.address, server.port);
    root.send("before");
    await root.receive("echo before");

    hosts.cut(a);
    try {
      root.send("during");
      // Nothing can reach a cut host, however long we give it: a short wait only makes this weaker, never flaky.
      const fromB = await runClient(hosts, b, { address: a.address, port: server.port }, "while cut", 500);
      expect(fromB).toMatchObject({ stdout: "" });
      expect(fromB.code).not.toBe(0);
      expect(root.lines.map((l) => l.text)).not.toContain("echo during");
    } finally {
      hosts.restore(a);
    }

    // TCP retransmits what was sent during the cut.
    await root.receive("echo during");
    const fromB = await runClient(hosts, b, { address: a.address, port: server.port }, "after");
    expect(fromB.stdout.trim()).toBe("echo after");
    root.close();
  });

  test("a delay proxy inside a host adds at least twice the delay to every round trip, and setDelay changes it", async () => {
    const proxy = await startDelayProxy({
      listenHost: b.address,
      targetHost: a.address,
      targetPort: server.port,
      delayMs: 100,
      spawnIn: (command, args, options) => hosts.spawnIn(b, command, args, options),
    });
    proxies.push(proxy);
    expect(hosts.pidsIn(b)).toContain(proxy.pid);
    const client = await lineClient(b.address, proxy.port);
    const roundTrip = async (text: string) => {
      const sent = performance.now();
      client.send(text);
      return (await client.receive(`echo ${text}`)).at - sent;
    };
    for (const text of ["r1", "r2", "r3"]) expect(await roundTrip(text)).toBeGreaterThanOrEqual(200);
    await proxy.setDelay(250);
    expect(await roundTrip("r4")).toBeGreaterThanOrEqual(500);
    expect(await proxy.stats()).toMatchObject({ accepted: 1, open: 1 });
    client.close();
  });

  test("a stall holds both directions, then releases what queued in order", async () => {
    const stallMs = 1500;
    const proxy = await startDelayProxy({
      listenHost: c.address,
      targetHost: a.address,
      targetPort: server.port,
      delayMs: 0,
      spawnIn: (command, args, options) => hosts.spawnIn(c, command, args, options),
    });
    proxies.push(proxy);
    const client = await lineClient(c.address, proxy.port);
    client.send("ticks"); // the server now sends a line every 20 ms: traffic towards us during the stall
    await waitFor("three ticks", () => client.lines.filter((l) => l.text.startsWith("tick")).length >= 3);

    const stalledAt = performance.now();
    await proxy.stall(stallMs);
    const sent = Array.from({ length: 20 }, (_, i) => `m${i + 1}`);
    for (const text of sent) client.send(text);

    // Counters read while the stall surely lasts (answered before stalledAt + stallMs) must not move.
    const first = await proxy.stats();
    let frozenChecks = 0;
    while (performance.now() < stalledAt + stallMs) {
      const now = await proxy.stats();
      if (performance.now() >= stalledAt + stallMs) break;
      expect({ up: now.upBytes, down: now.downBytes }).toEqual({ up: first.upBytes, down: first.downBytes });
      frozenChecks++;
      await sleep(100);
    }

    await client.receive("echo m20");
    const echoes = client.lines.filter((l) => l.text.startsWith("echo m"));
    expect(echoes.map((l) => l.text)).toEqual(sent.map((t) => `echo ${t}`));
    for (const echo of echoes) expect(echo.at - stalledAt).toBeGreaterThanOrEqual(stallMs);
    const ticks = client.lines.filter((l) => l.text.startsWith("tick")).map((l) => Number(l.text.slice(5)));
    expect(ticks).toEqual(ticks.map((_, i) => i + 1));
    const released = await proxy.stats();
    expect(released.upBytes).toBeGreaterThan(first.upBytes);
    expect(released.downBytes).toBeGreaterThan(first.downBytes);
    console.log(`stall: ${frozenChecks} counter checks during the stall, ${ticks.length} ticks in order`);
    client.close();
  });

  test("a delay proxy in the root namespace on the bridge address joins two hosts", async () => {
    const proxy = await startDelayProxy({ listenHost: hosts.rootAddress, targetHost: a.address, targetPort: server.port, delayMs: 50 });
    proxies.push(proxy);
    const fromC = await runClient(hosts, c, { address: hosts.rootAddress, port: proxy.port }, "via the bridge");
    expect(fromC.stdout.trim()).toBe("echo via the bridge");
    expect(await proxy.stats()).toMatchObject({ accepted: 1 });
  });

  test("a delay proxy that cannot listen says why", async () => {
    await expect(startDelayProxy({ listenHost: a.address, targetHost: a.address, targetPort: server.port, delayMs: 0 })).rejects.toThrow(
      /did not start: .*(EADDRNOTAVAIL|address not available)/i,
    );
  });
});

describe.skipIf(!can.ok)("removing simulated hosts", () => {
  test("two sets made at the same time get their own names and /24s, and each destroy removes only its own", async () => {
    const [one, two] = await Promise.all([makeHosts(1), makeHosts(1)]);
    try {
      expect(one.subnet).not.toBe(two.subnet);
      expect(one.bridge).not.toBe(two.bridge);
      one.destroy();
      expect(netnsList()).not.toContain(one.hosts[0]!.namespace);
      expect(netnsList()).toContain(two.hosts[0]!.namespace);
      expect(linkList()).toContain(two.bridge);
      const fromRoot = await connectResult(two.hosts[0]!.address, 9); // nothing listens: refused, so reachable
      expect(fromRoot).toMatch(/ECONNREFUSED/);
    } finally {
      one.destroy();
      two.destroy();
    }
  });

  test("destroy removes every namespace, link and process of the set and of a crashed run's set, and nothing else", async () => {
    const hosts = await makeHosts(2);
    const [h0, h1] = hosts.hosts as [Host, Host];
    // A crashed run's set: its owner pid is gone, a process still sits in its namespace.
    const dead = spawnSync("true").pid!.toString(36);
    const crashed = `aze-${dead}-0-`;
    // Lookalikes that are not ours to remove: a name outside the pattern, and a set whose owner (pid 1) lives.
    const keep = { namespaces: ["aze-keep-this", "aze-1-zz-h0"], bridge: "aze-1-zz-br" };
    try {
      const batch = [
        `netns add ${crashed}h0`,
        `link add ${crashed}br type bridge`,
        `link add ${crashed}v0 type veth peer name eth0 netns ${crashed}h0`,
        ...keep.namespaces.map((ns) => `netns add ${ns}`),
        `link add ${keep.bridge} type bridge`,
      ];
      execFileSync("ip", ["-batch", "-"], { input: `${batch.join("\n")}\n` });
      const orphan = spawn("ip", ["netns", "exec", `${crashed}h0`, "sleep", "1000"], { stdio: "ignore", detached: true });
      orphan.unref();

      const sleeper = hosts.spawnIn(h0, "sleep", ["1000"], { stdio: "ignore" });
      hosts.spawnIn(h1, "sh", ["-c", "sleep 1000 & sleep 1000 & wait"], { stdio: "ignore" });
      await waitFor("three processes in h1", () => hosts.pidsIn(h1).length >= 3);
      // Once inside (another test file's makeHosts may already have removed it all: that is fine too).
      await waitFor("the crashed run's process inside its namespace", () => inNamespace(orphan.pid!, `${crashed}h0`) || !running(orphan.pid!));
      const pids = [sleeper.pid!, ...hosts.pidsIn(h1), orphan.pid!];

      hosts.destroy();
      hosts.destroy(); // idempotent

      const namespaces = netnsList();
      const links = linkList();
      for (const name of [...hosts.hosts.map((h) => h.namespace), `${crashed}h0`]) expect(namespaces).not.toContain(name);
      for (const name of [hosts.bridge, ...hosts.hosts.map((h) => h.rootVeth), `${crashed}br`, `${crashed}v0`]) expect(links).not.toContain(name);
      for (const ns of keep.namespaces) expect(namespaces).toContain(ns);
      expect(links).toContain(keep.bridge);
      await waitFor("every process of both sets gone", () => pids.every((pid) => !running(pid)));
    } finally {
      hosts.destroy();
      spawnSync("ip", ["-force", "-batch", "-"], { input: `${[...keep.namespaces.map((ns) => `netns del ${ns}`), `link del ${keep.bridge}`].join("\n")}\n` });
    }
  });

  test("a test process that dies of SIGTERM or of an uncaught error leaves no namespace, link or process behind", async () => {
    // A separate node process (running the TypeScript sources through tsx) makes hosts, starts a
    // process in one, prints what it made, and then dies without calling destroy().
    const run = async (ending: "wait for SIGTERM" | "throw") => {
      const script = [
        `import { makeHosts } from ${JSON.stringify(`${packageRoot}/test/hosts/netns.ts`)};`,
        "const hosts = await makeHosts(2);",
        'const sleeper = hosts.spawnIn(hosts.hosts[1], "sleep", ["1000"], { stdio: "ignore" });',
        "console.log(JSON.stringify({ names: [hosts.bridge, ...hosts.hosts.flatMap((h) => [h.namespace, h.rootVeth])], pid: sleeper.pid }));",
        ending === "throw" ? 'setTimeout(() => { throw new Error("a test fails hard"); }, 0);' : "setInterval(() => {}, 1000);",
      ].join("\n");
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: packageRoot, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("close", (code, signal) => resolve({ code, signal })),
      );
      const line = await new Promise<string | undefined>((resolve) => {
        createInterface({ input: child.stdout }).once("line", resolve);
        void exited.then(() => resolve(undefined));
      });
      if (line === undefined) throw new Error(`the child process exited before making hosts: ${stderr.trim()}`);
      const made = JSON.parse(line) as { names: string[]; pid: number };
      if (ending === "wait for SIGTERM") child.kill("SIGTERM");
      return { made, exit: await exited };
    };
    const [termed, thrown] = await Promise.all([run("wait for SIGTERM"), run("throw")]);

    expect(termed.exit.signal).toBe("SIGTERM"); // the handler kept the signal's own ending
    expect(thrown.exit.code).toBe(1);
    const namespaces = netnsList();
    const links = linkList();
    for (const name of [...termed.made.names, ...thrown.made.names]) {
      expect(namespaces).not.toContain(name);
      expect(links).not.toContain(name);
    }
    await waitFor("the hosts' processes gone", () => !running(termed.made.pid) && !running(thrown.made.pid));
  });
});
