// The plain fallback: one line per step and one per event, for logs and pipes.
//
// Owns: the dashboard's output when stdout is not a terminal (CI, `| tee`, nohup).
// Never: moves the cursor or colours text; every line is final once written.
import { eventLine } from "./event-log.js";
import { formatCount, formatLr } from "../runtime/format.js";
import { runTitle } from "./run-panel.js";
import type { DashboardSource, DashboardUpdate } from "./types.js";

/** The line for one update, or undefined for updates a log does not need (actors snapshots). */
export function plainLine(u: DashboardUpdate, totalSteps: number | undefined): string | undefined {
  switch (u.kind) {
    case "run":
      return `run ${runTitle(u.run)} · ${u.run.totalSteps} steps`;
    case "step": {
      const m = u.metrics;
      return (
        `step ${m.step}/${totalSteps ?? "?"} loss ${m.loss.toFixed(2)} lr ${formatLr(m.lr)}` +
        ` | ${formatCount(m.tokensPerSec)} tok/s | ${m.actors.length} compute`
      );
    }
    case "event":
      return eventLine(u.event);
    case "end":
      return `run over: ${u.reason}`;
    case "actors":
      return undefined;
  }
}

/**
 * Writes lines until the run ends or `signal` aborts (the user pressed Ctrl+C; training goes
 * on); resolves with which one happened.
 */
export function runPlain(
  source: DashboardSource,
  { out, signal }: { out: { write(chunk: string): unknown }; signal?: AbortSignal },
): Promise<"end" | "detach"> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve("detach");
    let totalSteps: number | undefined;
    let done = false;
    const finish = (how: "end" | "detach") => {
      if (done) return;
      done = true;
      unsubscribe();
      signal?.removeEventListener("abort", onAbort);
      resolve(how);
    };
    const onAbort = () => finish("detach");
    signal?.addEventListener("abort", onAbort);
    const unsubscribe = source.subscribe((u) => {
      if (done) return;
      if (u.kind === "run") totalSteps = u.run.totalSteps;
      const line = plainLine(u, totalSteps);
      if (line !== undefined) out.write(`${line}\n`);
      // Deferred: a replayed end arrives inside subscribe(), before `unsubscribe` exists.
      if (u.kind === "end") queueMicrotask(() => finish("end"));
    });
  });
}
