// A checkpoint for a step whose folder exists already replaces it whole, never skips it:
// the folder then holds what this run computed, and no temporary folder is left.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { beginCheckpoint, finishCheckpoint, readCheckpointRange, writeSlice } from "../../model/checkpoint.js";
import { removeDir, tempDir } from "../helpers/cluster.js";

describe("a checkpoint for an existing step", () => {
  const runDir = tempDir();
  afterAll(() => removeDir(runDir));
  const save = (value: number) => {
    const pending = beginCheckpoint(runDir, 2)!;
    const slice = { params: new Float32Array(16).fill(value), m: new Float32Array(16), v: new Float32Array(16) };
    const manifest = {
      step: 2,
      configHash: "h",
      seed: 1,
      tokenizerHash: "t",
      dataPosition: { nextSample: 0 },
      total: 16,
      layout: [],
      architecture: "bert",
      vocabSize: 1,
      model: {} as never,
      seqLen: 8,
    };
    return finishCheckpoint(pending, { ...manifest, shards: [writeSlice(pending.temp, 0, 1, 0, slice)] });
  };

  it("replaces it with the new bits", () => {
    save(1);
    const path = save(2);
    expect(readCheckpointRange(path, 0, 16).params[0]).toBe(2);
    expect(readdirSync(join(runDir, "checkpoints"))).toEqual(["step-000002"]);
  });
});
