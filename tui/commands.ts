// CLI commands of the dashboard: `aze-run dashboard --replay runs/<name>/metrics.jsonl`
// and `aze-run dashboard --demo` (the built-in sample run, to try the dashboard without a cluster).
//
// Owns: replaying a recorded run through the dashboard at a chosen pace.
// Never: connects to a live cluster; attaching over NATS is the runtime's DashboardSource.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { UserError } from "../runtime/errors.js";
import { runDashboard, type DashboardExit } from "./dashboard.js";
import { MemorySource, parseUpdates } from "./memory-source.js";
import { sampleRun, SAMPLE_TOTAL_STEPS } from "./sample-run.js";
import type { DashboardUpdate } from "./types.js";

export function registerDashboardCommands(program: Command): void {
  program
    .command("dashboard")
    .description("watch a run in the terminal; --replay plays a recorded metrics.jsonl")
    .option("--replay <file>", "a metrics.jsonl file: one dashboard update per line")
    .option("--demo", "play the built-in sample run (a death, a join, checkpoints); needs no cluster")
    .option("--rate <steps>", "steps shown per second", positive("--rate"), 20)
    .option("--plain", "one line per step even on a terminal")
    .action(async (opts: { replay?: string; demo?: boolean; rate: number; plain?: boolean }) => {
      if (opts.demo) return void (await replayUpdates(sampleRun(SAMPLE_TOTAL_STEPS), opts));
      if (!opts.replay) throw new UserError("dashboard: give --replay runs/<name>/metrics.jsonl or --demo");
      await replayFile(opts.replay, opts);
    });
}

function positive(name: string) {
  return (value: string) => {
    const n = Number(value);
    if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a positive number, got "${value}".`);
    return n;
  };
}

/** The latest wall time an update mentions: a replay's clock, so ages and ETA read as they did. */
function timeOf(u: DashboardUpdate): number | undefined {
  switch (u.kind) {
    case "run":
      return u.run.startedAt;
    case "event":
      return u.event.time;
    case "actors":
      return u.actors.reduce<number | undefined>((t, a) => Math.max(t ?? 0, a.lastHeartbeat), undefined);
    default:
      return undefined;
  }
}

/** Reads a metrics.jsonl file and replays it; a bad line is a UserError naming file and line. */
export async function replayFile(
  file: string,
  opts: { rate: number; plain?: boolean; stdout?: NodeJS.WriteStream },
): Promise<DashboardExit> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; give the metrics.jsonl of a run, e.g. runs/demo/metrics.jsonl`);
  }
  return replayUpdates(parseUpdates(text, file), opts);
}

/**
 * Plays `updates` at `rate` steps per second and keeps the last picture until the user
 * presses q (plain output ends with the run). Controls are refused: a recording cannot be steered.
 */
export async function replayUpdates(
  updates: DashboardUpdate[],
  opts: { rate: number; plain?: boolean; stdout?: NodeJS.WriteStream },
): Promise<DashboardExit> {
  updates = [...updates];
  if (!updates.some((u) => u.kind === "end")) updates.push({ kind: "end", reason: "replay over" });
  const source = new MemorySource(() => {
    throw new Error("this is a replay; there is no cluster to steer");
  });
  let clock = 0;
  const abort = new AbortController();
  const play = (async () => {
    for (const u of updates) {
      if (abort.signal.aborted) return;
      clock = Math.max(clock, timeOf(u) ?? clock);
      source.push(u);
      if (u.kind === "step") await new Promise((r) => setTimeout(r, 1000 / opts.rate));
    }
  })();
  const onInterrupt = () => abort.abort();
  process.once("SIGINT", onInterrupt);
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
