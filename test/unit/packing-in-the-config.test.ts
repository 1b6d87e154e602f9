// data.packing in a run config: absent means one document a sequence and leaves the config
// hash as it was; documentMask without packing is refused naming the key; a checkpoint
// resumes past step 0 only with the packing it was trained with.
import { describe, expect, it } from "vitest";
import { type CheckpointManifest, checkpointFormat, layoutSummary } from "../../model/checkpoint.js";
import { parameterLayout } from "../../model/layout.js";
import { checkResume } from "../../model/training.js";
import { configHash, parseRunConfig } from "../../runtime/config.js";

const raw = (data: Record<string, unknown> = {}) => ({ model: { preset: "tiny" }, data: { shards: "/tmp/shards", ...data }, training: {} });

describe("data.packing in the config", () => {
  it("is absent unless given, so older configs keep their hash", () => {
    const plain = parseRunConfig(raw());
    expect(plain.data.packing).toBeUndefined();
    expect(configHash(plain)).toBe("6bf03245adb337f9"); // this config's hash before data.packing existed
    expect(configHash(plain)).not.toBe(configHash(parseRunConfig(raw({ packing: "full" }))));
    expect(JSON.stringify(plain)).not.toContain("packing");
  });

  it("refuses documentMask without packing: full, naming the key", () => {
    expect(() => parseRunConfig(raw({ documentMask: true }))).toThrow(/data\.documentMask: .*set data\.packing: full/);
    expect(() => parseRunConfig(raw({ packing: "half" }))).toThrow(/data\.packing/);
    expect(parseRunConfig(raw({ packing: "full", documentMask: true })).data.documentMask).toBe(true);
  });

  it("resumes a checkpoint past step 0 only with the packing it was trained with", () => {
    const config = parseRunConfig(raw({ packing: "full" }));
    const layout = parameterLayout(config.model, 600);
    const t = config.training;
    const manifest = (step: number, packing?: "full"): CheckpointManifest => ({
      format: checkpointFormat,
      step,
      configHash: "0123456789abcdef",
      seed: t.seed,
      tokenizerHash: "tok",
      dataPosition: { nextSample: step * t.groups * t.groupSize },
      total: layout.total,
      layout: layoutSummary(layout),
      architecture: config.model.architecture,
      vocabSize: 600,
      model: config.model,
      seqLen: config.data.seqLen,
      ...(packing ? { packing } : {}),
      shards: [],
    });
    const plan = { config, configName: "packed.yaml", layout, tokenizerHash: "tok" };
    expect(() => checkResume("ckpt", manifest(5), plan)).toThrow(/data\.packing is none in the checkpoint and full in the config/);
    expect(() => checkResume("ckpt", manifest(5, "full"), plan)).not.toThrow();
    expect(() => checkResume("ckpt", manifest(0), plan)).not.toThrow(); // no data read yet
  });
});
