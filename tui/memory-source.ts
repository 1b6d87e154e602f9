// An in-memory DashboardSource: updates pushed by code, controls recorded and answered.
//
// Owns: a complete, real implementation of the DashboardSource contract without NATS; the
// tests drive the dashboard through it, and a metrics.jsonl file replays through it.
// Never: invents updates; what a control does to the "cluster" is the `respond` callback's job.
import { UserError } from "../runtime/errors.js";
import type { Control } from "../actors/protocol.js";
import type { DashboardSource, DashboardUpdate } from "./types.js";

const UPDATE_KINDS = new Set(["run", "step", "actors", "event", "end"]);

export class MemorySource implements DashboardSource {
  /** Every control received, in order. */
  readonly controls: Control[] = [];
  private readonly history: DashboardUpdate[] = [];
  private readonly listeners = new Set<(u: DashboardUpdate) => void>();

  /**
   * @param respond called for each control; it may push updates (a new actors snapshot after
   *   a scale) and may throw to refuse the control, as a real cluster would.
   */
  constructor(private readonly respond?: (c: Control, source: MemorySource) => void | Promise<void>) {}

  /** Delivers updates to every subscriber now, and keeps them for later subscribers. */
  push(...updates: DashboardUpdate[]): void {
    for (const u of updates) {
      this.history.push(u);
      for (const listener of this.listeners) listener(u);
    }
  }

  subscribe(listener: (update: DashboardUpdate) => void): () => void {
    // A late subscriber sees the run from the start, like one attaching to a live cluster
    // gets the run info and the latest snapshot first.
    for (const u of this.history) listener(u);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async control(c: Control): Promise<void> {
    this.controls.push(c);
    await this.respond?.(c, this);
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}

/**
 * Parses a metrics.jsonl file: one DashboardUpdate as JSON per line, blank lines skipped.
 * `file` only names the file in errors.
 */
export function parseUpdates(text: string, file: string): DashboardUpdate[] {
  const updates: DashboardUpdate[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new UserError(`${file}:${i + 1}: not JSON (${(err as Error).message}); each line must be one dashboard update`);
    }
    const kind = (value as { kind?: unknown } | null)?.kind;
    if (typeof kind !== "string" || !UPDATE_KINDS.has(kind)) {
      throw new UserError(`${file}:${i + 1}: "kind" must be one of ${[...UPDATE_KINDS].join(", ")}, got ${JSON.stringify(kind)}`);
    }
    updates.push(value as DashboardUpdate);
  });
  return updates;
}
