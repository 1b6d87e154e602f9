// A training step of the whole encoder on the CUDA kernels under the CPU emulation gives the
// reference's loss and gradients: BERT (LayerNorm, GELU, bias; with and without dropout) and
// NeoBERT (RMSNorm, RoPE, SwiGLU). The kernels one by one are in
// test/slow/kernels-cuda-emulated-match-reference.test.ts; this is how the model uses them
// (views, saved attention state, scratch, dropout counters). Slow: each launch runs on host threads.
import { beforeAll, describe, expect, it } from "vitest";
import { emulatedCudaKernels, hasCompiler } from "../helpers/cuda-emulation.js";
import type { CudaKernels } from "../../kernels-cuda/index.js";
import { modelConfigSchema, presets } from "../../model/config.js";
import { Encoder, type MaskedBatch } from "../../model/encoder.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import type { Kernels } from "../../model/kernels.js";
import { initParameters, parameterLayout } from "../../model/layout.js";

if (!hasCompiler) console.log("encoder on the CUDA emulation: skipped, no C++ compiler on this machine");

describe.skipIf(!hasCompiler)("the encoder on the CUDA kernels (CPU emulation)", () => {
  let c: CudaKernels;
  const r = createReferenceKernels();
  beforeAll(() => {
    c = emulatedCudaKernels();
  }, 600_000);

  // The whole encoder, as training runs it, on the CUDA kernels: BERT (LayerNorm, GELU, bias,
  // with and without dropout) and NeoBERT (RMSNorm, RoPE, SwiGLU), loss and every gradient.
  for (const preset of ["tiny", "tiny+dropout", "tiny-neobert"]) {
    it(`a training step of ${preset} gives the reference's loss and gradients`, () => {
      const V = 13;
      const batch: MaskedBatch = {
        batch: 2,
        seqLen: 5,
        inputIds: Int32Array.from([2, 7, 4, 12, 3, 2, 9, 4, 3, 0]),
        attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
        tokenTypeIds: Int32Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 0]),
        labels: Int32Array.from([-100, 8, -100, 5, -100, -100, 11, 6, -100, -100]),
      };
      const config = modelConfigSchema.parse({
        ...presets[preset.replace("+dropout", "")],
        hidden: 16,
        heads: 2,
        intermediate: 24,
        layers: 2,
        maxPositions: 8,
        ...(preset.endsWith("+dropout") ? { dropout: 0.1, attentionDropout: 0.2 } : {}),
      });
      const layout = parameterLayout(config, V);
      const params = Float32Array.from(initParameters(layout, 3), (v) => v * 20);
      const run = (k: Kernels) => {
        const model = new Encoder(k, config, layout, 10, 5);
        k.upload(model.params, params);
        model.zeroGrads();
        const { lossSum } = model.step(batch, 0.25, { dropoutCounter: 3 });
        return { lossSum, grads: download(k, model.grads, layout.total) };
      };
      const [got, want] = [run(c), run(r)];
      expect(Math.abs(got.lossSum - want.lossSum) / Math.abs(want.lossSum)).toBeLessThan(1e-5);
      const scale = want.grads.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let diff = 0;
      for (let i = 0; i < layout.total; i++) diff = Math.max(diff, Math.abs(got.grads[i]! - want.grads[i]!));
      // Relative to the largest gradient; weights 20 times training's make float's roundings
      // (against the reference's double sums) visible, a wrong kernel would be off by O(1).
      expect(diff / scale).toBeLessThan(1e-4);
    });
  }
});

function download(k: Kernels, b: Parameters<Kernels["download"]>[0], n: number): Float32Array {
  const out = new Float32Array(n);
  k.download(b, out);
  return out;
}
