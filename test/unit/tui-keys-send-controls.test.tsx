// Key presses on the dashboard send the right Control to the source, and the picture
// follows the cluster's answer: `+` asks for one more compute actor and the new actor
// appears in the table; `p` toggles pause; `c` checkpoints; `q` detaches; `Q` stops after
// a checkpoint; a refused control shows up in the event log.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { Dashboard, type DashboardExit } from "../../tui/dashboard.js";
import { MemorySource } from "../../tui/memory-source.js";
import { sampleRun, sampleTimeAt } from "../../tui/sample-run.js";
import type { ActorStatus, Control } from "../../actors/protocol.js";

const NOW = sampleTimeAt(60) + 300;
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

/** A cluster stand-in: a scale answers with a snapshot holding the asked number of compute actors. */
function cluster(refuse?: Control["type"]) {
  let actors = (sampleRun(60).findLast((u) => u.kind === "actors") as { actors: ActorStatus[] }).actors;
  return new MemorySource((c, source) => {
    if (c.type === refuse) throw new Error("the coordinator is not answering");
    if (c.type === "scale") {
      const others = actors.filter((a) => a.kind !== "compute");
      const compute = Array.from(
        { length: c.compute },
        (_, i): ActorStatus => ({
          kind: "compute",
          id: `compute-${i}`,
          pid: 5000 + i,
          host: "laptop",
          backend: "wasm",
          state: i < 2 ? "working" : "starting",
          lastHeartbeat: NOW,
        }),
      );
      actors = [...others, ...compute];
      source.push({ kind: "actors", actors }, { kind: "event", event: { time: NOW, type: "scale", message: `compute → ${c.compute}` } });
    }
  });
}

function start(source: MemorySource) {
  source.push(...sampleRun(60));
  const exits: DashboardExit[] = [];
  const app = render(<Dashboard source={source} now={() => NOW} refreshMs={20} columns={80} rows={24} onExit={(h) => exits.push(h)} />);
  apps.push(app);
  const text = () => plain(app.lastFrame() ?? "");
  return { app, text, exits };
}

describe("dashboard keys", () => {
  it("`+` scales compute up by one and the new actor appears in the table", async () => {
    const source = cluster();
    const { app, text } = start(source);
    await until(() => text().includes("step 60/300"), "the first frame");
    expect(text()).not.toContain("compute-2");
    app.stdin.write("+");
    await until(() => source.controls.length === 1, "the control");
    expect(source.controls).toEqual([{ type: "scale", compute: 3 }]);
    await until(() => /compute\s+compute-2\s+laptop\s+wasm\s+starting/.test(text()), "compute-2 in the table");
    expect(text()).toContain("compute (3)");
    app.stdin.write("-");
    await until(() => source.controls.length === 2, "the second control");
    expect(source.controls[1]).toEqual({ type: "scale", compute: 2 });
    await until(() => !text().includes("compute-2"), "compute-2 to leave the table");
  });

  it("`p` pauses and resumes, `c` checkpoints", async () => {
    const source = cluster();
    const { app, text } = start(source);
    await until(() => text().includes("● running"), "the first frame");
    app.stdin.write("p");
    await until(() => text().includes("● paused"), "paused");
    expect(text()).toContain(" p  resume");
    app.stdin.write("p");
    await until(() => text().includes("● running"), "running again");
    app.stdin.write("c");
    await until(() => source.controls.length === 3, "three controls");
    expect(source.controls).toEqual([{ type: "pause" }, { type: "resume" }, { type: "checkpoint" }]);
    await until(() => text().includes("info       asked: checkpoint"), "the request in the log");
  });

  it("`q` detaches without sending anything", async () => {
    const source = cluster();
    const { app, text, exits } = start(source);
    await until(() => text().includes("step 60/300"), "the first frame");
    expect(source.subscribers).toBe(1);
    app.stdin.write("q");
    await until(() => exits.length === 1, "the exit");
    expect(exits).toEqual(["detach"]);
    expect(source.controls).toEqual([]);
    await until(() => source.subscribers === 0, "the unsubscribe");
  });

  it("`Q` stops the run after a checkpoint, then leaves", async () => {
    const source = cluster();
    const { app, text, exits } = start(source);
    await until(() => text().includes("step 60/300"), "the first frame");
    app.stdin.write("Q");
    await until(() => exits.length === 1, "the exit");
    expect(source.controls).toEqual([{ type: "stop", checkpoint: true }]);
    expect(exits).toEqual(["stop"]);
  });

  it("a refused control is logged and the dashboard stays", async () => {
    const source = cluster("stop");
    const { app, text, exits } = start(source);
    await until(() => text().includes("step 60/300"), "the first frame");
    app.stdin.write("Q");
    await until(() => text().includes("checkpoint and stop failed: the coordinator is not answering"), "the error");
    expect(exits).toEqual([]);
  });

  it("steers nothing once the run is over; q still leaves", async () => {
    const source = cluster();
    source.push(...sampleRun(60), { kind: "end", reason: "stopped" });
    const exits: DashboardExit[] = [];
    const app = render(<Dashboard source={source} now={() => NOW} refreshMs={20} columns={80} rows={24} exitOnEnd={false} onExit={(h) => exits.push(h)} />);
    apps.push(app);
    const text = () => plain(app.lastFrame() ?? "");
    await until(() => text().includes("● stopped"), "the end");
    expect(text().split("\n").at(-1)).toBe(" q  exit");
    for (const key of ["+", "-", "c", "p", "Q"]) app.stdin.write(key);
    app.stdin.write("q");
    await until(() => exits.length === 1, "the exit");
    expect(source.controls).toEqual([]);
    expect(exits).toEqual(["detach"]);
  });
});
