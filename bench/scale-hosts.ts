// bench:scale, between hosts: the bytes a training step sends from host to host, with and
// without host-level combining (`cluster.combine`), measured on simulated hosts.
//
// Four Linux network namespaces on one bridge (test/hosts/netns.ts): the first runs the
// coordinator, the shard and the loader, the other three two compute actors each, every
// host with its own nats-server in the run's cluster. The bytes are the hosts' own link
// counters (Ethernet frames: TLS, NATS framing and heartbeats included), over steps taken
// once all six actors compute. Needs root and iproute2; says why and stops otherwise.
//
// Usage: node dist/bench/scale-hosts.js [--steps 10] [--json FILE]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeTinyConfig } from "../test/helpers/training.js";
import { canMakeHosts, makeHosts, type Hosts } from "../test/hosts/netns.js";
import { waitFor } from "../test/helpers/cluster.js";
import { cliIn, startRunOnHosts } from "../test/hosts/run-on-hosts.js";

const { values } = parseArgs({ options: { steps: { type: "string", default: "10" }, json: { type: "string", default: ".bench/scale-hosts.json" } } });
const steps = Number(values.steps);

interface Measured {
  combine: "host" | "none";
  steps: number;
  /** Bytes all hosts sent onto the bridge, per step. */
  betweenHosts: number;
  /** Bytes the first host (shards, loader, coordinator) received, per step. */
  intoMain: number;
  /** Gradient bytes the shards took in, per step (the step metrics). */
  shardIngress: number;
}

async function measure(hosts: Hosts, cwd: string, combine: "host" | "none"): Promise<Measured> {
  const run = `scale-${combine}`;
  const config = writeTinyConfig(cwd, { steps: 100_000, groups: 8, combine, file: `${combine}.yaml` });
  const r = await startRunOnHosts(hosts, { cwd: join(cwd, combine), run, config, computePerHost: 2 });
  try {
    // From a step all six actors computed, for `steps` steps.
    await waitFor("a step on all six actors", () => r.metrics().some((m) => m.actors.length === 6) || undefined, 240_000);
    const sent = () => hosts.hosts.reduce((n, h) => n + hosts.bytesOf(h).sent, 0);
    const [b0, m0, s0] = [sent(), hosts.bytesOf(hosts.hosts[0]!).received, r.stepsDone()];
    await waitFor(`${steps} more steps`, () => r.stepsDone() >= s0 + steps || undefined, 600_000);
    const [b1, m1, s1] = [sent(), hosts.bytesOf(hosts.hosts[0]!).received, r.stepsDone()];
    const taken = r.metrics().slice(s0, s1);
    return {
      combine,
      steps: s1 - s0,
      betweenHosts: (b1 - b0) / (s1 - s0),
      intoMain: (m1 - m0) / (s1 - s0),
      shardIngress: taken.reduce((n, m) => n + (m.shardBytes ?? 0), 0) / taken.length,
    };
  } finally {
    await r.nc.close();
    await cliIn(hosts, join(cwd, combine), hosts.hosts[0]!, ["cluster", "down", "--run", run]);
  }
}

const can = canMakeHosts();
if (!can.ok) {
  process.stdout.write(`bench:scale between hosts: skipped: ${can.reason}\n`);
  process.exit(0);
}
const cwd = mkdtempSync(join(tmpdir(), "aze-bench-hosts-"));
const hosts = await makeHosts(4);
const loadBefore = loadavg();
try {
  const results: Measured[] = [];
  for (const combine of ["host", "none"] as const) results.push(await measure(hosts, cwd, combine));
  const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
  const [withIt, without] = results as [Measured, Measured];
  process.stdout.write(
    [
      `bytes per step between hosts: 3 hosts x 2 compute actors, tiny model, 8 groups, ${steps} steps each`,
      "combine   between hosts   into the main host   gradient into the shards",
      ...results.map((m) => `${m.combine.padEnd(9)} ${mb(m.betweenHosts).padStart(13)}   ${mb(m.intoMain).padStart(18)}   ${mb(m.shardIngress).padStart(24)}`),
      `with/without: x${(withIt.betweenHosts / without.betweenHosts).toFixed(2)} between hosts, x${(withIt.intoMain / without.intoMain).toFixed(2)} into the main host, x${(withIt.shardIngress / without.shardIngress).toFixed(2)} into the shards`,
      `load average (1 min) before ${loadBefore[0]!.toFixed(1)}, after ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`,
      "",
    ].join("\n"),
  );
  mkdirSync(".bench", { recursive: true });
  writeFileSync(values.json!, `${JSON.stringify({ steps, results, loadBefore, loadAfter: loadavg() }, null, 2)}\n`);
} finally {
  hosts.destroy();
  rmSync(cwd, { recursive: true, force: true });
}
