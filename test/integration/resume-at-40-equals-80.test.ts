// Stopping a cluster at step 40 and resuming from its checkpoint with a different number of
// shards (and compute actors) gives the same bits at step 80 as an uninterrupted run.
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

describe("resume from a checkpoint", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("step 40 on 1 shard, resumed on 2 shards, equals 80 uninterrupted steps", async () => {
    const config = writeTinyConfig(cwd, { steps: 80, every: 20 });
    const whole = await runCli(["train", "--local", "--config", config, "--run", "whole"], cwd, 240_000);
    expect(whole.code, whole.stderr).toBe(0);
    const first = await runCli(
      ["cluster", "up", "--config", config, "--run", "first", "--shards", "1", "--compute", "1", "--steps", "40", "--no-tui"],
      cwd,
      240_000,
    );
    expect(first.code, first.stderr).toBe(0);
    const at40 = lastCheckpoint(join(cwd, "runs", "first"));
    expect(at40).toMatch(/step-000040$/);
    const second = await runCli(
      ["cluster", "up", "--config", config, "--run", "second", "--shards", "2", "--compute", "2", "--resume", at40, "--steps", "80", "--no-tui"],
      cwd,
      240_000,
    );
    expect(second.code, second.stderr).toBe(0);
    const resumed = lastCheckpoint(join(cwd, "runs", "second"));
    expect(resumed).toMatch(/step-000080$/);
    expect(checkpointParamBytes(resumed).equals(checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "whole"))))).toBe(true);
  }, 400_000);
});
