// A model trained by `train --local` exports to a Hugging Face folder, re-imports and
// evaluates to the same numbers; model.safetensors is read back by an independent reader
// (Python's struct and json, not our writer's code) with the right names, shapes and values.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readCheckpointRange } from "../../model/checkpoint.js";
import { parameterLayout } from "../../model/layout.js";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { lastCheckpoint, sampleText, writeTinyConfig } from "../helpers/training.js";

const reader = `
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
out = {}
for name, t in header.items():
    if name == "__metadata__": continue
    a, b = t["data_offsets"]
    values = struct.unpack("<%df" % ((b - a) // 4), data[8 + n + a:8 + n + b])
    out[name] = {"dtype": t["dtype"], "shape": t["shape"], "first": values[0], "sum": sum(values)}
print(json.dumps(out))`;

describe("export, import, evaluate", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("round-trips a trained model through the Hugging Face folder", async () => {
    const config = writeTinyConfig(cwd, { steps: 10 });
    expect((await runCli(["train", "--local", "--config", config, "--run", "m"], cwd, 120_000)).code).toBe(0);
    const ckpt = lastCheckpoint(join(cwd, "runs", "m"));
    const evalArgs = ["--data", sampleText, "--max-sequences", "8", "--json"];
    const before = await runCli(["eval", "--checkpoint", ckpt, ...evalArgs], cwd, 120_000);
    expect(before.code, before.stderr).toBe(0);
    expect((await runCli(["export", "--checkpoint", ckpt, "--out", "hf"], cwd)).code).toBe(0);
    expect((await runCli(["import", "--hf", "hf", "--run", "back"], cwd)).code).toBe(0);
    const after = await runCli(["eval", "--checkpoint", join(cwd, "runs", "back", "checkpoints", "step-000000"), ...evalArgs], cwd, 120_000);
    const [b, a] = [JSON.parse(before.stdout), JSON.parse(after.stdout)];
    for (const key of ["mlmLoss", "pseudoPerplexity", "bitsPerByte", "tokensPerWord"]) expect(a[key]).toBe(b[key]);
    expect(b.bitsPerByte).toBeGreaterThan(0);

    const py = spawnSync("python3", ["-c", reader, join(cwd, "hf", "model.safetensors")], { encoding: "utf8" });
    expect(py.status, py.stderr).toBe(0);
    const tensors = JSON.parse(py.stdout) as Record<string, { dtype: string; shape: number[]; first: number; sum: number }>;
    const { params, manifest } = readCheckpointRange(ckpt, 0, JSON.parse(readFileSync(join(ckpt, "manifest.json"), "utf8")).total);
    const layout = parameterLayout(manifest.model, manifest.vocabSize);
    expect(Object.keys(tensors).sort()).toEqual(layout.entries.map((e) => e.name).sort());
    expect(tensors["bert.embeddings.word_embeddings.weight"]!.shape).toEqual([manifest.vocabSize, 64]);
    for (const e of layout.entries) {
      const t = tensors[e.name]!;
      expect(t.dtype).toBe("F32");
      expect(t.shape).toEqual(e.shape);
      expect(t.first).toBe(params[e.offset]);
      const sum = params.subarray(e.offset, e.offset + e.size).reduce((s, v) => s + v, 0);
      expect(Math.abs(t.sum - sum)).toBeLessThan(1e-6 * Math.max(1, Math.abs(sum)) + 1e-9 * e.size);
    }
  }, 300_000);
});
