// The fine-tuning heads: every parameter's gradient (head and encoder) matches a central
// finite difference in float64, the question-answering span head's included; task files
// report bad rows by line; macro F1 by hand.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { modelConfigSchema, presets } from "../../model/config.js";
import { Encoder } from "../../model/encoder.js";
import { TaskHead, taskLayout } from "../../model/task-heads.js";
import { readTaskFile, score, type Task } from "../../model/tasks.js";
import { createReferenceKernels } from "../../model/kernels-reference.js";
import { initParameters, parameterLayout } from "../../model/layout.js";
import { removeDir, tempDir } from "../helpers/cluster.js";

const batch = {
  batch: 2,
  seqLen: 5,
  inputIds: Int32Array.from([2, 7, 4, 12, 3, 2, 9, 4, 3, 0]),
  attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
  tokenTypeIds: Int32Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 0]),
};
const cases: [string, Task, number[], number[]][] = [
  ["tiny", "pair-classification", [0, 5], [2, 0]],
  ["tiny-neobert", "classification", [0, 5], [1, 2]],
  ["tiny", "token-classification", [1, 2, 6, 7], [0, 2, 1, 1]],
];

for (const [preset, task, rows, labels] of cases)
  describe(`${preset}, ${task}: gradients`, () => {
    it("match finite differences for every parameter (f64, rel. 1e-5)", () => {
      const config = modelConfigSchema.parse({ ...presets[preset], hidden: 16, heads: 2, intermediate: 24, layers: 1, maxPositions: 8 });
      const layout = taskLayout(parameterLayout(config, 13), config, task, 3);
      const k = createReferenceKernels({ precision: "f64" });
      const encoder = new Encoder(k, config, layout, 10);
      const head = new TaskHead(encoder, task, 3, 10);
      const params = Float64Array.from(initParameters(layout, 5), (v) => v * 20);
      k.uploadF64(encoder.params, params);
      const loss = (train: boolean) => {
        encoder.forward(batch, { forwardOnly: !train });
        return head.run(rows, labels, train).lossSum / rows.length;
      };
      encoder.zeroGrads();
      loss(true);
      const analytic = k.downloadF64(encoder.grads, layout.total);
      const head0 = layout.entries.findIndex((e) => /pooler|^dense|classifier/.test(e.name));
      expect(head0).toBeGreaterThan(0);
      for (const e of layout.entries) {
        if (e.name.startsWith("cls.predictions")) continue; // the MLM head takes no part
        let worst = 0;
        for (let i = 0; i < e.size; i += e.size > 64 ? 7 : 1) {
          const at = e.offset + i;
          const h = 1e-5;
          k.uploadF64(k.view(encoder.params, at), [params[at]! + h]);
          const up = loss(false);
          k.uploadF64(k.view(encoder.params, at), [params[at]! - h]);
          const down = loss(false);
          k.uploadF64(k.view(encoder.params, at), [params[at]!]);
          const numeric = (up - down) / (2 * h);
          worst = Math.max(worst, Math.abs(numeric - analytic[at]!) / Math.max(1e-3, Math.abs(numeric)));
        }
        expect(worst, e.name).toBeLessThan(1e-5);
      }
    });
  });

// Question answering: start and end logits over every position of each window (the second
// window's last position is padding), the mean cross-entropy of the 2B softmaxes.
for (const preset of ["tiny", "tiny-neobert"])
  describe(`${preset}, question-answering: gradients`, () => {
    it("match finite differences for every parameter (f64, rel. 1e-5)", () => {
      const config = modelConfigSchema.parse({ ...presets[preset], hidden: 16, heads: 2, intermediate: 24, layers: 1, maxPositions: 8 });
      const layout = taskLayout(parameterLayout(config, 13), config, "question-answering", 2);
      expect(layout.entries.filter((e) => e.name.startsWith("qa_outputs")).map((e) => [e.name, e.shape])).toEqual([
        ["qa_outputs.weight", [2, 16]],
        ["qa_outputs.bias", [2]],
      ]);
      const k = createReferenceKernels({ precision: "f64" });
      const encoder = new Encoder(k, config, layout, 10);
      const head = new TaskHead(encoder, "question-answering", 2, 10);
      const params = Float64Array.from(initParameters(layout, 5), (v) => v * 20);
      k.uploadF64(encoder.params, params);
      const loss = (train: boolean) => {
        encoder.forward(batch, { forwardOnly: !train });
        const r = head.runSpans(batch.batch, batch.seqLen, batch.attentionMask, [1, 2], [3, 3], train);
        expect(r.start[9]).toBeLessThan(-1e3); // padding takes no part
        return r.lossSum / (2 * batch.batch);
      };
      encoder.zeroGrads();
      loss(true);
      const analytic = k.downloadF64(encoder.grads, layout.total);
      for (const e of layout.entries) {
        if (e.name.startsWith("cls.predictions")) continue; // the MLM head takes no part
        let worst = 0;
        for (let i = 0; i < e.size; i += e.size > 64 ? 7 : 1) {
          const at = e.offset + i;
          const h = 1e-5;
          k.uploadF64(k.view(encoder.params, at), [params[at]! + h]);
          const up = loss(false);
          k.uploadF64(k.view(encoder.params, at), [params[at]! - h]);
          const down = loss(false);
          k.uploadF64(k.view(encoder.params, at), [params[at]!]);
          const numeric = (up - down) / (2 * h);
          worst = Math.max(worst, Math.abs(numeric - analytic[at]!) / Math.max(1e-3, Math.abs(numeric)));
        }
        expect(worst, e.name).toBeLessThan(1e-5);
      }
    });
  });

describe("task files and scores", () => {
  const dir = tempDir();
  afterAll(() => removeDir(dir));

  it("reports each bad row by file and line, skips it or fails on it", () => {
    const file = join(dir, "rows.jsonl");
    writeFileSync(
      file,
      [
        '{"text": "Çox gözəl idi.", "label": "müsbət"}',
        "{oops",
        "",
        '{"text": "", "label": "mənfi"}',
        '{"text": "Pis idi.", "label": 1}',
        '{"text": "Soyuq idi."}',
      ].join("\n"),
    );
    const reported: string[] = [];
    const rows = readTaskFile(file, "classification", { onBadRow: "skip", report: (m) => reported.push(m) });
    expect(rows.map((r) => [r.line, r.label])).toEqual([
      [1, "müsbət"],
      [5, "1"],
    ]);
    expect(reported).toEqual([
      `${file}:2: not valid JSON; row skipped`,
      `${file}:4: "text" must be a non-empty string; row skipped`,
      `${file}:6: "label" must be a non-empty string or a whole number; row skipped`,
    ]);
    expect(() => readTaskFile(file, "classification", { onBadRow: "fail" })).toThrow(`${file}:2: not valid JSON`);
    expect(() => readTaskFile(file, "classification", { onBadRow: "skip", labels: ["müsbət"], report: () => {} })).not.toThrow();
    const onlyUnknown = join(dir, "dev.jsonl");
    writeFileSync(onlyUnknown, '{"text": "Orta idi.", "label": "neytral"}\n');
    expect(() => readTaskFile(onlyUnknown, "classification", { onBadRow: "fail", labels: ["müsbət", "mənfi"] })).toThrow(
      /"neytral" is not among the training file's labels/,
    );
    const tokens = join(dir, "tokens.jsonl");
    writeFileSync(tokens, '{"tokens": ["Əli", "gəldi"], "tags": ["B-PER"]}\n');
    expect(() => readTaskFile(tokens, "token-classification", { onBadRow: "fail" })).toThrow(`${tokens}:1: "tags" must be an array as long as "tokens" (2)`);
  });

  it("computes accuracy and macro F1", () => {
    // class 0: tp 2, fp 1, fn 0 → F1 0.8; class 1: tp 1, fp 0, fn 2 → F1 0.5; class 2: predicted once, never gold → 0
    const s = score([0, 0, 1, 1, 1], [0, 0, 1, 0, 2]);
    expect(s.accuracy).toBeCloseTo(3 / 5, 12);
    expect(s.macroF1).toBeCloseTo((0.8 + 0.5 + 0) / 3, 12);
  });
});
