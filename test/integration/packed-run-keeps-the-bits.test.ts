// A packed run (data.packing: full, with the document mask and whole-word masking) keeps the
// determinism contract: `train --local` and a cluster of 2 compute actors end with the same
// parameter bytes, and a run resumed from its step-3 checkpoint ends where the run straight
// through does. Packing changes the data (an unpacked run ends elsewhere), and every step's
// metrics record the share of positions that hold a token.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StepMetrics } from "../../model/training.js";
import { clusterDown } from "../../runtime/cluster.js";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

const steps = 6;

describe("a packed run keeps the bits", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  let reference: Buffer;
  const metrics = (run: string): StepMetrics[] =>
    readFileSync(join(runsRoot, run, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps, packing: "full", documentMask: true, wholeWord: true });
    const local = await runCli(["train", "--local", "--config", config, "--run", "local"], cwd, 180_000);
    expect(local.code, local.stderr).toBe(0);
    reference = checkpointParamBytes(lastCheckpoint(join(runsRoot, "local")));
  }, 240_000);
  afterAll(async () => {
    await clusterDown({ run: "cluster", runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  it("trains the same bits on 2 compute actors as train --local", async () => {
    const r = await runCli(["cluster", "up", "--config", config, "--run", "cluster", "--compute", "2", "--steps", String(steps), "--no-tui"], cwd, 180_000);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, "cluster"))).equals(reference)).toBe(true);
    const [local, cluster] = [metrics("local"), metrics("cluster")];
    expect(cluster.map((m) => m.loss)).toEqual(local.map((m) => m.loss));
    // 4 groups × 2 sequences × 32 positions a step; only a collection's last sequence holds padding.
    for (const m of local) expect(m.realTokenShare).toBe(m.tokens / (4 * 2 * 32));
    expect(local.reduce((n, m) => n + m.tokens, 0) / (steps * 4 * 2 * 32)).toBeGreaterThan(0.97);
  }, 200_000);

  it("resumes from a checkpoint to the same bits", async () => {
    const half = await runCli(["train", "--local", "--config", config, "--run", "resumed", "--steps", "3"], cwd, 180_000);
    expect(half.code, half.stderr).toBe(0);
    const rest = await runCli(
      ["train", "--local", "--config", config, "--run", "resumed", "--steps", String(steps), "--resume", lastCheckpoint(join(runsRoot, "resumed"))],
      cwd,
      180_000,
    );
    expect(rest.code, rest.stderr).toBe(0);
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, "resumed"))).equals(reference)).toBe(true);
  }, 300_000);

  it("packs: the same run without packing ends elsewhere and fills far fewer positions", async () => {
    const plain = writeTinyConfig(cwd, { steps, file: "plain.yaml" });
    const r = await runCli(["train", "--local", "--config", plain, "--run", "plain"], cwd, 180_000);
    expect(r.code, r.stderr).toBe(0);
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, "plain"))).equals(reference)).toBe(false);
    const share = (run: string) => metrics(run).reduce((n, m) => n + m.tokens, 0) / (steps * 4 * 2 * 32);
    expect(share("plain")).toBeLessThan(share("local") - 0.1);
  }, 200_000);
});
