// Every parameter's analytic gradient, for both architectures (BERT also with its dropouts
// on), matches a central finite difference of the MLM loss in float64 reference arithmetic.
import { describe, expect, it } from "vitest";
import { modelConfigSchema, presets } from "../../model/config.js";
import { Encoder, type MaskedBatch } from "../../model/encoder.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { initParameters, parameterLayout } from "../../model/layout.js";

const V = 13;
const batch: MaskedBatch = {
  batch: 2,
  seqLen: 5,
  inputIds: Int32Array.from([2, 7, 4, 12, 3, 2, 9, 4, 3, 0]),
  attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
  tokenTypeIds: Int32Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 0]),
  labels: Int32Array.from([-100, 8, -100, 5, -100, -100, 11, 6, -100, -100]),
};

// "tiny+dropout": BERT with hidden and attention dropout on; the masks are pure functions of
// (seed, step), so the loss stays a deterministic function of the parameters.
for (const preset of ["tiny", "tiny+dropout", "tiny-neobert"]) {
  describe(`${preset}: gradients`, () => {
    it("match finite differences for every parameter (f64, rel. 1e-5)", () => {
      const dropout = preset.endsWith("+dropout") ? { dropout: 0.1, attentionDropout: 0.2 } : {};
      const config = modelConfigSchema.parse({
        ...presets[preset.replace("+dropout", "")],
        hidden: 16,
        heads: 2,
        intermediate: 24,
        layers: 2,
        maxPositions: 8,
        ...dropout,
      });
      const layout = parameterLayout(config, V);
      const k = createReferenceKernels({ precision: "f64" });
      const model = new Encoder(k, config, layout, 10, 5);
      // Larger weights than training uses, so every path carries a visible gradient.
      const params = Float64Array.from(initParameters(layout, 3), (v) => v * 20);
      for (const e of layout.entries) if (e.init === "ones") for (let i = 0; i < e.size; i++) params[e.offset + i] = 1 + 0.1 * Math.sin(i);
      k.uploadF64(model.params, params);
      model.zeroGrads();
      const gradScale = 0.25;
      model.step(batch, gradScale);
      const analytic = k.downloadF64(model.grads, layout.total);
      // forwardOnly also turns dropout off; with dropout the loss comes from a training step
      // (whose backward only adds to gradients already read).
      const loss = () => model.step(batch, gradScale, { forwardOnly: !preset.endsWith("+dropout") }).lossSum * gradScale;
      if (preset.endsWith("+dropout")) expect(loss()).not.toBe(model.step(batch, gradScale, { forwardOnly: true }).lossSum * gradScale); // the dropouts are on
      let checked = 0;
      for (const e of layout.entries) {
        let worst = 0;
        for (let i = 0; i < e.size; i++) {
          const at = e.offset + i;
          const h = 1e-5;
          k.uploadF64(k.view(model.params, at), [params[at]! + h]);
          const up = loss();
          k.uploadF64(k.view(model.params, at), [params[at]! - h]);
          const down = loss();
          k.uploadF64(k.view(model.params, at), [params[at]!]);
          const numeric = (up - down) / (2 * h);
          worst = Math.max(worst, Math.abs(numeric - analytic[at]!) / Math.max(1e-3, Math.abs(numeric)));
          checked++;
        }
        expect(worst, e.name).toBeLessThan(1e-5);
      }
      expect(checked).toBe(layout.entries.reduce((n, e) => n + e.size, 0));
    });
  });
}
