// A placed actor that keeps failing to start after `cluster up` returned is not replaced
// forever: after 3 start failures of one kind in a row the coordinator places no more,
// stops training, and ends the run with an error event carrying the actor's own error,
// which `cluster status` repeats. The fault: the token shards of a running data-loader are
// corrupted, then it is SIGKILLed, so every replacement fails its checksum at start.
import { cpSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp, connectClient, fetchStatus } from "../../runtime/cluster.js";
import { decodeMessage } from "../../runtime/codec.js";
import { subjects } from "../../runtime/subjects.js";
import type { ClusterEvent, StepMetrics } from "../../actors/protocol.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { writeTinyConfig } from "../helpers/training.js";

const run = "crash-loop";

describe("a replacement that keeps failing to start", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  let tokens: string;

  beforeAll(async () => {
    // Prepares the token shards under runs/.cache; the run trains on a copy of them.
    const prepare = writeTinyConfig(cwd, { steps: 1 });
    const local = await runCli(["train", "--local", "--config", prepare, "--run", "prepare"], cwd, 240_000);
    expect(local.code, local.stderr).toBe(0);
    const data = readdirSync(join(runsRoot, ".cache")).find((n) => n.startsWith("data-"))!;
    const shards = join(cwd, "shards");
    cpSync(join(runsRoot, ".cache", data), shards, { recursive: true });
    tokens = join(shards, "sample", "tokens.bin");
    config = writeTinyConfig(cwd, { steps: 2000, dataShards: shards, file: "crash-loop.yaml" });
  }, 300_000);
  afterAll(async () => {
    await clusterDown({ run, runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  it("ends the run with the actor's own error after 3 failed starts, and places no more", async () => {
    const state = await clusterUp({ run, config, compute: 1, detach: true, runsRoot });
    const client = await connectClient(state);
    try {
      const events: ClusterEvent[] = [];
      const metrics: StepMetrics[] = [];
      client.subscribe(subjects(run).events, { callback: (_e, m) => void events.push(decodeMessage(m.data)) });
      client.subscribe(subjects(run).metrics, { callback: (_e, m) => void metrics.push(decodeMessage(m.data)) });
      await client.flush();
      await waitFor("a step trained", () => metrics.length > 0, 120_000);

      // A new file under the old name: the running loader keeps its own copy open.
      const bytes = readFileSync(tokens);
      bytes[9]! ^= 1;
      writeFileSync(`${tokens}.corrupt`, bytes);
      renameSync(`${tokens}.corrupt`, tokens);
      const loader = (await fetchStatus(client, run)).actors.find((a) => a.kind === "data-loader")!;
      process.kill(loader.pid, "SIGKILL");

      const end = await waitFor("the run to end", () => events.find((e) => e.end), 120_000);
      expect(end).toMatchObject({ type: "error", end: "error" });
      expect(end.message).toMatch(/^data-loader loader-\d+ failed to start: .*tokens\.bin fails its checksum.*3 data-loader actors in a row failed to start/);
      const failedStarts = () => events.filter((e) => e.type === "error" && !e.end && /failed to start/.test(e.message));
      expect(failedStarts()).toHaveLength(3);

      // No fourth replacement: the coordinator reconciles four times a second, so a few
      // seconds would show one; the agent's log lists every process it spawned.
      await new Promise((r) => setTimeout(r, 3000));
      const agentLog = readdirSync(join(runsRoot, run, "logs")).find((f) => f.startsWith("agent-") && f.endsWith(".jsonl"))!;
      const spawnedLoaders = readFileSync(join(runsRoot, run, "logs", agentLog), "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { event: string; kind?: string })
        .filter((e) => e.event === "spawned" && e.kind === "data-loader");
      expect(spawnedLoaders).toHaveLength(4); // the first, and three replacements
      expect(failedStarts()).toHaveLength(3);

      const status = await runCli(["cluster", "status", "--run", run], cwd);
      expect(status.stderr).toBe("");
      expect(status.stdout).toMatch(/stopped: step \d+ of 2000, .*tokens\.bin fails its checksum/);
    } finally {
      await client.close();
    }
    const down = await runCli(["cluster", "down", "--run", run], cwd);
    expect(down.code, down.stderr).toBe(0);
  }, 400_000);
});
