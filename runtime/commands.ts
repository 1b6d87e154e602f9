// CLI commands of the runtime: cluster up/status/scale/down/join-host and worker join.
// Each action loads what it uses (the launcher, NATS, the dashboard) when it runs, so that
// parsing the command line and printing help load only commander.
import { type Command, InvalidArgumentError, Option } from "commander";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { ClusterStatus } from "../actors/protocol.js";
import { UserError } from "./errors.js";

const count = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number, got "${value}".`);
  return n;
};

export function registerClusterCommands(program: Command): void {
  const cluster = program.command("cluster").description("start, watch, scale and stop a training cluster");

  cluster
    .command("up")
    .description("start a run: nats-server, node agent, coordinator, shards, loaders, compute actors")
    .option("--config <file>", "run config (YAML or JSON)")
    .option("--empty", "no config: actors that train nothing, to try scaling and membership")
    .option("--compute <n>", "compute actors", count("--compute"))
    .option("--shards <n>", "param-shard actors", count("--shards"))
    .option("--loaders <n>", "data-loader actors", count("--loaders"))
    .addOption(new Option("--backend <name>", "compute backend (sim: compute actors simulate their work)").choices(["auto", "wasm", "cuda", "sim"]))
    .option("--nats <url>", "use an existing NATS server instead of starting one")
    .option("--creds <file>", "credentials for --nats")
    .option("--listen <address>", "where the run's nats-server listens (default 127.0.0.1); any other address uses TLS with the run's own CA")
    .option("--run <name>", 'run name (default: the config\'s name, else "default")')
    .option("--steps <n>", "stop after this many steps", count("--steps"))
    .option("--resume <checkpoint>", "continue from a checkpoint folder (any number of shards)")
    .option("--fresh", "delete the run folder's checkpoints and metrics first")
    .option("--detach", "start and return; the run goes on in the background")
    .option("--no-tui", "plain progress lines instead of the dashboard")
    .action(async (opts) => {
      const { clusterUp, fetchStatus, withClient } = await import("./cluster.js");
      const state = await clusterUp(opts);
      const status = await withClient(state, (nc) => fetchStatus(nc, state.run));
      const kinds: Record<string, number> = {};
      for (const a of status.actors) kinds[a.kind] = (kinds[a.kind] ?? 0) + 1;
      const counts = Object.entries(kinds).map(([k, n]) => `${n} ${k}`);
      const empty = opts.empty ? " (empty: it trains nothing)" : "";
      process.stdout.write(`run "${state.run}" is up at ${state.natsUrl}: ${counts.join(", ")}${empty}\n`);
      if (opts.detach) return;
      await followInForeground(state.run, opts.tui !== false);
    });

  cluster
    .command("status")
    .description("list the actors of a run")
    .option("--run <name>", "run name")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const { askClusterStatus, readClusterState, resolveRun } = await import("./run-state.js");
      const run = resolveRun(opts.run);
      const state = readClusterState(run)!;
      if (state.state !== "up") throw new UserError(`run "${run}" is down: start it with \`aze-run cluster up --run ${run}\`.`);
      const status = await askClusterStatus(state);
      if (opts.json) return void process.stdout.write(`${JSON.stringify({ ...status, natsUrl: state.natsUrl }, null, 2)}\n`);
      const now = Date.now();
      process.stdout.write(`run ${run} at ${state.natsUrl}\n${trainingLine(status)}\n`);
      process.stdout.write(`${"KIND".padEnd(12)} ${"ID".padEnd(28)} ${"PID".padEnd(8)} ${"HOST".padEnd(16)} ${"STATE".padEnd(9)} HEARTBEAT\n`);
      for (const a of status.actors)
        process.stdout.write(
          `${a.kind.padEnd(12)} ${a.id.padEnd(28)} ${String(a.pid).padEnd(8)} ${a.host.slice(0, 16).padEnd(16)} ${a.state.padEnd(9)} ${((now - a.lastHeartbeat) / 1000).toFixed(1)}s ago\n`,
        );
    });

  cluster
    .command("scale")
    .description("change the number of compute actors while the run goes on")
    .option("--run <name>", "run name")
    .requiredOption("--compute <n>", "compute actors wanted", count("--compute"))
    .action(async (opts) => {
      const { clusterScale } = await import("./cluster.js");
      const result = await clusterScale({ run: opts.run, compute: opts.compute });
      process.stdout.write(result.warning ? `compute actors: ${result.compute} wanted, but ${result.warning}\n` : `compute actors: ${result.compute}\n`);
    });

  cluster
    .command("down")
    .description("stop every process of a run, nats-server included")
    .option("--run <name>", "run name")
    .action(async (opts) => {
      const { clusterDown } = await import("./cluster.js");
      const state = await clusterDown({ run: opts.run });
      process.stdout.write(`run "${state.run}" is down.\n`);
    });

  cluster
    .command("join-host")
    .description("join this host to a run with a nats-server of its own, in the run's NATS cluster (the run needs `cluster up --listen`)")
    .requiredOption("--nats <urls>", "the run's NATS URL (several, comma-separated, are tried in turn)")
    .requiredOption(
      "--creds <file>",
      "the run's creds/host.json, copied from the first host (keep it as safe as the run: a server in the cluster sees every message)",
    )
    .option("--listen <address>", "the address of this host the run's other hosts reach (default: the one this host reaches the run's server from)")
    .option("--routes <urls>", "route URLs to dial instead of the run's server's (a relay or tunnel in between), comma-separated")
    .option("--route-listen <address>", "where this host's server listens for routes from the other hosts' servers (default: --listen)")
    .action(async (opts) => (await import("./cluster.js")).hostJoin(opts));

  program
    .command("worker")
    .description("join another host to a run")
    .command("join")
    .description("run a node agent on this host for a run started elsewhere")
    .requiredOption("--nats <urls>", "the run's NATS URL (several, comma-separated, are tried in turn)")
    .requiredOption("--creds <file>", "the run's creds/worker.json, copied from the first host")
    .action(async (opts) => (await import("./cluster.js")).workerJoin(opts));
}

/** Where the run's training stands, in one line. */
function trainingLine({ training: t }: ClusterStatus): string {
  if (!t) return "trains nothing (started with --empty)";
  const checkpoint = t.lastCheckpoint ? relative(process.cwd(), t.lastCheckpoint) : "none";
  if (t.stopped) return `stopped: step ${t.step} of ${t.steps}, last checkpoint ${checkpoint}: ${t.stopped}`;
  return `${t.finished ? "finished" : "training"}: step ${t.step} of ${t.steps}, last checkpoint ${checkpoint}`;
}

/**
 * `cluster up` without --detach: show the run (the dashboard on a terminal, plain lines
 * otherwise) until it ends or the user stops it, then stop everything that was started.
 * Detaching from the dashboard (`q`) leaves the run going.
 */
async function followInForeground(run: string, tui: boolean): Promise<void> {
  const { clusterDown, connectClient, readClusterState } = await import("./cluster.js");
  const { NatsDashboardSource } = await import("../tui/dashboard-source.js");
  const state = readClusterState(run)!;
  const nc = await connectClient(state);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const signal of signals) process.once(signal, onSignal);
  let how: string;
  try {
    const { runDashboard } = await import("../tui/dashboard.js"); // Ink and React load only for commands that draw
    how = await runDashboard(new NatsDashboardSource(nc, run), { plain: !tui, signal: stop.signal, exitOnEnd: true });
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    await nc.close().catch(() => undefined);
  }
  if (how === "detach" && !stop.signal.aborted) {
    process.stdout.write(`detached; run "${run}" goes on. \`aze-run dashboard --run ${run}\` watches it, \`aze-run cluster down --run ${run}\` stops it.\n`);
    return;
  }
  await clusterDown({ run });
  process.stdout.write(`${await runSummary(run)}\n`);
}

/** One line: steps, loss from first to last, the newest checkpoint. */
async function runSummary(run: string): Promise<string> {
  const { runDir } = await import("./run-state.js");
  const dir = runDir(run);
  const metricsFile = join(dir, "metrics.jsonl");
  if (!existsSync(metricsFile)) return `run "${run}" is down.`;
  const steps = readFileSync(metricsFile, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: number; loss: number });
  const checkpoints = existsSync(join(dir, "checkpoints"))
    ? readdirSync(join(dir, "checkpoints"))
        .filter((n) => /^step-\d{6}$/.test(n))
        .sort()
    : [];
  const last = steps.at(-1);
  // A step with no masked token has no loss (null in JSON): report the first and last real ones.
  const losses = steps.map((m) => m.loss).filter((l): l is number => typeof l === "number" && Number.isFinite(l));
  const checkpoint = checkpoints.length ? relative(process.cwd(), join(dir, "checkpoints", checkpoints.at(-1)!)) : "none";
  return `run "${run}" is down: ${last?.step ?? 0} steps, loss ${losses[0]?.toFixed(3) ?? "-"} → ${losses.at(-1)?.toFixed(3) ?? "-"}, checkpoint ${checkpoint}`;
}
