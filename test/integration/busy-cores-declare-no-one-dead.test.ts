// An actor whose main thread blocks for longer than the heartbeat deadline (a long kernel
// call, AdamW over a big slice), on a machine whose cores are all busy, is not declared dead:
// its heartbeats come from a thread of their own. Here the param-shard busy-waits 4 s (the
// deadline is 3 s) before applying two of the steps, while busy-loop processes saturate the
// cores; the run finishes with no death and no rollback, and with the bits of `train --local`.
import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replySchema, type StepMetrics } from "../../actors/protocol.js";
import { clusterDown, clusterUp } from "../../runtime/cluster.js";
import { decodeMessage } from "../../runtime/codec.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats, requestMessage } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

const steps = 6;
/** Longer than cluster.heartbeatTimeoutMs (3 s): a heartbeat sent from the main thread misses its deadline. */
const blockMs = 4000;
/** The updates the shard blocks on, counted from 0 (the 4th and 5th): after the busy loops start (see the pause below). */
const blockedSteps = [3, 4];
/** Requests to the coordinator wait long: it answers from busy cores. */
const patientMs = 60_000;

describe("busy cores and a blocked main thread", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  const busy: ChildProcess[] = [];
  const stopBusyLoops = () => {
    for (const child of busy.splice(0)) child.kill("SIGKILL");
  };

  beforeAll(() => {
    config = writeTinyConfig(cwd, { steps });
  });
  afterAll(async () => {
    stopBusyLoops();
    await clusterDown({ run: "busy", runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  it("declares no one dead, rolls nothing back, and keeps the bits", async () => {
    const local = await runCli(["train", "--local", "--config", config, "--run", "reference"], cwd, 180_000);
    expect(local.code, local.stderr).toBe(0);
    const reference = checkpointParamBytes(lastCheckpoint(join(runsRoot, "reference")));

    // The actors inherit the environment of `cluster up` (its node agent spawns them): set
    // the test hook for this call only.
    const saved = { ms: process.env.AZE_TEST_BLOCK_MS, steps: process.env.AZE_TEST_BLOCK_STEPS };
    process.env.AZE_TEST_BLOCK_MS = String(blockMs);
    process.env.AZE_TEST_BLOCK_STEPS = blockedSteps.join(",");
    let state: Awaited<ReturnType<typeof clusterUp>>;
    try {
      state = await clusterUp({ run: "busy", config, compute: 2, detach: true, runsRoot, steps });
    } finally {
      for (const [key, value] of [
        ["AZE_TEST_BLOCK_MS", saved.ms],
        ["AZE_TEST_BLOCK_STEPS", saved.steps],
      ] as const)
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
    }

    const nc = await connectNats({ url: state.natsUrl, creds: readCredentials(join(state.credsDir!, "coordinator.json")), name: "busy/test" });
    const s = subjects("busy");
    const events: { type: string; message: string; end?: string }[] = [];
    nc.subscribe(s.events, { callback: (_e, m) => void events.push(decodeMessage(m.data)) });
    // Paused after the first step, so the blocked updates come while the cores are busy
    // (the cluster itself started on idle cores: its start-up is not what this test is about).
    let paused: Promise<unknown> | undefined;
    let stepsDone = 0;
    nc.subscribe(s.metrics, {
      callback: (_e, m) => {
        stepsDone = Math.max(stepsDone, decodeMessage<StepMetrics>(m.data).step);
        if (!paused && stepsDone >= 1) paused = requestMessage(nc, s.command, { type: "pause" }, replySchema, patientMs);
      },
    });
    await nc.flush();
    await waitFor("the pause after step 1", () => paused, 180_000);
    await paused;

    // More busy loops than cores (up to 16): no core is ever idle. They run at the lowest
    // priority (nice 19) so that the suite's other test files, running beside this one, are
    // not starved into missing their own deadlines; the blocked main thread above is what
    // made heartbeats late before, and the busy cores make every thread wait for its turn.
    for (let i = 0; i <= Math.min(16, Math.max(2, availableParallelism())); i++)
      busy.push(spawn("nice", ["-n", "19", process.execPath, "-e", "for (;;) {}"], { stdio: "ignore" }));
    // The step under way when the pause came finishes: the last blocked one still lies ahead.
    expect(stepsDone).toBeLessThan(blockedSteps.at(-1)! + 1);
    await requestMessage(nc, s.command, { type: "resume" }, replySchema, patientMs);

    // Stops at the first death or rollback, so the old code fails here at once, not by a timeout.
    const first = await waitFor(
      "the run to end, or a death or rollback",
      () => events.find((e) => e.end || e.type === "death" || e.type === "rollback"),
      300_000,
    );
    stopBusyLoops();
    expect(events.filter((e) => e.type === "death" || e.type === "rollback").map((e) => e.message)).toEqual([]);
    expect(first.end).toBe("finished");
    await nc.close();
    await clusterDown({ run: "busy", runsRoot });
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, "busy"))).equals(reference)).toBe(true);
  }, 600_000);
});
