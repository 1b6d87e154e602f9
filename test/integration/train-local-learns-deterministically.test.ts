// `train --local` on the shipped sample text: the MLM loss falls from about ln(vocab), the
// loss curve is written to the run's metrics, and two runs with one seed give the same bytes;
// a gradient that is not finite is skipped or stops the run, as training.onNonFinite says.
import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
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

  it("skips a non-finite gradient's update, or stops the run with one line, as training.onNonFinite says", async () => {
    const base = readFileSync(writeTinyConfig(cwd, { steps: 3, every: 1 }), "utf8");
    // A learning rate this large blows the parameters up in the first update: every later gradient is NaN.
    const config = (policy: string) => {
      const file = join(cwd, `nan-${policy}.yaml`);
      writeFileSync(file, base.replace("lr: 0.003", `lr: 1.0e+30\n  clipNorm: 0\n  onNonFinite: ${policy}`).replace("warmupSteps: 2", "warmupSteps: 0"));
      return file;
    };
    const skip = await runCli(["train", "--local", "--config", config("skip"), "--run", "nan-skip"], cwd, 240_000);
    expect(skip.code, skip.stderr).toBe(0);
    const updates = readFileSync(join(cwd, "runs", "nan-skip", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { update: string }).update);
    expect(updates).toEqual(["applied", "skipped", "skipped"]);
    const checkpoints = join(cwd, "runs", "nan-skip", "checkpoints");
    const after1 = checkpointParamBytes(join(checkpoints, "step-000001"));
    expect(checkpointParamBytes(join(checkpoints, "step-000003")).equals(after1)).toBe(true); // skipped: untouched

    const stop = await runCli(["train", "--local", "--config", config("stop"), "--run", "nan-stop"], cwd, 240_000);
    expect(stop.code).not.toBe(0);
    expect(stop.stderr.trim().split("\n")).toHaveLength(1);
    expect(stop.stderr).toMatch(/step 2: the gradient is not finite .*onNonFinite is "stop"/);
  }, 300_000);

  it("verifies a checkpoint with `checkpoint verify`, and refuses to resume from a corrupted one", async () => {
    const config = writeTinyConfig(cwd, { steps: 4 });
    expect((await runCli(["train", "--local", "--config", config, "--run", "v"], cwd, 240_000)).code).toBe(0);
    const good = lastCheckpoint(join(cwd, "runs", "v"));
    const ok = await runCli(["checkpoint", "verify", good], cwd);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/step 4, [\d,]+ parameters in 1 slice file, every checksum matches/);

    const bad = join(cwd, "corrupted");
    cpSync(good, bad, { recursive: true });
    const slice = join(bad, readdirSync(bad).find((f) => f.endsWith(".safetensors"))!);
    const bytes = readFileSync(slice);
    bytes[bytes.length - 5]! ^= 0x40; // one flipped bit in the parameters
    writeFileSync(slice, bytes);
    for (const args of [
      ["checkpoint", "verify", bad],
      ["train", "--local", "--config", config, "--run", "w", "--resume", bad],
    ]) {
      const r = await runCli(args, cwd, 240_000);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/safetensors fails its checksum/);
    }
  }, 300_000);
});
