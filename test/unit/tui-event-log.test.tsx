// The event log shows the newest events that fit, oldest at the top and newest last.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { describe, expect, it } from "vitest";
import { EventLog, eventLine } from "../../tui/event-log.js";
import { SAMPLE_JOIN_STEP, sampleRun } from "../../tui/sample-run.js";
import { initialState, reduce } from "../../tui/state.js";

function log(step: number, height: number, width = 80): string[] {
  const state = sampleRun(step).reduce(reduce, initialState);
  const app = render(<EventLog events={state.events} width={width} height={height} />);
  const lines = plain(app.lastFrame() ?? "").split("\n");
  app.unmount();
  return lines;
}

describe("event log", () => {
  it("formats an event as UTC time, type, actor and message", () => {
    const line = eventLine({ time: Date.UTC(2026, 0, 2, 3, 4, 5), type: "death", actor: "compute-1", message: "gone" });
    expect(line).toBe("03:04:05 death      compute-1: gone");
  });

  it("shows the newest events last, cut to its height", () => {
    const lines = log(SAMPLE_JOIN_STEP + 1, 4, 100);
    expect(lines[0]).toMatch(/^─ events \(10\) ─+$/);
    expect(lines.slice(1).map((l) => l.slice(9))).toEqual([
      "info       groups 2-3 reassigned to compute-0",
      "rejected   shard-0: gradient for step 119 group 2 from compute-1: stale step",
      "scale      compute 1 → 2",
      "join       compute-2: joined (wasm)",
    ]);
  });

  it("keeps lines it already showed unchanged as new events arrive", () => {
    const before = log(119, 20).slice(1);
    const after = log(125, 20).slice(1);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((l) => l.split(/\s+/)[1])).toEqual(["death", "info"]);
  });

  it("cuts long messages at the width", () => {
    const state = reduce(initialState, { kind: "event", event: { time: 0, type: "info", message: "x".repeat(200) } });
    const app = render(<EventLog events={state.events} width={60} height={3} />);
    const lines = plain(app.lastFrame() ?? "").split("\n");
    app.unmount();
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(60);
  });
});
