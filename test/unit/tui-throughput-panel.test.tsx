// The throughput line shows tokens per second, smoothed rate, step time and MFU when a peak is known.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { describe, expect, it } from "vitest";
import { sampleRun, sampleRunInfo } from "../../tui/sample-run.js";
import { initialState, reduce, type DashboardState } from "../../tui/state.js";
import { ThroughputPanel } from "../../tui/throughput-panel.js";

function line(state: DashboardState, width = 80): string {
  const app = render(<ThroughputPanel state={state} width={width} />);
  const text = plain(app.lastFrame() ?? "");
  app.unmount();
  return text;
}

describe("throughput panel", () => {
  it("says no steps yet before the first step", () => {
    expect(line(initialState)).toBe("speed no steps yet");
  });

  it("shows the step's tokens/s, the smoothed rate, step time and MFU", () => {
    const state = sampleRun(60).reduce(reduce, initialState);
    const m = state.last!;
    const text = line(state);
    expect(text).toContain(`${(m.tokensPerSec / 1000).toFixed(2).replace(/0$/, "")}k tok/s`);
    expect(text).toContain(`step ${Math.round(m.stepMs)}ms`);
    const mfu = (m.tokensPerSec * m.flopsPerToken!) / (sampleRunInfo.backendPeakFlops! * m.actors.length);
    expect(text).toContain(`MFU ${Math.round(mfu * 100)}%`);
  });

  it("leaves MFU out when the backend reports no peak", () => {
    const updates = sampleRun(60).map((u) => (u.kind === "run" ? { ...u, run: { ...u.run, backendPeakFlops: undefined } } : u));
    const text = line(updates.reduce(reduce, initialState));
    expect(text).toContain("tok/s");
    expect(text).not.toContain("MFU");
  });

  it("reflects a slower step when a compute actor dies", () => {
    const before = sampleRun(119).reduce(reduce, initialState);
    const after = sampleRun(125).reduce(reduce, initialState);
    expect(after.last!.tokensPerSec).toBeLessThan(before.last!.tokensPerSec);
    expect(line(after)).toMatch(/^speed 3\.\d+k tok\/s/);
    expect(line(before)).toMatch(/^speed 5\.\d+k tok\/s/);
  });
});
