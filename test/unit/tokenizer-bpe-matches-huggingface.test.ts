// Our BPE and byte-level BPE tokenizers: trained on the shipped sample, their tokenizer.json
// gives the same ids in the Hugging Face tokenizers library; byte-level decoding gives the
// normalised text back exactly; a written file loads as the right type.
import { Tokenizer } from "@huggingface/tokenizers";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BpeTokenizer, bpeWords, trainBpe, type BpeKind } from "../../corpus/bpe.js";
import { loadTokenizer } from "../../corpus/load-tokenizer.js";
import { countWords, normalize } from "../../corpus/tokenizer.js";
import { removeDir, tempDir } from "../helpers/cluster.js";
import { sampleText } from "../helpers/training.js";

const lines = readFileSync(sampleText, "utf8").split("\n").filter(Boolean);
const extra = [
  "İSTİQLAL küçəsində IŞIQ yandı, Əlİ müəllim gəldi.",
  "Naməlum simvollar: ǂ, 漢字, 12345!",
  "  iki  boşluq   və\ttab ",
  "Don't stop: it's 3.14 — ok?",
];

for (const kind of ["bpe", "bytelevel-bpe"] as BpeKind[])
  describe(`${kind} tokenizer`, () => {
    const dir = tempDir();
    afterAll(() => removeDir(dir));

    it("encodes like the Hugging Face library", async () => {
      const counts = await countWords([sampleText], { lowercase: true, split: (l) => bpeWords(l, kind, true) });
      const { tokens, merges } = trainBpe(counts, kind, { vocabSize: 600 });
      expect(tokens).toHaveLength(600);
      const ours = new BpeTokenizer(kind, tokens, merges, true);
      const hf = new Tokenizer(JSON.parse(ours.toJSON()), {});
      const { cls, sep, unk } = ours.special;
      for (const line of [...lines.slice(0, 40), ...extra]) expect(hf.encode(line).ids, line).toEqual([cls, ...ours.encode(line).ids, sep]);
      // Characters the training text never had: [UNK] for bpe, bytes for byte-level.
      expect(ours.encode("漢").ids.includes(unk)).toBe(kind === "bpe");

      const file = join(dir, "tokenizer.json");
      writeFileSync(file, ours.toJSON());
      const loaded = loadTokenizer(file);
      expect(loaded).toBeInstanceOf(BpeTokenizer);
      expect((loaded as BpeTokenizer).kind).toBe(kind);
      for (const line of lines.slice(40, 60)) expect(loaded.encode(line)).toEqual(ours.encode(line));
    });

    it(kind === "bytelevel-bpe" ? "decodes back to the normalised text, byte for byte" : "decodes to the words, spaced", async () => {
      const counts = await countWords([sampleText], { lowercase: false, split: (l) => bpeWords(l, kind, false) });
      const { tokens, merges } = trainBpe(counts, kind, { vocabSize: 500 });
      const t = new BpeTokenizer(kind, tokens, merges, false);
      for (const line of [...lines.slice(0, 40), ...extra.slice(0, 2)]) {
        const enc = t.encode(line);
        expect(enc.wordStarts[0]).toBe(1);
        if (kind === "bytelevel-bpe") expect(t.decode(enc.ids)).toBe(normalize(line, false));
        else if (!/[-–"“”:;()]/u.test(line)) expect(t.decode(enc.ids)).toBe(normalize(line, false));
      }
    });
  });
