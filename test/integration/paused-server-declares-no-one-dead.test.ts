// A nats-server paused with SIGSTOP keeps every TCP connection open: no client sees a
// disconnect, and when it resumes the coordinator gets every heartbeat at once, late. That
// silence is the server's: no actor is declared dead, nothing rolls back, and the run ends
// with the parameters of `train --local`. With its node agent gone, `cluster scale` says
// that it placed nothing.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeMessage } from "../../runtime/codec.js";
import { clusterDown, clusterUp, isAlive } from "../../runtime/cluster.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import type { StepMetrics } from "../../actors/protocol.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

const steps = 12;

describe("a paused nats-server", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  const natsPids: number[] = [];

  beforeAll(() => {
    config = writeTinyConfig(cwd, { steps, every: 4 });
  });
  afterAll(async () => {
    // A stopped server cannot answer `cluster down`: wake it first.
    for (const pid of natsPids) if (isAlive(pid)) process.kill(pid, "SIGCONT");
    for (const run of ["paused", "no-agent"]) await clusterDown({ run, runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  const coordinatorLog = (run: string) =>
    readFileSync(join(runsRoot, run, "logs", "coordinator.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { event?: string; target?: string; [k: string]: unknown });

  it("declares no one dead and keeps the bits after SIGSTOP for 10 s", async () => {
    const local = await runCli(["train", "--local", "--config", config, "--run", "reference"], cwd, 180_000);
    expect(local.code, local.stderr).toBe(0);
    const reference = checkpointParamBytes(lastCheckpoint(join(runsRoot, "reference")));

    const state = await clusterUp({ run: "paused", config, compute: 2, detach: true, runsRoot, steps });
    natsPids.push(state.natsPid!);
    const nc = await connectNats({ url: state.natsUrl, creds: readCredentials(join(state.credsDir!, "coordinator.json")), name: "paused/test" });
    const metrics: StepMetrics[] = [];
    const events: { type: string; message: string; end?: string }[] = [];
    nc.subscribe(subjects("paused").metrics, { callback: (_e, m) => void metrics.push(decodeMessage(m.data)) });
    nc.subscribe(subjects("paused").events, { callback: (_e, m) => void events.push(decodeMessage(m.data)) });
    await nc.flush();

    await waitFor("step 2 of the run", () => metrics.some((m) => m.step >= 2) || undefined, 180_000);
    expect(Math.max(...metrics.map((m) => m.step))).toBeLessThan(steps); // the pause lands mid-run
    process.kill(state.natsPid!, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 10_000));
    process.kill(state.natsPid!, "SIGCONT");

    const end = await waitFor("the run to finish", () => events.find((e) => e.end), 240_000);
    expect(end.end).toBe("finished");
    await nc.close();
    await clusterDown({ run: "paused", runsRoot });
    const said = coordinatorLog("paused").map((l) => String(l.event ?? ""));
    expect(said.filter((m) => m === "event-death" || m === "event-rollback")).toEqual([]);
    expect(said).toContain("deadlines-restarted"); // the coordinator did see the silence
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, "paused"))).equals(reference)).toBe(true);
  }, 600_000);

  it("says when `cluster scale` placed nothing because the node agent is gone", async () => {
    const state = await clusterUp({ run: "no-agent", empty: true, compute: 1, detach: true, runsRoot });
    natsPids.push(state.natsPid!);
    process.kill(state.agentPid!, "SIGKILL");
    await waitFor(
      "the coordinator to see the node agent dead",
      () => coordinatorLog("no-agent").some((l) => l.event === "event-death" && l.target === state.agentId) || undefined,
      60_000,
    );
    const scaled = await runCli(["cluster", "scale", "--run", "no-agent", "--compute", "3"], cwd);
    expect(scaled.code, scaled.stderr).toBe(0);
    const lines = scaled.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/no node agent/);
  }, 120_000);
});
