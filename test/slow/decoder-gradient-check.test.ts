// Every parameter's analytic gradient of the Llama-style decoder (llama-tiny shrunk: grouped-
// query attention with two query heads per key/value head, RoPE with Llama 3 scaling), with
// tied and with untied embeddings, matches a central finite difference of the causal-LM loss
// in float64 reference arithmetic. The batch has right padding (ignored labels) and a logits
// block that scores nothing, so every path of the LM head is crossed.
import { describe, expect, it } from "vitest";
import { decoderConfigSchema, decoderPresets } from "../../model/config.js";
import { type CausalBatch, Decoder, IGNORE_INDEX } from "../../model/decoder.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { decoderParameterLayout, initParameters } from "../../model/layout.js";

const V = 13;
const P = IGNORE_INDEX;
const batch: CausalBatch = {
  batch: 2,
  seqLen: 5,
  inputIds: Int32Array.from([2, 7, 4, 12, 3, 2, 9, 4, 0, 0]),
  // The second sequence is padded at its end: its last two labels are not scored.
  labels: Int32Array.from([2, 7, 4, 12, 3, 2, 9, 4, P, P]),
};

for (const tieEmbeddings of [true, false]) {
  describe(`llama-tiny, ${tieEmbeddings ? "tied" : "untied"} embeddings: gradients`, () => {
    it("match finite differences for every parameter (f64, rel. 1e-5)", () => {
      const config = decoderConfigSchema.parse({
        ...decoderPresets["llama-tiny"],
        hidden: 16,
        heads: 4,
        kvHeads: 2,
        intermediate: 24,
        layers: 2,
        maxPositions: 8,
        tieEmbeddings,
      });
      const layout = decoderParameterLayout(config, V);
      expect(layout.entries.some((e) => e.name === "lm_head.weight")).toBe(!tieEmbeddings);
      const k = createReferenceKernels({ precision: "f64" });
      // Logits four rows at a time: the last block (positions 8 and 9) scores nothing.
      const model = new Decoder(k, config, layout, 10, 4);
      // Larger weights than training uses, so every path carries a visible gradient.
      const params = Float64Array.from(initParameters(layout, 3), (v) => v * 20);
      for (const e of layout.entries) if (e.init === "ones") for (let i = 0; i < e.size; i++) params[e.offset + i] = 1 + 0.1 * Math.sin(i);
      k.uploadF64(model.params, params);
      model.zeroGrads();
      const gradScale = 0.25;
      const { count } = model.step(batch, gradScale);
      expect(count).toBe(4 + 2); // every next token but each sequence's last, and none that is padding
      const analytic = k.downloadF64(model.grads, layout.total);
      const loss = () => model.step(batch, gradScale, { forwardOnly: true }).lossSum * gradScale;
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
      // Padding reaches no scored loss: token 0 stands only at the padded positions, so its
      // embedding row gets no gradient at all (untied: the LM head does not write it either).
      if (!tieEmbeddings) expect(Array.from(analytic.subarray(0, config.hidden))).toEqual(new Array(config.hidden).fill(0));
    });
  });
}
