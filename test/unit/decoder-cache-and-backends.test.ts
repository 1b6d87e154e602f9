// The decoder (llama-tiny) on WebAssembly gives the reference's loss and gradients; its
// key/value cache, filled by a prefill and extended one token at a time, gives at every new
// position the logits a full forward gives there; the cache refuses what it cannot hold; and a
// backend without decoder kernels is refused in one line, and so are shapes the decoder cannot run.
import { beforeAll, describe, expect, it } from "vitest";
import { createWasmKernels } from "../../kernels-wasm/index.js";
import { decoderConfigSchema, decoderPresets } from "../../model/config.js";
import { type CausalBatch, Decoder } from "../../model/decoder.js";
import type { Kernels } from "../../model/kernels.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { worstError } from "../../model/kernel-probes.js";
import { decoderParameterLayout, initParameters } from "../../model/layout.js";

const V = 50;
const config = { ...decoderPresets["llama-tiny"]!, tieEmbeddings: false };
const layout = decoderParameterLayout(config, V);
// Larger weights than a fresh model has, so attention is far from uniform.
const params = Float32Array.from(initParameters(layout, 7), (v) => v * 10);
for (const e of layout.entries) if (e.init === "ones") params.fill(1, e.offset, e.offset + e.size);
const ids = Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 17 + 3) % V);

function decoder(k: Kernels, maxTokens: number, headRows?: number): Decoder {
  const d = new Decoder(k, config, layout, maxTokens, headRows);
  d.setParameters(params);
  return d;
}

describe("llama-tiny decoder", () => {
  let wasm: Kernels;
  beforeAll(async () => {
    wasm = await createWasmKernels();
  });

  it("gives the reference's loss and gradients on WebAssembly", () => {
    const batch: CausalBatch = { batch: 2, seqLen: 9, inputIds: ids, labels: Int32Array.from(ids, (x, i) => (i >= 15 ? -100 : x)) };
    const run = (k: Kernels) => {
      const d = decoder(k, 18, 5);
      d.zeroGrads();
      const { lossSum, count } = d.step(batch, 1 / 13);
      return { lossSum, count, grads: d.downloadGrads() };
    };
    const w = run(wasm);
    const r = run(createReferenceKernels());
    expect(w.count).toBe(8 + 5);
    expect(Math.abs(w.lossSum - r.lossSum) / r.lossSum).toBeLessThan(1e-5);
    const largest = r.grads.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
    expect(
      worstError(
        w.grads.map((g) => g / largest),
        r.grads.map((g) => g / largest),
      ),
    ).toBeLessThan(1e-4);
  });

  for (const backend of ["wasm", "reference"] as const)
    it(`${backend}: prefill and each cached step give the full forward's logits at that position`, () => {
      const k = backend === "wasm" ? wasm : createReferenceKernels();
      const d = decoder(k, 18);
      const prompt = 5;
      const cache = d.newCache(2, 9);
      const promptIds = Int32Array.from({ length: 2 * prompt }, (_, i) => ids[Math.floor(i / prompt) * 9 + (i % prompt)]!);
      const steps = [d.prefill(cache, promptIds, prompt)];
      for (let t = prompt; t < 9; t++) steps.push(d.decodeStep(cache, Int32Array.from([ids[t]!, ids[9 + t]!])));
      expect(cache.length).toBe(9);
      const full = d.forwardLogits(ids, 2, 9);
      for (const [s, logits] of steps.entries()) {
        const t = prompt - 1 + s;
        for (let b = 0; b < 2; b++) {
          const want = full.subarray((b * 9 + t) * V, (b * 9 + t + 1) * V);
          expect(worstError(logits.subarray(b * V, (b + 1) * V), want), `position ${t}, sequence ${b}`).toBeLessThan(1e-5);
        }
      }
      expect(() => d.decodeStep(cache, Int32Array.from([1, 2]))).toThrow(/the cache is full \(9 positions\)/);
      d.freeCache(cache);
    });

  it("refuses a backend without decoder kernels", () => {
    const { causalAttention: _, ...encoderOnly } = createReferenceKernels();
    expect(() => new Decoder({ ...encoderOnly, name: "cuda" }, config, layout, 4)).toThrow(/the cuda backend has no decoder kernels yet/);
  });

  it("refuses key/value heads that do not divide the query heads, and an odd head size", () => {
    const refusal = (shape: Record<string, unknown>) =>
      decoderConfigSchema.safeParse({ ...config, ...shape }).error?.issues.map((i) => `${i.path}: ${i.message}`);
    expect(refusal({ kvHeads: 3 })).toEqual(["kvHeads: 3 does not divide model.heads (4): each key/value head serves a whole group of query heads"]);
    expect(refusal({ hidden: 48, heads: 16, kvHeads: 4 })?.[0]).toMatch(/^heads: 16 gives a head size of 3, .*even/);
    expect(refusal({ kvHeads: 1 })).toBeUndefined();
  });
});
