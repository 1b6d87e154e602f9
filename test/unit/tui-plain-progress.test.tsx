// When stdout is not a terminal, the dashboard writes one line per step and one per event,
// and stops when the run ends or the caller aborts.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { runDashboard } from "../../tui/dashboard.js";
import { MemorySource } from "../../tui/memory-source.js";
import { plainLine, runPlain } from "../../tui/plain.js";
import { sampleRun, sampleRunInfo } from "../../tui/sample-run.js";
import type { StepMetrics } from "../../actors/protocol.js";

const metrics: StepMetrics = {
  step: 12,
  loss: 6.9149,
  lr: 0.0012,
  update: "applied",
  gradNorm: 1.3,
  tokens: 1024,
  tokensPerSec: 3412,
  stepMs: 300,
  computeMs: 250,
  commMs: 30,
  waitMs: 20,
  bytesSent: 1e6,
  actors: [
    { id: "compute-0", groups: [0, 1], stepMs: 280, tokensPerSec: 1706 },
    { id: "compute-1", groups: [2, 3], stepMs: 270, tokensPerSec: 1706 },
  ],
};

function collect(stream: PassThrough): () => string {
  let text = "";
  stream.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
}

describe("plain progress", () => {
  it("writes a step as one line", () => {
    expect(plainLine({ kind: "step", metrics }, 300)).toBe("step 12/300 loss 6.91 lr 1.2e-3 | 3.41k tok/s | 2 compute");
    expect(plainLine({ kind: "actors", actors: [] }, 300)).toBeUndefined();
  });

  it("follows a whole run to its end: run line, every step, every event, the end", async () => {
    const source = new MemorySource();
    source.push(...sampleRun(300));
    const out = new PassThrough();
    const text = collect(out);
    expect(await runPlain(source, { out })).toBe("end");
    const lines = text().trimEnd().split("\n");
    expect(lines[0]).toBe("run demo · tiny.yaml · tiny bert 232k params · 300 steps");
    expect(lines.filter((l) => l.startsWith("step ")).length).toBe(300);
    expect(lines.find((l) => l.includes(" death "))).toBe("10:00:25 death      compute-1: missed heartbeat deadline (1.5s)");
    expect(lines.at(-1)).toBe("run over: finished");
    expect(text()).not.toContain("\u001b"); // no escape codes in a log
    expect(source.subscribers).toBe(0);
  });

  it("stops following when aborted, while the run goes on", async () => {
    const source = new MemorySource();
    source.push({ kind: "run", run: sampleRunInfo });
    const out = new PassThrough();
    const text = collect(out);
    const abort = new AbortController();
    const done = runPlain(source, { out, signal: abort.signal });
    source.push({ kind: "step", metrics: { ...metrics, step: 1 } });
    abort.abort();
    expect(await done).toBe("detach");
    source.push({ kind: "step", metrics: { ...metrics, step: 2 } });
    await new Promise((r) => setImmediate(r));
    expect(
      text()
        .split("\n")
        .filter((l) => l.startsWith("step")),
    ).toEqual(["step 1/300 loss 6.91 lr 1.2e-3 | 3.41k tok/s | 2 compute"]);
    expect(source.subscribers).toBe(0);
  });

  it("is what runDashboard uses when stdout is not a terminal", async () => {
    const source = new MemorySource();
    source.push(...sampleRun(5), { kind: "end", reason: "stopped" });
    const out = new PassThrough();
    const text = collect(out);
    const how = await runDashboard(source, { stdout: out as unknown as NodeJS.WriteStream });
    expect(how).toBe("end");
    expect(text()).toContain("step 5/300 loss ");
    expect(text().trimEnd().split("\n").at(-1)).toBe("run over: stopped");
  });
});
