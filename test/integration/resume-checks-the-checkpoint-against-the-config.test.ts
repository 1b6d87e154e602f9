// Resuming checks the checkpoint's architecture, model shape, layout, tokenizer, seed and
// data position against the config and names a mismatch in one line; what is deliberate
// (more steps, another learning-rate schedule) is allowed.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

describe("resume checks the checkpoint against the config", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));
  let base = "";
  let checkpoint = "";
  const variant = (name: string, edit: (yaml: string) => string) => {
    const file = join(cwd, `${name}.yaml`);
    writeFileSync(file, edit(base));
    return file;
  };
  const resume = (config: string, run: string) =>
    runCli(["train", "--local", "--config", config, "--run", run, "--resume", checkpoint, "--steps", "6"], cwd, 120_000);

  beforeAll(async () => {
    base = readFileSync(writeTinyConfig(cwd, { steps: 4 }), "utf8");
    expect((await runCli(["train", "--local", "--config", variant("base", (y) => y), "--run", "base"], cwd, 120_000)).code).toBe(0);
    checkpoint = lastCheckpoint(join(cwd, "runs", "base"));
  }, 150_000);

  it.each([
    ["architecture", (y: string) => y.replace("preset: tiny", "preset: tiny-neobert"), /it is a bert checkpoint and model\.architecture is neobert/],
    ["heads", (y: string) => y.replace("preset: tiny", "preset: tiny\n  heads: 8"), /model\.heads is 4 in the checkpoint and 8 in the config/],
    ["tokenizer", (y: string) => y.replace("vocabSize: 600", "vocabSize: 600\n  tokenizerType: bpe"), /trained with another tokenizer/],
    ["seed", (y: string) => y.replace("seed: 7", "seed: 8"), /training\.seed is 7 in the checkpoint and 8 in the config/],
    ["data position", (y: string) => y.replace("groupSize: 2", "groupSize: 4"), /the data stopped at sample 32, but .* would continue at 64/],
  ])(
    "refuses another %s in one line",
    async (name, edit, message) => {
      const r = await resume(variant(name.replace(" ", "-"), edit), name.replace(" ", "-"));
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/step-000004 cannot resume with .*\.yaml: /);
      expect(r.stderr).toMatch(message);
    },
    150_000,
  );

  it("allows more steps and another learning-rate schedule", async () => {
    const r = await resume(
      variant("schedule", (y) => y.replace("lr: 0.003", "lr: 0.001\n  schedule: linear")),
      "schedule",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/checkpoint .*step-000006/);
  }, 150_000);
});
