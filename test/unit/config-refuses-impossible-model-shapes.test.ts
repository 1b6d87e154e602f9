// A model shape the layout or the kernels cannot run is refused by the config schema, with
// the key named, before anything is prepared or started.
import { describe, expect, it } from "vitest";
import { parseRunConfig } from "../../runtime/config.js";

const config = (model: Record<string, unknown>, seqLen = 64) => ({ model: { preset: "tiny", ...model }, data: { shards: "x", seqLen } });
const refusal = (raw: unknown) => {
  try {
    parseRunConfig(raw, "config.yaml");
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};

describe("the config schema refuses impossible model shapes", () => {
  it("hidden not divisible by heads", () => {
    expect(refusal(config({ hidden: 66, heads: 4 }))).toMatch(/^config\.yaml: model\.hidden: 66 is not divisible by model\.heads \(4\)/);
  });

  it("hidden not a multiple of the parameter alignment", () => {
    expect(refusal(config({ hidden: 72, heads: 4 }))).toMatch(/^config\.yaml: model\.hidden: 72 is not a multiple of 16/);
  });

  it("an odd head size under RoPE", () => {
    expect(refusal(config({ preset: "tiny-neobert", hidden: 48, heads: 16 }))).toMatch(/^config\.yaml: model\.heads: 16 gives a head size of 3, .*even/);
    expect(refusal(config({ preset: "tiny", hidden: 48, heads: 16 }))).toBe("accepted"); // BERT has no rotation
  });

  it("sequences longer than the position table", () => {
    expect(refusal(config({ maxPositions: 128 }, 256))).toMatch(/^config\.yaml: data\.seqLen: 256 is longer than model\.maxPositions \(128\)/);
    expect(refusal(config({ maxPositions: 128 }, 128))).toBe("accepted");
  });
});
