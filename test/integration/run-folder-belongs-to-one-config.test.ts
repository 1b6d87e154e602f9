// A run folder holds one run: a run whose folder holds checkpoints of another config, or
// later ones of its own, is refused in one line that says how to resume or start over;
// --fresh deletes the old checkpoints and metrics first. For `train --local` and `cluster up`.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { checkpointParamBytes, writeTinyConfig } from "../helpers/training.js";

describe("a run folder belongs to one config", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));
  const first = join(cwd, "first.yaml");
  const second = join(cwd, "second.yaml");
  writeFileSync(first, readFileSync(writeTinyConfig(cwd, { steps: 4, every: 2 }), "utf8"));
  writeFileSync(second, readFileSync(writeTinyConfig(cwd, { steps: 4, every: 2, seed: 8 }), "utf8"));
  const step4 = (run: string) => checkpointParamBytes(join(cwd, "runs", run, "checkpoints", "step-000004"));
  const train = (config: string, run: string, ...more: string[]) => runCli(["train", "--local", "--config", config, "--run", run, ...more], cwd, 120_000);

  it("train --local refuses another config's run folder, and its own finished one, and starts over with --fresh", async () => {
    expect((await train(first, "x")).code).toBe(0);
    const firstBytes = step4("x");

    const other = await train(second, "x");
    expect(other.code).not.toBe(0);
    expect(other.stderr.trim().split("\n")).toHaveLength(1);
    expect(other.stderr).toMatch(/step-00000\d was written by another config .*second\.yaml.*--fresh.*another --run name/);
    expect(step4("x").equals(firstBytes)).toBe(true); // nothing written

    const again = await train(first, "x");
    expect(again.code).not.toBe(0);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    expect(again.stderr).toMatch(/already holds this config's checkpoints up to step 4: continue with --resume .*step-000004/);

    const fresh = await train(second, "x", "--fresh");
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stdout).toMatch(/checkpoint .*step-000004/);
    expect((await train(second, "y")).code).toBe(0);
    expect(step4("x").equals(step4("y"))).toBe(true); // the second config's bits, not the first's
    expect(
      readFileSync(join(cwd, "runs", "x", "metrics.jsonl"), "utf8")
        .trim()
        .split("\n"),
    ).toHaveLength(4);
  }, 300_000);

  it("cluster up refuses another config's run folder before starting anything, and starts over with --fresh", async () => {
    const up = (...more: string[]) => runCli(["cluster", "up", "--config", first, "--run", "x", "--no-tui", ...more], cwd, 120_000);
    const other = await up();
    expect(other.code).not.toBe(0);
    expect(other.stderr.trim().split("\n")).toHaveLength(1);
    expect(other.stderr).toMatch(/was written by another config .*first\.yaml.*--fresh/);
    const fresh = await up("--fresh");
    expect(fresh.code, fresh.stderr).toBe(0);
    expect((await train(first, "z")).code).toBe(0);
    expect(step4("x").equals(step4("z"))).toBe(true);
  }, 300_000);
});
