// bench:scale — how the coordinator's and the param-shards' work per step grows with the
// number of compute actors (default 8, 64 and 256), with nothing but the cluster itself
// computing.
//
// How: each count is a real run (`cluster up`: its nats-server, node agent, coordinator,
// param-shards and data-loader as separate processes, every identity minted as usual) whose
// compute actors are simulated (`cluster.backend: sim`, model/sim-model.ts): each waits
// --delay-ms per group and sends a gradient of --grad-mib, a pure function of step and group,
// through the normal path (pre-combining, shards, the reduction tree, AdamW, the parameter
// broadcast back to every actor). 256 actor processes do not fit on a 2-core machine, so the
// compute actors run inside --hosts processes (bench/sim-host.ts): each joins the run as a
// node agent with the run's worker.json, and runs every compute actor the coordinator places
// on it as an instance of the real Compute class, with its own NATS connection and minted
// identity (its heartbeats come from its host process's main thread, not a thread of its own:
// see bench/sim-host.ts). Those processes share this machine's 2 cores with the coordinator,
// the shard and nats-server, so every figure here is an upper bound of what that work costs
// on a host of its own.
//
// Each run starts with no compute actor and the training paused; the actors are added in
// steps of --step-up (each step of them must start within the coordinator's 60 s), and then
// training resumes. After each batch joins, the bench asks the shards once to publish their
// parameters again (what a late joiner would otherwise ask for itself, see docs/scaling.md).
// The first step waits for every actor asked for, and the second may still find some
// fetching parameters: neither is measured. Each of the --steps after them is
// dealt to all the actors, one group each by default
// (training.groups = actors × --groups-per-actor, so each actor sends its own blocks and the
// shard's ingress grows with the actors: `cluster.combine: none`, the worst case; the bytes
// host-level combining saves are measured by bench/scale-hosts.ts).
//
// Per step (median over the measured steps), as watched by an identity of the bench's own
// (it reads step orders, group reports, shard reports and clip orders):
//   step     the step order's arrival to the last shard's `applied` report;
//   tail     the last compute actor's group report (sent after its gradients are flushed to the
//            server) to `applied`, split into: to the last `reduced` report (the last blocks
//            delivered and summed by the shard), to the clip order (the coordinator's norm and
//            decision), to `applied` (AdamW on the shard and its parameter broadcast);
//   CPU      the coordinator's, the shards', nats-server's and the simulated hosts' CPU time
//            (/proc/<pid>/stat) from one step order to the next;
//   bytes    gradient bytes entering the shards (their own count), and the bytes nats-server
//            received and sent (its /varz, less this bench's own subscription) per step.
// Prints one table and writes every step's figures to .bench/scale-<time>.json.
//
// Flags: --actors 8,64,256 --steps 5 --grad-mib 1 --delay-ms 50 --hosts 4 --shards 1
//        --groups-per-actor 1 --step-up 16
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { decodeMessage, encodeMessage } from "../runtime/codec.js";
import { askClusterStatus, clusterDown, clusterScale, clusterUp, isAlive, type ClusterState } from "../runtime/cluster.js";
import { ensurePrepared } from "../corpus/prepare.js";
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { presets, type ModelConfig } from "../model/config.js";
import { loadRunConfig } from "../runtime/config.js";
import { parameterLayout } from "../model/layout.js";
import { mintIdentity, readIssuer } from "../runtime/identity.js";
import { connectNats, requestMessage, type NatsConnection } from "../runtime/nats.js";
import { packageRoot } from "../runtime/spawn.js";
import { inboxPrefix, subjects } from "../runtime/subjects.js";
import { replySchema, type ClusterEvent, type GroupDone, type ShardReport, type StepOrder } from "../actors/protocol.js";
import { median } from "./peers.js";

const { values: flags } = parseArgs({
  options: {
    actors: { type: "string", default: "8,64,256" },
    steps: { type: "string", default: "5" },
    "grad-mib": { type: "string", default: "1" },
    "delay-ms": { type: "string", default: "50" },
    hosts: { type: "string", default: "4" },
    shards: { type: "string", default: "1" },
    "groups-per-actor": { type: "string", default: "1" },
    "step-up": { type: "string", default: "16" },
  },
});
const positive = (name: string, text: string | undefined, min = 1): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number of at least ${min}, got ${JSON.stringify(text)}`);
  return n;
};
const actorCounts = (flags.actors ?? "").split(",").map((a) => positive("actors", a));
const steps = positive("steps", flags.steps);
const gradMiB = positive("grad-mib", flags["grad-mib"], 0.01);
const delayMs = positive("delay-ms", flags["delay-ms"], 0);
const hostCount = positive("hosts", flags.hosts);
const shards = positive("shards", flags.shards);
const groupsPerActor = positive("groups-per-actor", flags["groups-per-actor"]);
const stepUp = positive("step-up", flags["step-up"]);
if (actorCounts.some((n) => n > 256)) throw new Error("--actors: the coordinator scales to 256 compute actors at most");

/** The vocabulary the tokenizer is asked for; the sample text gives fewer, and the model is sized with what it gives. */
const vocabWanted = 2000;
const clockTicks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** The tiny preset grown (wider, then deeper) until its parameters are closest to `mib` MiB of f32. */
function modelFor(mib: number, vocabSize: number): { model: ModelConfig; parameters: number } {
  const target = (mib * 1024 * 1024) / 4;
  let best: { model: ModelConfig; parameters: number } | undefined;
  for (const hidden of [64, 128, 256, 512, 768, 1024])
    for (let layers = 1; layers <= 48; layers++) {
      const model: ModelConfig = { ...presets.tiny!, hidden, intermediate: 2 * hidden, layers };
      const parameters = parameterLayout(model, vocabSize).total;
      if (!best || Math.abs(parameters - target) < Math.abs(best.parameters - target)) best = { model, parameters };
      if (parameters > target) break;
    }
  return best!;
}

function writeConfig(dir: string, actors: number, model: ModelConfig): { file: string; groups: number } {
  const groups = 2 ** Math.ceil(Math.log2(actors * groupsPerActor));
  const file = join(dir, `scale-${actors}.yaml`);
  const { preset: _preset, ...fields } = model;
  writeFileSync(
    file,
    `name: scale-${actors}
model: ${JSON.stringify({ preset: "tiny", ...fields })}
data:
  sources: [{ name: sample, path: ${JSON.stringify(join(packageRoot, "corpus", "sample", "az-sample.txt"))} }]
  vocabSize: ${vocabWanted}
  seqLen: 32
training: { steps: ${steps + 2}, groups: ${groups}, groupSize: 1, microBatch: 1, warmupSteps: 1 }
checkpoint: { every: 0, keep: 1 }
cluster: { compute: 0, shards: ${shards}, loaders: 1, backend: sim, simDelayMs: ${delayMs}, combine: none }
`,
  );
  return { file, groups };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** User + system CPU time of a process so far, in ms (0 for one that is gone). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return 0;
  }
}

interface Sample {
  time: number;
  coordinatorCpuMs: number;
  shardCpuMs: number;
  serverCpuMs: number;
  hostsCpuMs: number;
  /** nats-server's totals (/varz), less what this bench's own connection took. */
  serverIn: number;
  serverOut: number;
}

interface StepRecord {
  step: number;
  actors: number;
  redealt: boolean;
  stepMs: number;
  tailMs: number;
  deliverAndReduceMs: number;
  coordinatorMs: number;
  applyMs: number;
  coordinatorCpuMs: number;
  shardCpuMs: number;
  serverCpuMs: number;
  hostsCpuMs: number;
  shardInBytes: number;
  serverInBytes: number;
  serverOutBytes: number;
}

/** What the bench hears of one step. */
interface Heard {
  order?: number;
  actors: number;
  redealt: boolean;
  lastDone?: number;
  reduced: Map<number, { time: number; bytes: number }>;
  clip?: number;
  applied: Map<number, number>;
  start?: Promise<Sample>;
}

async function measure(runsRoot: string, dir: string, actors: number, model: ModelConfig) {
  const run = `scale-${actors}`;
  const { file: config, groups } = writeConfig(dir, actors, model);
  const monitorPort = await freePort();
  const hosts: ChildProcess[] = [];
  let nc: NatsConnection | undefined;
  let state: ClusterState | undefined;
  try {
    state = await clusterUp({ run, config, compute: 0, detach: true, runsRoot, monitorPort });
    const runState = state;
    const s = subjects(run);
    // An identity of the bench's own: it reads the step's traffic and may pause and resume.
    const name = "bench-observer";
    const perms = {
      publish: [s.command, s.paramsRequest(0).replace(/0$/, "*")],
      subscribe: [s.step, s.clip, s.shardReports, s.groupDones, s.events, `${inboxPrefix(name)}.>`],
      respond: false,
    };
    const identity = await mintIdentity(readIssuer(join(state.credsDir!, "issuer.json")), "client", name, undefined, perms);
    const observer = await connectNats({ url: state.natsUrl, creds: identity, name: `${run}/${name}` });
    nc = observer;
    await requestMessage(observer, s.command, { type: "pause" }, replySchema);

    const status = await askClusterStatus(state, runsRoot);
    const pidOf = (kind: string) => status.actors.filter((a) => a.kind === kind).map((a) => a.pid);
    const [coordinatorPid] = pidOf("coordinator");
    const shardPids = pidOf("param-shard");
    const sample = async (): Promise<Sample> => {
      const time = performance.now();
      const own = observer.stats();
      const cpu = {
        coordinatorCpuMs: cpuMs(coordinatorPid!),
        shardCpuMs: shardPids.reduce((n, pid) => n + cpuMs(pid), 0),
        serverCpuMs: cpuMs(runState.natsPid!),
        hostsCpuMs: hosts.reduce((n, h) => n + cpuMs(h.pid!), 0),
      };
      const varz = (await (await fetch(`http://127.0.0.1:${monitorPort}/varz`)).json()) as { in_bytes: number; out_bytes: number };
      return { time, ...cpu, serverIn: varz.in_bytes - own.outBytes, serverOut: varz.out_bytes - own.inBytes };
    };

    // Everything the bench hears, by step.
    const heard = new Map<number, Heard>();
    const of = (step: number) => {
      const h: Heard = heard.get(step) ?? { actors: 0, redealt: false, reduced: new Map(), applied: new Map() };
      heard.set(step, h);
      return h;
    };
    let finished: Promise<Sample> | undefined;
    let ended: string | undefined;
    let lastProgress = Date.now();
    /** The last death or error the run announced: said when it stops making progress. */
    let lastTrouble: string | undefined;
    observer.subscribe(s.step, {
      callback: (_e, m) => {
        const order = decodeMessage(m.data) as StepOrder;
        const h = of(order.step);
        if (order.attempt > 0) h.redealt = true;
        else {
          h.order = performance.now();
          h.actors = Object.keys(order.assignment).length;
          h.start = sample();
        }
      },
    });
    observer.subscribe(s.groupDones, {
      callback: (_e, m) => {
        of((decodeMessage(m.data) as GroupDone).step).lastDone = performance.now();
      },
    });
    observer.subscribe(s.clip, {
      callback: (_e, m) => {
        of((decodeMessage(m.data) as { step: number }).step).clip = performance.now();
      },
    });
    observer.subscribe(s.shardReports, {
      callback: (_e, m) => {
        const r = decodeMessage(m.data) as ShardReport;
        if (r.phase === "reduced") of(r.step).reduced.set(r.shard, { time: performance.now(), bytes: r.bytesReceived });
        if (r.phase === "applied") {
          of(r.step).applied.set(r.shard, performance.now());
          lastProgress = Date.now();
        }
      },
    });
    observer.subscribe(s.events, {
      callback: (_e, m) => {
        const event = decodeMessage(m.data) as ClusterEvent;
        if (event.type === "error" || event.type === "death") lastTrouble = event.message;
        if (event.end) {
          ended = event.end === "finished" ? "finished" : `${event.end}: ${event.message}`;
          finished ??= sample();
        }
      },
    });
    await observer.flush();

    // The simulated hosts join; then the actors are added a --step-up at a time.
    // One at a time, and again when one exits before it joined: on a busy machine a connection
    // can be slow to authenticate (its log says so).
    const room = Math.ceil(actors / hostCount) * 4;
    const ready = async (kind: string) => (await askClusterStatus(runState, runsRoot)).actors.filter((a) => a.kind === kind && a.state === "ready").length;
    for (let i = 0; i < hostCount; i++)
      for (let attempt = 1; ; attempt++) {
        const out = openSync(join(runsRoot, run, "logs", `sim-host-${i}.out`), "a");
        const args = [
          join(packageRoot, "dist", "bench", "sim-host.js"),
          state.natsUrl,
          join(state.credsDir!, "worker.json"),
          join(runsRoot, run),
          String(room),
        ];
        const host = spawn(process.execPath, args, { stdio: ["ignore", out, out] });
        hosts.push(host);
        let joined = false;
        while (!joined && host.exitCode === null && host.signalCode === null) {
          joined = (await ready("node-agent").catch(() => 0)) >= i + 2;
          await sleep(250);
        }
        if (joined) break;
        if (attempt === 3) throw new Error(`simulated host ${i} exited 3 times before it joined: see ${join(runsRoot, run, "logs", `sim-host-${i}.out`)}`);
      }
    // Actors that join miss the parameter broadcasts before them. Each would ask for the
    // parameters when dealt a group, and each ask makes a shard publish its slice to every
    // actor again (N asks, N² slices: docs/scaling.md); so after each batch joins, one ask
    // from here gives them all the current parameters.
    const republish = () => {
      for (let shard = 0; shard < shards; shard++) observer.publish(s.paramsRequest(shard), encodeMessage({}));
    };
    for (let target = Math.min(actors, stepUp); ; target = Math.min(actors, target + stepUp)) {
      await clusterScale({ run, compute: target, runsRoot });
      await waitProgress(`${target} compute actors to be ready`, async () => ready("compute"), target).catch((err) => {
        throw new Error(`${(err as Error).message}${lastTrouble ? `; the run's last death or error: ${lastTrouble}` : ""}`);
      });
      republish();
      // Taken in before the next batch connects: a host busy with it answers a connection's
      // authentication too late (the server allows 20 s), and the coordinator counts a failed start.
      await waitProgress(
        "the compute actors to hold parameters",
        async () => {
          const all = (await askClusterStatus(runState, runsRoot)).actors.filter((a) => a.kind === "compute");
          return all.filter((a) => typeof a.version === "number" && a.version >= 0).length;
        },
        target,
      );
      if (target === actors) break;
    }
    // The first step waits for every compute actor asked for (and a pause holds it): resume,
    // and let the first step give them all the parameters of version 1.
    await requestMessage(observer, s.command, { type: "resume" }, replySchema);
    await waitProgress("the first step to be applied", async () => of(0).applied.size, shards);
    republish();
    await waitProgress(
      "every compute actor to hold the parameters",
      async () => {
        const all = (await askClusterStatus(runState, runsRoot)).actors.filter((a) => a.kind === "compute");
        return all.filter((a) => typeof a.version === "number" && a.version >= 1).length;
      },
      actors,
    );
    const t0 = Date.now();
    // A run that stalls (on a machine too busy for this many actors, actors miss their
    // heartbeats and are replaced) still reports the steps it finished, and why it stopped.
    let stopped: string | undefined;
    while (!ended && !stopped) {
      if (Date.now() - lastProgress > 120_000) stopped = "no step finished for 120 s";
      await sleep(200);
    }
    if (ended && ended !== "finished") stopped = `the run ended: ${ended}`;
    const end = await (finished ?? sample());
    const records: StepRecord[] = [];
    for (let step = 2; step < steps + 2; step++) {
      const h = of(step);
      if (h.applied.size < shards || h.reduced.size < shards || !h.start || !h.order || !h.lastDone || !h.clip) continue;
      const next = heard.get(step + 1)?.start ?? Promise.resolve(end);
      const [a, b] = [await h.start, await next];
      const applied = Math.max(...h.applied.values());
      const reduced = Math.max(...[...h.reduced.values()].map((r) => r.time));
      records.push({
        step: step + 1,
        actors: h.actors,
        redealt: h.redealt,
        stepMs: applied - h.order,
        tailMs: applied - h.lastDone,
        deliverAndReduceMs: reduced - h.lastDone,
        coordinatorMs: h.clip - reduced,
        applyMs: applied - h.clip,
        coordinatorCpuMs: b.coordinatorCpuMs - a.coordinatorCpuMs,
        shardCpuMs: b.shardCpuMs - a.shardCpuMs,
        serverCpuMs: b.serverCpuMs - a.serverCpuMs,
        hostsCpuMs: b.hostsCpuMs - a.hostsCpuMs,
        shardInBytes: [...h.reduced.values()].reduce((n, r) => n + r.bytes, 0),
        serverInBytes: b.serverIn - a.serverIn,
        serverOutBytes: b.serverOut - a.serverOut,
      });
    }
    const measured = records.filter((r) => r.actors === Math.min(actors, groups) && !r.redealt);
    return { actors, groups, run: Date.now() - t0, records, measured, failed: undefined as string | undefined, stopped };
  } catch (err) {
    return { actors, groups, run: 0, records: [], measured: [], failed: (err as Error).message, stopped: undefined as string | undefined };
  } finally {
    await nc?.close().catch(() => undefined);
    if (state) await clusterDown({ run, runsRoot, quiet: true }).catch(() => undefined);
    // `cluster down` stops them with their actors (their pid is their actors'); whatever still lives is killed.
    const deadline = Date.now() + 15_000;
    while (hosts.some((h) => isAlive(h.pid)) && Date.now() < deadline) await sleep(100);
    for (const h of hosts) if (isAlive(h.pid)) h.kill("SIGKILL");
  }
}

/** Waits until `count()` reaches `target`, for as long as it keeps growing (60 s without progress fails). */
async function waitProgress(what: string, count: () => Promise<number>, target: number): Promise<void> {
  let best = -1;
  let deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const n = await count().catch(() => best);
    if (n >= target) return;
    if (n > best) [best, deadline] = [n, Date.now() + 60_000];
    await sleep(1000);
  }
  throw new Error(`timed out waiting for ${what} (${best} after 60 s without progress)`);
}

const dir = mkdtempSync(join(tmpdir(), "aze-bench-scale-"));
const runsRoot = join(dir, "runs");
// The data is prepared once (every run finds it in the cache) and sizes the model.
const probe = loadRunConfig(writeConfig(dir, 1, presets.tiny!).file);
const { tokenizerPath } = await ensurePrepared(probe.data, join(runsRoot, ".cache"));
const { model, parameters } = modelFor(gradMiB, loadTokenizer(tokenizerPath).vocabSize);
const loadBefore = loadavg();
const started = new Date();
const results = [];
try {
  for (const actors of actorCounts) {
    process.stderr.write(`bench:scale: ${actors} simulated compute actors…\n`);
    results.push(await measure(runsRoot, dir, actors, model));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const loadAfter = loadavg();

const mib = (b: number) => b / 1024 ** 2;
const med = (xs: number[]) => (xs.length ? median(xs) : Number.NaN);
const gradBytes = parameters * 4;
const header = `bench:scale — simulated compute actors (${delayMs} ms a group), gradient ${mib(gradBytes).toFixed(2)} MiB (${parameters} f32), ${shards} param-shard(s), actors in ${hostCount} host processes, medians of ${steps} steps; this machine: ${cpus().length} cores, load ${loadBefore.map((l) => l.toFixed(1)).join(" ")} before, ${loadAfter.map((l) => l.toFixed(1)).join(" ")} after`;
const columns = [
  "actors",
  "groups",
  "step ms",
  "tail ms",
  "reduce ms",
  "coord ms",
  "apply ms",
  "coord CPU ms",
  "shard CPU ms",
  "nats CPU ms",
  "hosts CPU ms",
  "shard in MiB",
  "nats in MiB",
  "nats out MiB",
];
const rows = results.map((r) => {
  if (r.failed || r.measured.length === 0)
    return [String(r.actors), String(r.groups), `failed: ${r.failed ?? r.stopped ?? "no step was dealt to every actor"}`];
  const m = (key: keyof StepRecord) => med(r.measured.map((x) => Number(x[key])));
  return [
    String(r.actors),
    String(r.groups),
    m("stepMs").toFixed(0),
    m("tailMs").toFixed(0),
    m("deliverAndReduceMs").toFixed(0),
    m("coordinatorMs").toFixed(0),
    m("applyMs").toFixed(0),
    m("coordinatorCpuMs").toFixed(0),
    m("shardCpuMs").toFixed(0),
    m("serverCpuMs").toFixed(0),
    m("hostsCpuMs").toFixed(0),
    mib(m("shardInBytes")).toFixed(1),
    mib(m("serverInBytes")).toFixed(1),
    mib(m("serverOutBytes")).toFixed(1),
  ];
});
const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((row) => (row.length === columns.length ? (row[i]?.length ?? 0) : 0))));
const line = (cells: string[]) => (cells.length === columns.length ? cells.map((c, i) => c.padStart(widths[i]!)).join("  ") : cells.join("  "));
console.log(header);
console.log(line(columns));
for (const row of rows) console.log(line(row));
for (const r of results) {
  if (r.failed || r.measured.length === 0) continue;
  if (r.measured.length < r.records.length)
    console.log(`${r.actors} actors: ${r.records.length - r.measured.length} step(s) dealt again or not to every actor at once, left out`);
  if (r.stopped) console.log(`${r.actors} actors: ${r.records.length} of ${steps} steps finished, then ${r.stopped}`);
}

mkdirSync(join(packageRoot, ".bench"), { recursive: true });
const out = join(packageRoot, ".bench", `scale-${started.toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(
  out,
  `${JSON.stringify(
    {
      started: started.toISOString(),
      machine: { cores: cpus().length, memoryBytes: totalmem(), loadBefore, loadAfter },
      flags: { actors: actorCounts, steps, gradMiB, delayMs, hosts: hostCount, shards, groupsPerActor, stepUp },
      model,
      parameters,
      results,
    },
    null,
    2,
  )}\n`,
);
console.log(`every step: ${out}`);
