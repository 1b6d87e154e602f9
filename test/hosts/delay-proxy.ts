// Latency between simulated hosts: a TCP proxy of our own that delays and stalls forwarding.
//
// Owns: starting, controlling and closing one delay proxy process (delay-proxy-main.mjs), e.g.
// between one host's nats-server and its route peer: the server dials the proxy, the proxy
// dials the peer's route port.
// Never: shapes traffic in the kernel (this kernel has no netem qdisc), changes or drops bytes,
// or reorders them within a connection.
//
// Why a separate process, always:
// - A namespace's address can only be bound from inside that namespace, so a proxy that sits
//   "on" a host must run there: with `spawnIn`, the proxy is started through `ip netns exec`
//   (pass `(cmd, args, opts) => hosts.spawnIn(host, cmd, args, opts)`) and listens on that
//   host's address. A cut() of that host then cuts the proxy too, as it would on a real host.
// - Without `spawnIn` it runs in the root namespace; listening on `hosts.rootAddress` (the
//   bridge) it is reachable from every host, which suffices when the proxy needs no host of
//   its own.
// - In its own process the delays stay accurate while the test process is busy.
// It is a .mjs file because plain `node` runs it and test/ is not compiled to dist/. It is
// controlled over its stdin and ends when its stdin closes, so it never outlives the test.
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const mainScript = fileURLToPath(new URL("./delay-proxy-main.mjs", import.meta.url));

/** child_process.spawn, or one that runs the command somewhere else (inside a simulated host). */
export type SpawnFn = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

export interface DelayProxyOptions {
  /** The address to listen on: a host's address (with spawnIn for that host), or the root namespace's. */
  listenHost: string;
  /** Default 0: any free port, see `port`. */
  listenPort?: number;
  targetHost: string;
  targetPort: number;
  /** How long each chunk waits before it is forwarded, in each direction: a round trip gains at least 2 × delayMs. */
  delayMs: number;
  /** Runs the proxy process; default: plain spawn in this (root) namespace. */
  spawnIn?: SpawnFn;
}

export interface DelayProxyStats {
  /** Connections accepted so far. */
  accepted: number;
  /** Connections open now. */
  open: number;
  /** Bytes forwarded towards the target. */
  upBytes: number;
  /** Bytes forwarded back from the target. */
  downBytes: number;
}

export interface DelayProxy {
  host: string;
  /** The port it listens on (the chosen one when listenPort was 0). */
  port: number;
  /** Pid of the proxy process. */
  pid: number;
  /** Data arriving from now on waits `ms` in each direction. Resolves once the proxy applies it. */
  setDelay(ms: number): Promise<void>;
  /**
   * Forwards nothing, in either direction, for `ms` from now; then what queued goes, in order.
   * Resolves once the stall has begun (not when it ends).
   */
  stall(ms: number): Promise<void>;
  stats(): Promise<DelayProxyStats>;
  /** Closes every connection and ends the proxy process; resolves once it has exited. Idempotent. */
  close(): Promise<void>;
}

/** Starts a delay proxy and resolves once it accepts connections; rejects with the proxy's own error otherwise. */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const { listenHost, listenPort = 0, targetHost, targetPort, delayMs } = options;
  const spawnFn: SpawnFn = options.spawnIn ?? ((command, args, opts) => spawn(command, args, opts));
  const child = spawnFn(process.execPath, [mainScript, listenHost, String(listenPort), targetHost, String(targetPort), String(delayMs)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  // Writing to a proxy that was killed (say, by the hosts' destroy()) must not crash the test process.
  child.stdin!.on("error", () => {});
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("close", () => resolve());
  });
  const why = () => `${stderr.trim().split("\n").at(-1) || `exit ${child.exitCode ?? child.signalCode}`}`;

  // Replies come one line per command, in order: each waiting command takes the next line.
  const waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  let gone: Error | undefined;
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const onLine = (line: string) => {
      const listening = /^listening (\d+)$/.exec(line);
      lines.off("line", onLine);
      if (listening) resolve(Number(listening[1]));
      else reject(new Error(`delay proxy on ${listenHost}:${listenPort} → ${targetHost}:${targetPort} did not start: ${line.replace(/^error /, "")}`));
    };
    lines.on("line", onLine);
    child.once("error", (err) => reject(new Error(`delay proxy could not be started: ${err.message}`)));
    void exited.then(() => reject(new Error(`delay proxy on ${listenHost}:${listenPort} exited before listening: ${why()}`)));
  });
  lines.on("line", (line) => waiting.shift()?.resolve(line));
  void exited.then(() => {
    gone = new Error(`delay proxy ${listenHost}:${port} has exited: ${why()}`);
    for (const w of waiting.splice(0)) w.reject(gone);
  });

  const send = (command: string): Promise<string> => {
    if (gone) return Promise.reject(gone);
    return new Promise<string>((resolve, reject) => {
      waiting.push({ resolve, reject });
      child.stdin!.write(`${command}\n`);
    });
  };
  const expectOk = async (command: string) => {
    const reply = await send(command);
    if (reply !== "ok") throw new Error(`delay proxy refused "${command}": ${reply.replace(/^error /, "")}`);
  };
  const checkMs = (what: string, ms: number) => {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`delay proxy ${what}: ${ms} is not a number of milliseconds ≥ 0.`);
  };

  return {
    host: listenHost,
    port,
    pid: child.pid!,
    setDelay: async (ms) => {
      checkMs("setDelay", ms);
      await expectOk(`delay ${ms}`);
    },
    stall: async (ms) => {
      checkMs("stall", ms);
      await expectOk(`stall ${ms}`);
    },
    stats: async () => JSON.parse((await send("stats")).replace(/^stats /, "")) as DelayProxyStats,
    close: async () => {
      child.stdin!.end();
      // It leaves as soon as it reads the end of stdin; SIGKILL only if it cannot (stopped, say).
      const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
