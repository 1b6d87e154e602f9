// The run panel names the run and model, and shows step, progress, elapsed, ETA, lr and status.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { describe, expect, it } from "vitest";
import { RunPanel } from "../../tui/run-panel.js";
import { SAMPLE_START, sampleRun, sampleTimeAt } from "../../tui/sample-run.js";
import { initialState, reduce, type DashboardState } from "../../tui/state.js";
import type { DashboardUpdate } from "../../tui/types.js";

const fold = (updates: DashboardUpdate[], from: DashboardState = initialState) => updates.reduce(reduce, from);

function frame(state: DashboardState, now: number, width = 80): string[] {
  const app = render(<RunPanel state={state} now={now} width={width} />);
  const lines = plain(app.lastFrame() ?? "").split("\n");
  app.unmount();
  return lines;
}

describe("run panel", () => {
  it("says it is waiting before the run info arrives", () => {
    const [title, progress] = frame(initialState, SAMPLE_START);
    expect(title).toContain("waiting for the run");
    expect(progress).toContain("step 0/?");
  });

  it("shows the run, model, step, elapsed time, ETA and learning rate mid-run", () => {
    const state = fold(sampleRun(150));
    const now = sampleTimeAt(150);
    const [title, progress] = frame(state, now);
    expect(title).toMatch(/^aze-run demo · tiny\.yaml · tiny bert 232k params +● running$/);
    expect(progress).toMatch(/^step 150\/300 [█▏▎▍▌▋▊▉░]+ {2}50\.0%/);
    const elapsedS = Math.floor((now - SAMPLE_START) / 1000);
    expect(progress).toContain(`elapsed ${elapsedS}s`);
    // 150 steps left at the smoothed step time.
    const eta = Math.floor((150 * state.stepMsEma!) / 1000);
    expect(progress).toContain(`ETA ${eta}s`);
    expect(state.last!.lr).toBeCloseTo(1.17e-3, 5);
    expect(progress).toMatch(/lr 1\.2e-3$/);
  });

  it("shows paused, scaling and finished states", () => {
    let state = fold(sampleRun(20));
    state = reduce(state, { kind: "event", event: { time: 0, type: "pause", message: "paused" } });
    expect(frame(state, sampleTimeAt(20))[0]).toMatch(/● paused$/);
    state = reduce(state, { kind: "event", event: { time: 0, type: "resume", message: "resumed" } });
    state = reduce(state, { kind: "control-sent", control: { type: "scale", compute: 3 }, time: 0 });
    expect(frame(state, sampleTimeAt(20))[0]).toMatch(/● scaling to 3$/);
    const done = fold(sampleRun(300));
    const [title, progress] = frame(done, sampleTimeAt(300));
    expect(title).toMatch(/● finished$/);
    expect(progress).toContain("100.0%");
    expect(progress).toContain("ETA 0s");
  });

  it("fits its width", () => {
    const state = fold(sampleRun(150));
    for (const width of [40, 80, 132]) {
      for (const line of frame(state, sampleTimeAt(150), width)) expect(line.length).toBeLessThanOrEqual(width);
    }
  });
});
