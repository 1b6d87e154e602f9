// `train --local` puts its run folder under $AZE_RUNS, as the cluster does.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { writeTinyConfig } from "../helpers/training.js";

describe("train --local and AZE_RUNS", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("writes the run folder under $AZE_RUNS", async () => {
    const runs = join(cwd, "elsewhere");
    const r = await runCli(["train", "--local", "--config", writeTinyConfig(cwd, { steps: 2 }), "--run", "x"], cwd, 120_000, { AZE_RUNS: runs });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(join(runs, "x", "checkpoints", "step-000002"));
    expect(existsSync(join(runs, "x", "metrics.jsonl"))).toBe(true);
    expect(existsSync(join(cwd, "runs", "x"))).toBe(false);
  }, 150_000);
});
