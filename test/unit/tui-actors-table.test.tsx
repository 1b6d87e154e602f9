// The actors table follows the coordinator's snapshots: a compute actor dies (its row turns
// dead and its groups move to the survivor), then a new one joins in its place.
import { render } from "ink-testing-library";
import { stripVTControlCharacters as plain } from "node:util";
import { describe, expect, it } from "vitest";
import { ActorsTable } from "../../tui/actors-table.js";
import { SAMPLE_DEATH_STEP, SAMPLE_JOIN_STEP, sampleRun, sampleTimeAt } from "../../tui/sample-run.js";
import { initialState, reduce } from "../../tui/state.js";
import type { ActorStatus } from "../../actors/protocol.js";

function table(step: number, width = 80, maxRows = 10, now = sampleTimeAt(step) + 300): string[] {
  const state = sampleRun(step).reduce(reduce, initialState);
  const app = render(<ActorsTable state={state} now={now} width={width} maxRows={maxRows} />);
  const lines = plain(app.lastFrame() ?? "").split("\n");
  app.unmount();
  return lines;
}

/** Cells of the row whose id column is `id`. */
function row(lines: string[], id: string): string[] | undefined {
  return lines.map((l) => l.split(/\s+/).filter(Boolean)).find((cells) => cells[1] === id);
}

describe("actors table", () => {
  it("lists every actor with kind, host, backend, state, groups, step time, heartbeat age and memory", () => {
    const lines = table(50);
    expect(lines[0]!.split(/\s+/)).toEqual(["kind", "id", "host", "bknd", "state", "groups", "step", "beat", "mem"]);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[1])).toEqual(["coordinator", "shard-0", "loader-0", "compute-0", "compute-1", "agent-laptop"]);
    expect(row(lines, "compute-0")).toEqual(["compute", "compute-0", "laptop", "wasm", "working", "0-1", expect.stringMatching(/^\d+ms$/), "0.7s", "96MB"]);
    expect(row(lines, "compute-1")?.[5]).toBe("2-3");
    expect(row(lines, "shard-0")).toEqual(["param-shard", "shard-0", "laptop", "working", "0.7s", "74MB"]);
  });

  it("marks a dead compute actor and shows its groups taken over by the survivor", () => {
    const lines = table(SAMPLE_DEATH_STEP + 5);
    expect(row(lines, "compute-1")).toEqual(["compute", "compute-1", "laptop", "wasm", "dead", "–", "96MB"]);
    expect(row(lines, "compute-0")?.slice(4, 6)).toEqual(["working", "0-3"]);
  });

  it("shows a joining compute actor in the dead one's place", () => {
    const lines = table(SAMPLE_JOIN_STEP + 5);
    expect(row(lines, "compute-1")).toBeUndefined();
    expect(row(lines, "compute-2")?.slice(0, 6)).toEqual(["compute", "compute-2", "laptop", "wasm", "working", "2-3"]);
    expect(row(lines, "compute-0")?.[5]).toBe("0-1");
  });

  it("shows heartbeat ages growing with the clock", () => {
    const lines = table(50, 80, 10, sampleTimeAt(50) + 12_400);
    expect(row(lines, "coordinator")?.at(-2)).toBe("12s");
  });

  it("collapses actors that do not fit into one line", () => {
    const lines = table(50, 80, 4);
    expect(lines).toHaveLength(5);
    expect(lines.at(-1)).toBe("+3 more actors");
  });

  it("cuts long names so every line fits the width", () => {
    const long: ActorStatus = {
      kind: "compute",
      id: "compute-with-a-very-long-generated-name-7f3a",
      pid: 9,
      host: "gpu-node-17.cluster.internal.example",
      backend: "cuda",
      state: "starting",
      lastHeartbeat: 0,
    };
    const state = reduce(initialState, { kind: "actors", actors: [long] });
    for (const width of [80, 120]) {
      const app = render(<ActorsTable state={state} now={100} width={width} maxRows={5} />);
      const lines = plain(app.lastFrame() ?? "").split("\n");
      app.unmount();
      for (const l of lines) expect(l.length).toBeLessThanOrEqual(width);
      expect(lines[1]).toContain("…");
    }
  });
});
