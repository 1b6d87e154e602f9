// `cluster up` that cannot start its run says why in one line (the failing actor's own
// error, not a generic timeout), stops every process it started, and leaves a run that
// `cluster down` still knows. Two ways to fail: a data-loader that finds a corrupt token
// shard, and a resume checkpoint whose slice file is damaged (refused before any actor).
import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive, readClusterState } from "../../runtime/cluster.js";
import { pgrep, removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

describe("a failed cluster up", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps: 2, every: 2 });
    // Prepares the token shards under runs/.cache and leaves a checkpoint to damage.
    const local = await runCli(["train", "--local", "--config", config, "--run", "local"], cwd, 240_000);
    expect(local.code, local.stderr).toBe(0);
  }, 300_000);
  afterAll(async () => {
    for (const run of ["bad-data", "bad-resume"]) await runCli(["cluster", "down", "--run", run], cwd);
    removeDir(cwd);
  });

  /** Every process the run ever started on this host: the agent, what it spawned, nats-server. */
  function startedPids(run: string): number[] {
    const logs = join(runsRoot, run, "logs");
    const spawned = readdirSync(logs)
      .filter((f) => f.startsWith("agent-") && f.endsWith(".jsonl"))
      .flatMap((f) => readFileSync(join(logs, f), "utf8").trim().split("\n"))
      .map((line) => JSON.parse(line) as { event: string; pid?: number })
      .filter((e) => e.event === "spawned")
      .map((e) => e.pid!);
    const state = readClusterState(run, runsRoot)!;
    return [state.agentPid!, state.natsPid!, ...spawned];
  }

  async function expectNothingLeft(run: string): Promise<void> {
    const dir = join(runsRoot, run);
    expect(pgrep(`${dir}/nats-server.conf`)).toEqual([]);
    const down = await runCli(["cluster", "down", "--run", run], cwd);
    expect(down.stderr).toBe("");
    expect(down.code).toBe(0);
  }

  it("prints the data-loader's own error for a corrupt token shard and stops the run", async () => {
    const shards = readdirSync(join(runsRoot, ".cache")).find((n) => n.startsWith("data-"))!;
    const bad = join(cwd, "bad-shards");
    cpSync(join(runsRoot, ".cache", shards), bad, { recursive: true });
    const tokens = join(bad, "sample", "tokens.bin");
    const bytes = readFileSync(tokens);
    bytes[9]! ^= 1;
    writeFileSync(tokens, bytes);
    const badConfig = writeTinyConfig(cwd, { steps: 2, every: 2, dataShards: bad, file: "bad-data.yaml" });

    const up = await runCli(["cluster", "up", "--config", badConfig, "--run", "bad-data", "--no-tui"], cwd, 120_000);
    expect(up.code).not.toBe(0);
    const lines = up.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^aze-run: data-loader loader-0 failed to start: .*tokens\.bin fails its checksum/);
    expect(lines[0]).not.toMatch(/did not reach/);
    const pids = startedPids("bad-data");
    expect(pids.length).toBeGreaterThan(3);
    expect(pids.filter(isAlive)).toEqual([]);
    await expectNothingLeft("bad-data");
  }, 180_000);

  it("refuses a damaged resume checkpoint and leaves no nats-server behind", async () => {
    const damaged = join(cwd, "damaged-checkpoint");
    cpSync(lastCheckpoint(join(runsRoot, "local")), damaged, { recursive: true });
    const slice = readdirSync(damaged).find((n) => n.endsWith(".safetensors"))!;
    const bytes = readFileSync(join(damaged, slice));
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(join(damaged, slice), bytes);

    const up = await runCli(["cluster", "up", "--config", config, "--resume", damaged, "--run", "bad-resume", "--no-tui"], cwd, 120_000);
    expect(up.code).not.toBe(0);
    expect(up.stderr.trim().split("\n")).toHaveLength(1);
    expect(up.stderr).toContain(slice);
    expect(readClusterState("bad-resume", runsRoot)?.state).toBe("down");
    await expectNothingLeft("bad-resume");
  }, 180_000);
});
