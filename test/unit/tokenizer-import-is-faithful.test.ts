// tokenizer.json files shaped as the Hugging Face library writes them for BERT (uncased,
// BertNormalizer), RoBERTa (byte-level BPE) and SentencePiece conversions (Unigram with
// Metaspace; BPE with byte fallback) give the same ids in aze-run as in
// @huggingface/tokenizers on Azerbaijani text with capitals, accents and apostrophes; a
// setting aze-run cannot honour is one error line naming the file and the key.
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bpeWords, trainBpe } from "../../corpus/bpe.js";
import { loadTokenizer } from "../../corpus/load-tokenizer.js";
import { countWords, learnVocabulary, preTokenize, specialTokens, trainWordPiece } from "../../corpus/tokenizer.js";
import { removeDir, tempDir } from "../helpers/cluster.js";
import { sampleText } from "../helpers/training.js";

const dir = tempDir();
afterAll(() => removeDir(dir));

const sample = readFileSync(sampleText, "utf8").split("\n").filter(Boolean);
const lines = [
  ...sample.slice(0, 30),
  "ƏLİ İSMAYILOV IĞDIR-da, ŞUŞA-da və ÇİN-də olub; ÖZÜ ÜZÜMÇÜLÜKLƏ məşğuldur.",
  "Azərbaycan'ın paytaxtı Bakı'dır, Gəncə'yə isə qatarla getdik.",
  "İstiqlal küçəsində ışıq yandı: Ölkə, Ümid, Ğ, ğ, Ç, ç, Ş, ş, Ö, ö, Ü, ü, I, ı, İ, i, Ə, ə.",
  "Müəllim dedi: “Sabah saat 9:30-da görüşərik!” — Əlbəttə, gələcəyik…",
  "Tanış olmayan simvollar: 漢字, ǂ, ß, ﬁ, №5 və ２０２４.",
  "  İki  boşluq   və\ttab , sonda boşluq ",
  "Don't stop: it's 3.14 — O'Neil'in 'sitatı'.",
];

/** Ids from @huggingface/tokenizers for a file, with its [CLS]/[SEP] (or <s>/</s>). */
function hfIds(file: string): (line: string) => number[] {
  const hf = new HfTokenizer(JSON.parse(readFileSync(file, "utf8")), {});
  return (line) => hf.encode(line).ids;
}

function expectSameIds(file: string, text: string[] = lines) {
  const ours = loadTokenizer(file);
  const theirs = hfIds(file);
  const { cls, sep } = ours.special;
  for (const line of text) expect([cls, ...ours.encode(line).ids, sep], line).toEqual(theirs(line));
  return ours;
}

const write = (name: string, json: unknown) => {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(json, null, 2));
  return file;
};

const added = (id: number, content: string, extra: Record<string, unknown> = {}) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
  ...extra,
});

const template = (cls: string, clsId: number, sep: string, sepId: number) => ({
  type: "TemplateProcessing",
  single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
  pair: [
    { SpecialToken: { id: cls, type_id: 0 } },
    { Sequence: { id: "A", type_id: 0 } },
    { SpecialToken: { id: sep, type_id: 0 } },
    { Sequence: { id: "B", type_id: 1 } },
    { SpecialToken: { id: sep, type_id: 1 } },
  ],
  special_tokens: { [cls]: { id: cls, ids: [clsId], tokens: [cls] }, [sep]: { id: sep, ids: [sepId], tokens: [sep] } },
});

// ---- BERT --------------------------------------------------------------------------------------

/**
 * A BERT tokenizer.json as the library writes it: [PAD] 0, [unused…], [UNK] 100, [CLS] 101,
 * [SEP] 102, [MASK] 103, then the pieces; the vocabulary learned on text normalised the way
 * `normalizer` says (done here independently: NFD, drop marks, lowercase).
 */
async function bertFile(name: string, normalizer: Record<string, unknown>, normalize: (s: string) => string) {
  const counts = await countWords([sampleText], { lowercase: false, split: (l) => preTokenize(normalize(l)) });
  const learned = trainWordPiece(counts, { vocabSize: 900, lowercase: false }).filter((t) => !(specialTokens as readonly string[]).includes(t));
  const vocab = ["[PAD]", ...Array.from({ length: 99 }, (_, i) => `[unused${i}]`), "[UNK]", "[CLS]", "[SEP]", "[MASK]", ...learned];
  return write(name, {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [added(0, "[PAD]"), added(100, "[UNK]"), added(101, "[CLS]"), added(102, "[SEP]"), added(103, "[MASK]")],
    normalizer,
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: template("[CLS]", 101, "[SEP]", 102),
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  });
}

const bert = (lowercase: boolean, strip_accents: boolean | null) => ({
  type: "BertNormalizer",
  clean_text: true,
  handle_chinese_chars: true,
  strip_accents,
  lowercase,
});
const stripMarks = (s: string) => s.normalize("NFD").replace(/\p{Mn}/gu, "");

describe("a BERT tokenizer.json (WordPiece, BertNormalizer, BertPreTokenizer)", () => {
  it("uncased (strip_accents null follows lowercase): the same ids, capitals and accents folded, not [UNK]", async () => {
    const file = await bertFile("bert-uncased.json", bert(true, null), (s) => stripMarks(s).toLowerCase());
    const ours = expectSameIds(file);
    expect(ours.special).toEqual({ pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
    // "ƏLİ" is "əli" to an uncased BERT: known pieces, no [UNK].
    expect(ours.encode("ƏLİ ŞƏHƏRDƏ").ids).not.toContain(100);
    expect(ours.encode("ƏLİ ŞƏHƏRDƏ").ids).toEqual(ours.encode("əli səhərdə").ids);
  });

  it("lowercased with strip_accents false, and cased: the same ids", async () => {
    expectSameIds(await bertFile("bert-lower-accents.json", bert(true, false), (s) => s.toLowerCase()));
    expectSameIds(await bertFile("bert-cased.json", bert(false, null), (s) => s));
    expectSameIds(await bertFile("bert-cased-stripped.json", bert(false, true), stripMarks));
  });
});

// ---- RoBERTa -----------------------------------------------------------------------------------

/** A RoBERTa tokenizer.json: <s> 0, <pad> 1, </s> 2, <unk> 3, the byte-level pieces, <mask> last (lstrip). */
async function robertaFile(name: string, addPrefixSpace: boolean) {
  const counts = await countWords([sampleText], { lowercase: false, split: (l) => bpeWords(l, "bytelevel-bpe", false) });
  const { tokens, merges } = trainBpe(counts, "bytelevel-bpe", { vocabSize: 700 });
  const vocab = ["<s>", "<pad>", "</s>", "<unk>", ...tokens.filter((t) => !(specialTokens as readonly string[]).includes(t)), "<mask>"];
  const byteLevel = { type: "ByteLevel", add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true };
  return write(name, {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [added(0, "<s>"), added(1, "<pad>"), added(2, "</s>"), added(3, "<unk>"), added(vocab.length - 1, "<mask>", { lstrip: true })],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { type: "RobertaProcessing", sep: ["</s>", 2], cls: ["<s>", 0], trim_offsets: true, add_prefix_space: addPrefixSpace },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  });
}

describe("a RoBERTa tokenizer.json (byte-level BPE, RobertaProcessing)", () => {
  it("the same ids with and without add_prefix_space, <mask> in the text eating the space before it", async () => {
    for (const prefix of [false, true]) {
      const file = await robertaFile(`roberta-${prefix}.json`, prefix);
      const ours = expectSameIds(file, [...lines, "Bu <mask> şəhərdir və <mask>", "<s>başla</s>"]);
      expect(ours.special).toMatchObject({ cls: 0, pad: 1, sep: 2, unk: 3 });
      expect(ours.pairSeparators).toBe(2);
      expect(ours.decode(ours.encode("Azərbaycan'ın ƏLİ").ids)).toBe(prefix ? " Azərbaycan'ın ƏLİ" : "Azərbaycan'ın ƏLİ");
    }
  });
});

// ---- SentencePiece conversions -----------------------------------------------------------------

/** Word pieces of a WordPiece vocabulary as SentencePiece writes them: "▁" before a word's first piece, continuations bare. */
async function sentencePieces(normalize: (s: string) => string, size: number): Promise<string[]> {
  const counts = await countWords([sampleText], { lowercase: false, split: (l) => preTokenize(normalize(l)) });
  const pieces = trainWordPiece(counts, { vocabSize: size, lowercase: false })
    .filter((t) => !(specialTokens as readonly string[]).includes(t))
    .map((t) => (t.startsWith("##") ? t.slice(2) : `\u2581${t}`));
  return [...new Set(["\u2581", ...pieces])];
}

describe("SentencePiece-converted tokenizer.json files", () => {
  it("Unigram with Metaspace (ALBERT's normaliser: quotes, NFKD, StripAccents, Lowercase, spaces): the same ids", async () => {
    const normalize = (s: string) => stripMarks(s.replaceAll("``", '"').replaceAll("''", '"').normalize("NFKD")).toLowerCase();
    const pieces = await sentencePieces(normalize, 1200);
    const specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"];
    // Scores falling with rank: each cut pays per piece, so Viterbi prefers fewer, earlier pieces.
    const vocab = [...specials.map((s) => [s, 0]), ...pieces.map((p, i) => [p, -2 - i / 100])];
    const metaspace = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true };
    const file = write("albert.json", {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: specials.map((s, i) => added(i, s)),
      normalizer: {
        type: "Sequence",
        normalizers: [
          { type: "Replace", pattern: { String: "``" }, content: '"' },
          { type: "Replace", pattern: { String: "''" }, content: '"' },
          { type: "NFKD" },
          { type: "StripAccents" },
          { type: "Lowercase" },
          { type: "Replace", pattern: { Regex: " {2,}" }, content: " " },
        ],
      },
      pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "WhitespaceSplit" }, metaspace] },
      post_processor: template("[CLS]", 2, "[SEP]", 3),
      decoder: metaspace,
      model: { type: "Unigram", unk_id: 1, vocab, byte_fallback: false },
    });
    const ours = expectSameIds(file);
    expect(ours.special).toEqual({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    expect(ours.encode("漢字漢").ids).toEqual([ours.vocab.get("\u2581")!, 1]); // a run of unknown characters is one <unk>
  });

  /** A Llama-style BPE: <unk> <s> </s>, the 256 byte tokens, then pieces learned on "▁word"s; byte fallback for the rest. */
  async function spBpeVocab() {
    const counts = await countWords([sampleText], {
      lowercase: false,
      split: (l) =>
        l
          .split(/\s+/u)
          .filter(Boolean)
          .map((w) => `\u2581${w}`),
    });
    const { tokens, merges } = learnVocabulary(counts, 900, { name: "characters", pieces: (w) => [...w], join: (a, b) => a + b });
    const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    const vocab = ["<unk>", "<s>", "</s>", ...bytes, ...tokens.filter((t) => !(specialTokens as readonly string[]).includes(t)), "<pad>", "<mask>"];
    return { vocab, merges };
  }

  const spBpe = (vocab: string[], merges: [string, string][]) => ({
    type: "BPE",
    dropout: null,
    unk_token: "<unk>",
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    merges,
  });
  const spAdded = (vocab: string[]) => ["<unk>", "<s>", "</s>", "<pad>", "<mask>"].map((t) => added(vocab.indexOf(t), t));

  it("BPE with byte fallback, normaliser Prepend ▁ and Replace space → ▁ (no pre-tokeniser): the same ids", async () => {
    const { vocab, merges } = await spBpeVocab();
    const file = write("llama-legacy.json", {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: spAdded(vocab),
      normalizer: {
        type: "Sequence",
        normalizers: [
          { type: "Prepend", prepend: "\u2581" },
          { type: "Replace", pattern: { String: " " }, content: "\u2581" },
        ],
      },
      pre_tokenizer: null,
      post_processor: template("<s>", 1, "</s>", 2),
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "\u2581" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          { type: "Strip", content: " ", start: 1, stop: 0 },
        ],
      },
      model: spBpe(vocab, merges),
    });
    const ours = expectSameIds(file);
    // 漢 is not a token: its three UTF-8 bytes are.
    expect(ours.encode("漢").ids.slice(-3)).toEqual([0xe6, 0xbc, 0xa2].map((b) => b + 3));
    expect(ours.decode(ours.encode("Gəncə'yə 漢字 getdik").ids)).toBe("Gəncə'yə 漢字 getdik");
  });

  it("BPE with byte fallback under Metaspace (prepend_scheme first, no split) and NFKC: the same ids", async () => {
    const { vocab, merges } = await spBpeVocab();
    const metaspace = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
    const file = write("llama-metaspace.json", {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: spAdded(vocab),
      normalizer: { type: "NFKC" },
      pre_tokenizer: metaspace,
      post_processor: template("<s>", 1, "</s>", 2),
      decoder: metaspace,
      model: spBpe(vocab, merges),
    });
    expectSameIds(file, [...lines, "<s>Bakı</s> və <mask>"]);
  });
});

// ---- settings that cannot be honoured ----------------------------------------------------------

describe("a setting aze-run cannot honour", () => {
  it("is one error line naming the file and the key", async () => {
    const base = JSON.parse(readFileSync(await bertFile("bert-base.json", bert(true, null), (s) => stripMarks(s).toLowerCase()), "utf8"));
    const cases: [string, (j: Record<string, unknown> & { model: Record<string, unknown> }) => void, RegExp][] = [
      [
        "precompiled",
        (j) => {
          j.normalizer = { type: "Precompiled", precompiled_charsmap: "AAAA" };
        },
        /: normalizer\.type "Precompiled" is not supported: /,
      ],
      [
        "precompiled-in-sequence",
        (j) => {
          j.normalizer = { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Precompiled", precompiled_charsmap: "AAAA" }] };
        },
        /: normalizer\.normalizers\[1\]\.type "Precompiled" is not supported: /,
      ],
      [
        "regex",
        (j) => {
          j.normalizer = { type: "Replace", pattern: { Regex: "\\s+" }, content: " " };
        },
        /: normalizer\.pattern \{"Regex":"\\\\s\+"\} is not supported: /,
      ],
      [
        "whitespace",
        (j) => {
          j.pre_tokenizer = { type: "Whitespace" };
        },
        /: pre_tokenizer\.type "Whitespace" is not supported: /,
      ],
      [
        "split",
        (j) => {
          j.pre_tokenizer = { type: "Split", pattern: { Regex: "\\w+" }, behavior: "Isolated", invert: false };
        },
        /: pre_tokenizer\.type "Split"/,
      ],
      [
        "prepend-scheme",
        (j) => {
          j.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "sometimes", split: true };
        },
        /: pre_tokenizer\.prepend_scheme "sometimes" is not supported: /,
      ],
      [
        "wordlevel",
        (j) => {
          j.model.type = "WordLevel";
        },
        /: model\.type "WordLevel" is not supported: /,
      ],
      [
        "no-post-processor",
        (j) => {
          j.post_processor = null;
        },
        /: post_processor null is not supported: /,
      ],
      [
        "t5-template",
        (j) => {
          j.post_processor = {
            ...template("[CLS]", 101, "[SEP]", 102),
            single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
          };
        },
        /: post_processor\.single \[.*\] is not supported: /,
      ],
      [
        "normalized-added",
        (j) => {
          (j.added_tokens as { normalized: boolean }[])[2]!.normalized = true;
        },
        /: added_tokens\[2\]\.normalized true is not supported: /,
      ],
      [
        "truncation",
        (j) => {
          j.truncation = { max_length: 512, strategy: "LongestFirst", stride: 0 };
        },
        /: truncation \{.*\} is not supported: /,
      ],
    ];
    for (const [name, change, message] of cases) {
      const json = structuredClone(base);
      change(json);
      const file = write(`bad-${name}.json`, json);
      let error: Error | undefined;
      try {
        loadTokenizer(file);
      } catch (err) {
        error = err as Error;
      }
      expect(error?.message, name).toMatch(message);
      expect(error!.message.startsWith(file), name).toBe(true);
      expect(error!.message, name).not.toContain("\n");
    }
    // BPE settings: dropout makes ids random, a continuing-subword prefix is not read.
    const roberta = JSON.parse(readFileSync(await robertaFile("roberta-base.json", false), "utf8"));
    for (const [key, value, message] of [
      ["dropout", 0.1, /: model\.dropout 0\.1 is not supported: /],
      ["continuing_subword_prefix", "##", /: model\.continuing_subword_prefix "##" is not supported: /],
    ] as const) {
      const file = write(`bad-${key}.json`, { ...roberta, model: { ...roberta.model, [key]: value } });
      expect(() => loadTokenizer(file)).toThrow(message);
    }
  });
});
