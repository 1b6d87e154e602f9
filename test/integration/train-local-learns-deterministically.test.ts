// `train --local` on the shipped sample text: the MLM loss falls from about ln(vocab), the
// loss curve is written to the run's metrics, and two runs with one seed give the same bytes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

describe("train --local", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("learns, records its loss curve, and repeats bit for bit", async () => {
    const config = writeTinyConfig(cwd, { steps: 60 });
    for (const run of ["a", "b"]) {
      const r = await runCli(["train", "--local", "--config", config, "--run", run], cwd, 240_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/loss \d+\.\d+ → \d+\.\d+; checkpoint .*step-000060/);
    }
    const metrics = readFileSync(join(cwd, "runs", "a", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const vocab = JSON.parse(readFileSync(join(cwd, "runs", "a", "config.json"), "utf8")).data.vocabSize as number;
    const first = metrics.slice(0, 5).reduce((s, m) => s + m.loss, 0) / 5;
    const last = metrics.slice(-5).reduce((s, m) => s + m.loss, 0) / 5;
    expect(first).toBeGreaterThan(Math.log(vocab) * 0.75); // starts near chance
    expect(last).toBeLessThan(first - 0.4); // and clearly learns
    const a = checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "a")));
    const b = checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "b")));
    expect(a.equals(b)).toBe(true);
  }, 300_000);
});
