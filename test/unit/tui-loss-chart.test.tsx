// The loss chart draws the whole run in block characters, downsampled to the width, with
// the latest, smoothed and best loss in its heading.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { describe, expect, it } from "vitest";
import { blockChart, LossChart } from "../../tui/loss-chart.js";
import { sampleRun } from "../../tui/sample-run.js";
import { initialState, reduce } from "../../tui/state.js";

const LEVELS = " ▁▂▃▄▅▆▇█";
/** Height of a column in eighths, read back from the drawn rows. */
const columnHeight = (rows: string[], col: number) => rows.reduce((h, row) => h + LEVELS.indexOf(row[col] ?? " "), 0);

describe("loss chart", () => {
  it("draws a falling curve from full height to the bottom eighth", () => {
    const rows = blockChart([8, 7, 6, 5, 4], 4);
    expect(rows).toHaveLength(4);
    const heights = [0, 1, 2, 3, 4].map((c) => columnHeight(rows, c));
    expect(heights).toEqual([32, 24, 16, 8, 1]);
  });

  it("keeps a flat curve visible at mid height", () => {
    const rows = blockChart([3, 3, 3], 2);
    expect([0, 1, 2].map((c) => columnHeight(rows, c))).toEqual([8, 8, 8]);
  });

  it("shows the whole run downsampled to the width, with loss, EMA and best in the heading", () => {
    const state = sampleRun(300).reduce(reduce, initialState);
    const width = 60;
    const app = render(<LossChart state={state} width={width} height={4} />);
    const lines = plain(app.lastFrame() ?? "").split("\n");
    app.unmount();
    expect(lines).toHaveLength(5);
    expect(lines[0]).toContain(`loss ${state.last!.loss.toFixed(3)}`);
    expect(lines[0]).toContain(`ema ${state.lossEma!.toFixed(3)}`);
    expect(lines[0]).toContain(`best ${state.minLoss!.loss.toFixed(3)} @${state.minLoss!.step}`);
    const chart = lines.slice(1).map((l) => l.slice(7));
    // 300 steps into 53 columns: every column is drawn, the early ones high and the late ones low.
    expect(Math.max(...chart.map((r) => r.trimEnd().length))).toBe(width - 7);
    const first = columnHeight(chart, 0);
    const last = columnHeight(chart, width - 8);
    expect(first).toBe(32);
    expect(last).toBeLessThan(8);
    // The axis labels are the extremes of the drawn columns.
    expect(lines[1]!.slice(0, 6).trim()).toMatch(/^7\.\d{3}$/);
    expect(lines[4]!.slice(0, 6).trim()).toMatch(/^5\.\d{3}$/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(width);
  });

  it("draws an empty chart before the first step", () => {
    const app = render(<LossChart state={initialState} width={40} height={3} />);
    const lines = plain(app.lastFrame() ?? "").split("\n");
    app.unmount();
    expect(lines[0]).toContain("loss –  ema –");
    expect(lines.slice(1).join("").trim()).toBe("");
  });
});
