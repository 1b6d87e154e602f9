// CLI commands of the dashboard: `aze-run dashboard [--run NAME] [--nats URL --creds FILE]`
// attaches to a live run; `--replay runs/<name>/metrics.jsonl` plays a recorded one and
// `--demo` the built-in sample run (to try the dashboard without a cluster).
//
// Owns: choosing the source (a live run through the runtime's NatsDashboardSource, or a
// replay) and the pace of a replay.
// Never: changes a run except through the keys; `q` leaves a live run going.
// NATS, the replay sources and the dashboard load when the command runs, not for help.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { UserError } from "../runtime/errors.js";
import type { NatsConnection } from "../runtime/nats.js";
import type { DashboardExit } from "./dashboard.js";
import type { DashboardUpdate } from "./types.js";

type ReplayOptions = { rate: number; plain?: boolean; stdout?: NodeJS.WriteStream };

interface DashboardCommandOptions extends ReplayOptions {
  run?: string;
  nats?: string;
  creds?: string;
  replay?: string;
  demo?: boolean;
}

export function registerDashboardCommands(program: Command): void {
  program
    .command("dashboard")
    .description("watch and steer a run in the terminal (plain lines when not a terminal)")
    .option("--run <name>", "the run to attach to (default: the one run that is up here)")
    .option("--nats <url>", "attach to a run started on another host, through its NATS server")
    .option("--creds <file>", "with --nats: that run's creds/client.json")
    .option("--replay <file>", "play a recorded metrics.jsonl (one dashboard update per line)")
    .option("--demo", "play the built-in sample run (a death, a join, checkpoints); needs no cluster")
    .option("--rate <steps>", "replays: steps shown per second", positiveRate, 20)
    .option("--plain", "one line per step even on a terminal")
    .action(async (opts: DashboardCommandOptions) => {
      const { sampleRun, SAMPLE_TOTAL_STEPS } = await import("./sample-run.js");
      if (opts.demo) return void (await replayUpdates(sampleRun(SAMPLE_TOTAL_STEPS), opts));
      if (opts.replay) return void (await replayFile(opts.replay, opts));
      await attach(opts);
    });
}

/** Follows a live run until the user detaches (the run goes on), stops it, or it ends. */
async function attach(opts: DashboardCommandOptions): Promise<DashboardExit> {
  const { connectClient, readClusterState, resolveRun } = await import("../runtime/run-state.js");
  const { connectNats } = await import("../runtime/nats.js");
  const { readCredentials } = await import("../runtime/nats-server.js");
  const { NatsDashboardSource } = await import("./dashboard-source.js");
  let nc: NatsConnection;
  let run: string;
  if (opts.nats) {
    if (!opts.creds) throw new UserError("dashboard --nats needs --creds: the run's creds/client.json, copied from the host that ran `cluster up`");
    const creds = readCredentials(opts.creds);
    run = opts.run ?? creds.run;
    nc = await connectNats({ url: opts.nats, creds, name: `${run}/dashboard-${process.pid}`, timeoutMs: 3000 });
  } else {
    run = resolveRun(opts.run);
    const state = readClusterState(run)!;
    if (state.state !== "up") throw new UserError(`run "${run}" is down: start it with \`aze-run cluster up --run ${run}\``);
    nc = await connectClient(state);
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  try {
    const { runDashboard } = await import("./dashboard.js"); // Ink and React: loaded by the commands that draw
    return await runDashboard(new NatsDashboardSource(nc, run), { plain: opts.plain, signal: stop.signal });
  } finally {
    process.off("SIGINT", onSignal);
    await nc.close().catch(() => undefined);
  }
}

function positiveRate(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`--rate must be a positive number, got "${value}".`);
  return n;
}

/** The latest wall time an update mentions (-Infinity for none): a replay's clock, so ages and ETA read as they did. */
function timeOf(u: DashboardUpdate): number {
  if (u.kind === "run") return u.run.startedAt;
  if (u.kind === "event") return u.event.time;
  return u.kind === "actors" ? Math.max(...u.actors.map((a) => a.lastHeartbeat)) : Number.NEGATIVE_INFINITY;
}

/** Reads a metrics.jsonl file and replays it; a bad line is a UserError naming file and line. */
export async function replayFile(file: string, opts: ReplayOptions): Promise<DashboardExit> {
  const { parseUpdates } = await import("./memory-source.js");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; give the metrics.jsonl of a run, e.g. runs/demo/metrics.jsonl`,
    );
  }
  return replayUpdates(parseUpdates(text, file), opts);
}

/**
 * Plays `updates` at `rate` steps per second and keeps the last picture until the user
 * presses q (plain output ends with the run). Controls are refused: a recording cannot be steered.
 */
async function replayUpdates(updates: DashboardUpdate[], opts: ReplayOptions): Promise<DashboardExit> {
  updates = [...updates];
  if (!updates.some((u) => u.kind === "end")) updates.push({ kind: "end", reason: "replay over" });
  const { MemorySource } = await import("./memory-source.js");
  const source = new MemorySource(() => {
    throw new Error("this is a replay; there is no cluster to steer");
  });
  let clock = 0;
  const abort = new AbortController();
  const play = (async () => {
    for (const u of updates) {
      if (abort.signal.aborted) return;
      clock = Math.max(clock, timeOf(u));
      source.push(u);
      if (u.kind === "step") await new Promise((r) => setTimeout(r, 1000 / opts.rate));
    }
  })();
  const onInterrupt = () => abort.abort();
  process.once("SIGINT", onInterrupt);
  const { runDashboard } = await import("./dashboard.js");
  try {
    return await runDashboard(source, {
      stdout: opts.stdout,
      plain: opts.plain,
      now: () => clock,
      exitOnEnd: false,
      signal: abort.signal,
    });
  } finally {
    abort.abort();
    process.off("SIGINT", onInterrupt);
    await play;
  }
}
