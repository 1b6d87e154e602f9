// The communication line shows NATS bytes per second, the share of the step spent waiting,
// and the compute/comm/wait split as a bar.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CommPanel, timeSplit } from "../../tui/comm-panel.js";
import { sampleRun } from "../../tui/sample-run.js";
import { initialState, reduce } from "../../tui/state.js";

describe("comm panel", () => {
  it("splits a bar in proportion to compute, comm and wait, filling its width", () => {
    expect(timeSplit(150, 30, 20, 20)).toEqual([15, 3, 2]);
    expect(timeSplit(0, 0, 0, 20)).toEqual([0, 0, 0]);
    fc.assert(
      fc.property(fc.nat(10_000), fc.nat(10_000), fc.nat(10_000), fc.integer({ min: 1, max: 60 }), (a, b, c, w) => {
        const cells = timeSplit(a, b, c, w);
        expect(cells.every((x) => x >= 0)).toBe(true);
        if (a + b + c > 0) expect(cells[0] + cells[1] + cells[2]).toBe(w);
      }),
    );
  });

  it("shows bytes per second and the waiting share of the last step", () => {
    const state = sampleRun(40).reduce(reduce, initialState);
    const m = state.last!;
    const app = render(<CommPanel state={state} width={80} />);
    const text = plain(app.lastFrame() ?? "");
    app.unmount();
    const mbPerSec = (m.bytesSent * 1000) / m.stepMs / 1e6;
    expect(text).toContain(`comm ${Number(mbPerSec.toFixed(1))} MB/s`);
    expect(text).toContain(`wait ${((m.waitMs / m.stepMs) * 100).toFixed(1)}%`);
    const [c, n, w] = timeSplit(m.computeMs, m.commMs, m.waitMs, 30);
    expect(text).toContain(`${"█".repeat(c)}${"▒".repeat(n)}${"░".repeat(w)} █compute ▒comm ░wait`);
    expect(text.length).toBeLessThanOrEqual(80);
  });

  it("shows a dash before the first step", () => {
    const app = render(<CommPanel state={initialState} width={80} />);
    expect(plain(app.lastFrame() ?? "")).toBe("comm –");
    app.unmount();
  });
});
