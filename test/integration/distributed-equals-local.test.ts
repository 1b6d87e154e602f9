// The determinism contract: a distributed run gives parameters bitwise identical to
// `train --local` after the same steps, whatever the number of compute actors and shards.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

describe("distributed training equals train --local", () => {
  const cwd = tempDir();
  let config: string;
  let reference: Buffer;

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps: 6 });
    const local = await runCli(["train", "--local", "--config", config, "--run", "local"], cwd, 180_000);
    expect(local.stderr).not.toMatch(/error/i);
    expect(local.code).toBe(0);
    reference = checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "local")));
    expect(reference.byteLength).toBeGreaterThan(0);
  }, 240_000);
  afterAll(() => removeDir(cwd));

  for (const [compute, shards] of [
    [1, 1],
    [2, 2],
    [3, 1],
    [1, 2],
  ] as const) {
    it(`${compute} compute actor(s), ${shards} shard(s)`, async () => {
      const run = `d${compute}x${shards}`;
      const r = await runCli(
        ["cluster", "up", "--config", config, "--run", run, "--compute", String(compute), "--shards", String(shards), "--steps", "6", "--no-tui"],
        cwd,
        180_000,
      );
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const got = checkpointParamBytes(lastCheckpoint(join(cwd, "runs", run)));
      expect(got.equals(reference)).toBe(true);
    }, 200_000);
  }
});
