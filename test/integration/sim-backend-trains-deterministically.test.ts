// `cluster.backend: sim`: compute actors that wait and send a made-up gradient (a pure
// function of step and group) train through the real shards and reduction tree. Runs with
// 2 and 3 compute actors end with byte-identical parameters, equal to `train --local` of the
// same config, and different from the initial ones; no micro-batch is ever fetched.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer } from "../../corpus/load-tokenizer.js";
import { initParameters, parameterLayout } from "../../model/layout.js";
import { askClusterStatus, clusterDown, clusterUp } from "../../runtime/cluster.js";
import { loadRunConfig } from "../../runtime/config.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

const steps = 6;

describe("the sim backend trains deterministically", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  let local: Buffer;
  const finals = new Map<number, Buffer>();

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps });
    writeFileSync(config, readFileSync(config, "utf8").replace("  backend: wasm\n", "  backend: sim\n  simDelayMs: 5\n"));
    const r = await runCli(["train", "--local", "--config", config, "--run", "local"], cwd, 180_000);
    expect(r.code, r.stderr).toBe(0);
    local = checkpointParamBytes(lastCheckpoint(join(runsRoot, "local")));
  }, 240_000);
  afterAll(async () => {
    for (const compute of [2, 3]) await clusterDown({ run: `sim-${compute}`, runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  for (const compute of [2, 3])
    it(`${compute} simulated compute actors train ${steps} steps without fetching a micro-batch`, async () => {
      const run = `sim-${compute}`;
      const state = await clusterUp({ run, config, compute, detach: true, runsRoot });
      const status = await waitFor(
        "the run to finish",
        async () => {
          const s = await askClusterStatus(state, runsRoot);
          return s.training?.finished ? s : undefined;
        },
        150_000,
      );
      // Every compute actor ran simulated, and the one data-loader served nothing.
      const actors = status.actors.filter((a) => a.kind === "compute");
      expect(actors.map((a) => a.backendName)).toEqual(Array(compute).fill("sim"));
      expect(status.actors.filter((a) => a.kind === "data-loader").map((a) => a.served)).toEqual([0]);
      await clusterDown({ run, runsRoot });
      // Every step was dealt to all of them: the bits below come from `compute` ways of dealing.
      const metrics = readFileSync(join(runsRoot, run, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n");
      expect(metrics).toHaveLength(steps);
      expect(metrics.map((line) => (JSON.parse(line) as { actors: unknown[] }).actors.length)).toContain(compute);
      finals.set(compute, checkpointParamBytes(lastCheckpoint(join(runsRoot, run))));
    }, 200_000);

  it("ends with the same bits with 2 and 3 actors and locally, and they moved from the initial parameters", () => {
    const two = finals.get(2);
    const three = finals.get(3);
    expect(two && three).toBeTruthy();
    expect(two!.equals(three!)).toBe(true);
    expect(two!.equals(local)).toBe(true);
    const checkpoint = lastCheckpoint(join(runsRoot, "sim-2"));
    const run = loadRunConfig(config);
    const layout = parameterLayout(run.model, loadTokenizer(join(checkpoint, "tokenizer.json")).vocabSize);
    const initial = Buffer.from(initParameters(layout, run.training.seed).buffer);
    expect(initial.byteLength).toBe(two!.byteLength);
    expect(two!.equals(initial)).toBe(false);
  });
});
