// Our WordPiece tokenizer: Azerbaijani lowercasing, the same ids as the Hugging Face
// tokenizers library loading our tokenizer.json, and decode(encode(text)) = normalised text.
import { Tokenizer } from "@huggingface/tokenizers";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadTokenizer } from "../../corpus/load-tokenizer.js";
import { azLowercase, countWords, normalize, trainWordPiece, WordPieceTokenizer } from "../../corpus/tokenizer.js";
import { sampleText } from "../helpers/training.js";

describe("WordPiece tokenizer", () => {
  it("lowercases the Azerbaijani way", () => {
    expect(azLowercase("İSTİQLAL")).toBe("istiqlal");
    expect(azLowercase("IŞIQ")).toBe("ışıq");
    expect(azLowercase("Əlİ")).toBe("əli");
    expect("IŞIQ".toLowerCase()).not.toBe("ışıq"); // why we do not use the default
  });

  it("encodes like the Hugging Face library and round-trips clean text", async () => {
    const counts = await countWords([sampleText], { lowercase: true });
    const ours = new WordPieceTokenizer(trainWordPiece(counts, { vocabSize: 800, lowercase: true }), true);
    const hf = new Tokenizer(JSON.parse(ours.toJSON()), {});
    const lines = readFileSync(sampleText, "utf8").split("\n").filter(Boolean);
    const extra = ["İSTİQLAL küçəsində IŞIQ yandı, Əlİ müəllim gəldi.", "Naməlum sözlər: xyzqwv, ǂ, 12345!"];
    for (const line of [...lines.slice(0, 40), ...extra]) {
      const mine = ours.encode(line).ids;
      const cls = ours.special.cls,
        sep = ours.special.sep;
      expect(hf.encode(line).ids).toEqual([cls, ...mine, sep]);
    }
    for (const line of lines.slice(0, 40)) {
      if (/[-–"“”:;()]/u.test(line)) continue; // punctuation the decoder cannot place back
      expect(ours.decode(ours.encode(line).ids)).toBe(normalize(line, true));
    }
  });

  it("learns from every word with minWordCount 1: more merges from the same text, the same ids as the library", async () => {
    const counts = await countWords([sampleText], { lowercase: true });
    const usual = trainWordPiece(counts, { vocabSize: 5000, lowercase: true });
    const every = trainWordPiece(counts, { vocabSize: 5000, lowercase: true, minWordCount: 1 });
    expect(every.length).toBeGreaterThan(usual.length);
    const ours = new WordPieceTokenizer(every, true);
    const hf = new Tokenizer(JSON.parse(ours.toJSON()), {});
    for (const line of readFileSync(sampleText, "utf8").split("\n").filter(Boolean).slice(0, 20))
      expect(hf.encode(line).ids).toEqual([ours.special.cls, ...ours.encode(line).ids, ours.special.sep]);
  });

  it("marks word starts and refuses a tokenizer.json it cannot read", () => {
    const t = new WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b", "ab", "c"], false);
    expect(t.encode("abb c")).toEqual({ ids: [7, 6, 8], wordStarts: [1, 0, 1] });
    expect(() => loadTokenizer("/nonexistent/tokenizer.json")).toThrow(/cannot read tokenizer/);
  });
});
