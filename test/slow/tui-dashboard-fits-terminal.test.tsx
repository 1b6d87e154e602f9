// The dashboard fits 80×24 and larger terminals at every point of a run (one line short of
// the height, since Ink clears the whole screen when output reaches the last row), and it
// redraws at a steady rate however fast updates arrive.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { Dashboard, layout } from "../../tui/dashboard.js";
import { MemorySource } from "../../tui/memory-source.js";
import { SAMPLE_DEATH_STEP, SAMPLE_JOIN_STEP, sampleRun, sampleTimeAt } from "../../tui/sample-run.js";

const apps: { unmount(): void }[] = [];
afterEach(() => {
  for (const app of apps.splice(0)) app.unmount();
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("dashboard size and redraw", () => {
  it("splits any terminal so the panels total one line less than its height", () => {
    for (const rows of [24, 30, 50, 80]) {
      for (const actors of [0, 3, 6, 40]) {
        const l = layout(80, rows, actors);
        const lines = 8 + l.chartRows + l.actorRows + l.eventRows;
        expect(lines).toBe(rows - 1);
        expect(l.chartRows).toBeGreaterThanOrEqual(3);
        expect(l.eventRows).toBeGreaterThanOrEqual(2);
      }
    }
  });

  for (const [columns, rows] of [
    [80, 24],
    [100, 30],
    [160, 50],
  ] as const) {
    it(`fits ${columns}×${rows} before the run, mid-run, after a death and a join, and at the end`, async () => {
      for (const step of [0, 60, SAMPLE_DEATH_STEP + 3, SAMPLE_JOIN_STEP + 3, 300]) {
        const source = new MemorySource();
        source.push(...(step === 0 ? [] : sampleRun(step)));
        const app = render(<Dashboard source={source} now={() => sampleTimeAt(step)} refreshMs={20} columns={columns} rows={rows} exitOnEnd={false} />);
        apps.push(app);
        const text = () => plain(app.lastFrame() ?? "");
        await until(() => text().includes(step === 0 ? "waiting for the run" : `step ${step}/300`), `step ${step}`);
        const lines = text().split("\n");
        expect(lines.length).toBeLessThanOrEqual(rows - 1);
        for (const line of lines) expect(line.length).toBeLessThanOrEqual(columns);
        expect(lines.at(-1)).toContain(step === 300 ? " q  exit" : " q  detach");
        app.unmount();
      }
    });
  }

  it("redraws at its refresh rate, not once per update", async () => {
    const source = new MemorySource();
    const app = render(<Dashboard source={source} refreshMs={100} columns={80} rows={24} exitOnEnd={false} />);
    apps.push(app);
    await new Promise((r) => setTimeout(r, 150));
    const before = app.frames.length;
    const started = Date.now();
    const updates = sampleRun(300);
    // 300 steps and their events within about 300 ms, in small batches.
    for (let i = 0; i < updates.length; i += 20) {
      source.push(...updates.slice(i, i + 20));
      await new Promise((r) => setTimeout(r, 12));
    }
    await until(() => plain(app.lastFrame() ?? "").includes("step 300/300"), "the last step");
    const redraws = app.frames.length - before;
    expect(redraws).toBeGreaterThan(0);
    // One redraw per 100 ms tick at most (plus the first), however slow the machine: far
    // below the ~370 updates pushed.
    expect(redraws).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 100) + 2);
    expect(redraws).toBeLessThan(updates.length / 4);
  });

  it("redraws about once a second while nothing arrives, and at once when something does", async () => {
    const source = new MemorySource();
    source.push(...sampleRun(10));
    const app = render(<Dashboard source={source} refreshMs={20} columns={80} rows={24} exitOnEnd={false} />);
    apps.push(app);
    await until(() => plain(app.lastFrame() ?? "").includes("step 10/300"), "step 10");
    const before = app.frames.length;
    await new Promise((r) => setTimeout(r, 1300));
    // 65 ticks of 20 ms passed; only the once-a-second clock redraw (or two) happened.
    expect(app.frames.length - before).toBeLessThanOrEqual(2);
    source.push(...sampleRun(11).slice(-2));
    await until(() => plain(app.lastFrame() ?? "").includes("step 11/300"), "step 11");
  });

  it("leaves on its own when the run ends, after drawing the end", async () => {
    const source = new MemorySource();
    source.push(...sampleRun(300));
    const exits: string[] = [];
    const app = render(<Dashboard source={source} refreshMs={20} columns={80} rows={24} onExit={(h) => exits.push(h)} />);
    apps.push(app);
    await until(() => exits.length > 0, "the exit");
    expect(exits).toEqual(["end"]);
    // Ink may blank the last frame as it unmounts: the end must have been drawn before that.
    expect(app.frames.some((f) => plain(f).includes("● finished"))).toBe(true);
  });
});
