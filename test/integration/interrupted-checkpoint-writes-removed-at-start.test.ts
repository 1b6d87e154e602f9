// A kill during a checkpoint write leaves a `.step-*.tmp-*` folder: the next `train --local`
// or `cluster up` of that run folder removes it before anything else.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { writeTinyConfig } from "../helpers/training.js";

describe("interrupted checkpoint writes", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));
  const leftover = (run: string) => {
    const dir = join(cwd, "runs", run, "checkpoints", ".step-000002.tmp-12345-1700000000000");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "shard-00000-of-00001.safetensors"), "half a file");
    return dir;
  };

  it("are removed when train --local starts", async () => {
    const config = writeTinyConfig(cwd, { steps: 2 });
    const dir = leftover("local");
    const r = await runCli(["train", "--local", "--config", config, "--run", "local"], cwd, 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(dir)).toBe(false);
  }, 150_000);

  it("are removed when cluster up starts", async () => {
    const config = writeTinyConfig(cwd, { steps: 2 });
    const dir = leftover("cluster");
    const r = await runCli(["cluster", "up", "--config", config, "--run", "cluster", "--no-tui"], cwd, 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(dir)).toBe(false);
  }, 150_000);
});
