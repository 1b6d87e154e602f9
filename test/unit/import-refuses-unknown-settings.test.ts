// Importing a Hugging Face folder: hidden_act maps to the kernel it names ("gelu" exact,
// "gelu_new"/"gelu_pytorch_tanh" tanh) and any other is one error line naming the key; a
// config.json without aze_run.seq_len needs --seq-len to import (it is not guessed), and
// evaluation or fine-tuning on the folder takes max_position_embeddings.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { countWords, trainWordPiece, WordPieceTokenizer } from "../../corpus/tokenizer.js";
import { presets } from "../../model/config.js";
import { importHub, readHubFolder, readModel, writeHubFolder } from "../../model/hub.js";
import { parameterLayout } from "../../model/layout.js";
import { removeDir, tempDir } from "../helpers/cluster.js";
import { sampleText } from "../helpers/training.js";

const dir = tempDir();
afterAll(() => removeDir(dir));

/** A tiny BERT folder as export writes it, with config.json changed by `change`. */
async function folder(name: string, change: (config: Record<string, unknown>) => void, extraVocab = 0): Promise<string> {
  const counts = await countWords([sampleText], { lowercase: true });
  const tokenizer = new WordPieceTokenizer(trainWordPiece(counts, { vocabSize: 300, lowercase: true }), true);
  const tokenizerFile = join(dir, `${name}-tokenizer.json`);
  writeFileSync(tokenizerFile, tokenizer.toJSON());
  const model = presets.tiny!;
  const vocabSize = tokenizer.vocabSize + extraVocab;
  const layout = parameterLayout(model, vocabSize);
  const tensors = layout.entries.map((e) => ({ name: e.name, dtype: "F32" as const, shape: e.shape, data: new Float32Array(e.size).fill(0.01) }));
  const out = writeHubFolder(join(dir, name), { model, vocabSize, seqLen: 64, tensors, tokenizerFile });
  const configFile = join(out, "config.json");
  const config = JSON.parse(readFileSync(configFile, "utf8"));
  change(config);
  writeFileSync(configFile, JSON.stringify(config));
  return out;
}

function failure(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected an error");
}

describe("import of a Hugging Face config.json", () => {
  it("maps hidden_act to the GELU it names and refuses any other", async () => {
    const cases: [unknown, "erf" | "tanh"][] = [
      ["gelu", "erf"],
      ["gelu_new", "tanh"],
      ["gelu_pytorch_tanh", "tanh"],
      [undefined, "erf"], // BertConfig's default
    ];
    for (const [act, gelu] of cases) {
      const hf = await folder(`act-${act}`, (c) => {
        c.hidden_act = act;
      });
      expect(readHubFolder(hf).model.gelu, String(act)).toBe(gelu);
    }
    for (const act of ["relu", "gelu_fast", "silu", "gelu_10"]) {
      const hf = await folder(`bad-${act}`, (c) => {
        c.hidden_act = act;
      });
      const message = failure(() => importHub(hf, join(dir, "runs", act), 64));
      expect(message).toBe(
        `${join(hf, "config.json")}: hidden_act "${act}" is not supported: aze-run has the exact GELU ("gelu") and its tanh approximation ("gelu_new", "gelu_pytorch_tanh").`,
      );
    }
  });

  it("refuses relative position embeddings and a tokenizer of another size", async () => {
    const relative = await folder("relative", (c) => {
      c.position_embedding_type = "relative_key";
    });
    expect(failure(() => readHubFolder(relative))).toMatch(/config\.json: position_embedding_type "relative_key" is not supported: /);
    const bigger = await folder("bigger", () => {}, 1);
    expect(failure(() => readHubFolder(bigger))).toBe(`${join(bigger, "tokenizer.json")}: 300 tokens, but config.json's vocab_size is 301.`);
  });

  it("needs --seq-len to import a folder without aze_run.seq_len; evaluating it takes max_position_embeddings", async () => {
    const hf = await folder("no-seq-len", (c) => {
      delete c.aze_run;
    });
    const message = failure(() => importHub(hf, join(dir, "runs", "a")));
    expect(message).toBe(
      `${join(hf, "config.json")}: no aze_run.seq_len (the sequence length the model was trained at, which a checkpoint records): pass --seq-len N (at most max_position_embeddings, 128).`,
    );
    expect(failure(() => importHub(hf, join(dir, "runs", "b"), 256))).toMatch(/a sequence length of 256 is longer than the 128 positions/);
    const checkpoint = importHub(hf, join(dir, "runs", "c"), 96);
    expect(readModel(checkpoint).seqLen).toBe(96);
    expect(readModel(hf).seqLen).toBe(128);
    // A folder export wrote keeps its own length.
    const ours = await folder("ours", () => {});
    expect(readModel(importHub(ours, join(dir, "runs", "d"))).seqLen).toBe(64);
  });
});
