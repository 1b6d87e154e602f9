// Host-level combining (`cluster.combine`): the compute actors of a host send their blocks
// to one of them, which adds them along the reduction tree and sends the sums to the shards.
// Forced on one host here (`combine: host`): the parameters stay those of `train --local`
// bit for bit, and the shards take in one gradient per step instead of one per actor.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { alignedBlocks } from "../../model/reduction-tree.js";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, referenceBytes, writeTinyConfig } from "../helpers/training.js";

interface StepLine {
  shardBytes: number;
  actors: { id: string; groups: number[] }[];
}

function metrics(runDir: string): StepLine[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as StepLine);
}

/** Gradient vectors the shards take in for a step: one per aligned block of each sender (each actor, or the one host). */
function blocksOf(step: StepLine, combined: boolean): number {
  const held = step.actors.map((a) => a.groups);
  return combined ? alignedBlocks(held.flat(), 4).length : held.reduce((n, g) => n + alignedBlocks(g, 4).length, 0);
}

describe("host-level combining", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("keeps the bits of train --local and sends the shards one gradient per host", async () => {
    const reference = await referenceBytes(cwd, writeTinyConfig(cwd, { steps: 5 }));
    const runs: Record<string, StepLine[]> = {};
    for (const combine of ["host", "none"] as const) {
      const config = writeTinyConfig(cwd, { steps: 5, combine, file: `${combine}.yaml` });
      const run = `combine-${combine}`;
      const r = await runCli(["cluster", "up", "--config", config, "--run", run, "--compute", "3", "--no-tui"], cwd, 240_000);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(checkpointParamBytes(lastCheckpoint(join(cwd, "runs", run))).equals(reference)).toBe(true);
      runs[combine] = metrics(join(cwd, "runs", run));
    }
    // Every step the shards took in one whole-parameter gradient per block sent: with three
    // actors holding groups [0,1], [2] and [3] of 4, three blocks without combining, the
    // host's one with it. The first step waits for all three actors.
    const vector = runs.host![0]!.shardBytes / blocksOf(runs.host![0]!, true);
    for (const [combine, steps] of Object.entries(runs)) for (const step of steps) expect(step.shardBytes).toBe(blocksOf(step, combine === "host") * vector);
    expect(runs.host!.filter((s) => s.actors.length === 3).length).toBeGreaterThan(0);
    expect(runs.none!.filter((s) => s.actors.length === 3).every((s) => s.shardBytes === 3 * vector)).toBe(true);
  }, 600_000);
});
