// BPE tokenizers: `bpe` (characters of BERT-style words, the last one marked with the
// end-of-word suffix </w>) and `bytelevel-bpe` (GPT-2's byte alphabet and pre-tokenizer, so
// no text is ever unknown). Training, encoding, decoding and the Hugging Face tokenizer.json.
//
// Owns: the BPE alphabets, the merge ranks, and an encoder that gives the same ids as the
// Hugging Face libraries for our files: merges applied lowest rank first, the leftmost of
// equal ranks first; a symbol outside the vocabulary is one [UNK] (bpe only).
// Never: learns merges differently from WordPiece: both use tokenizer.ts's learnMerges.
import { createHash } from "node:crypto";
import { UserError } from "../runtime/errors.js";
import { learnMerges, normalize, preTokenize, specialTokens, startingPieces, type Encoding, type SpecialIds, type TrainOptions } from "./tokenizer.js";

export type BpeKind = "bpe" | "bytelevel-bpe";
const SUFFIX = "</w>";

/**
 * GPT-2's reversible map from the 256 bytes to printable characters: printable Latin-1
 * bytes stand for themselves, the others (controls, space) are moved to U+0100 onwards.
 */
export const byteToChar: string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : next++));
  return out;
})();
const charToByte = new Map(byteToChar.map((c, b) => [c, b]));

/** GPT-2's pre-tokenizer: contractions, letters, numbers, other symbols, each with an optional leading space. */
const byteLevelPattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * The words BPE learns on and encodes. bpe: BertPreTokenizer's words. bytelevel-bpe: the
 * text with one leading space (so a first word looks like any other), cut by GPT-2's
 * pattern, each piece's UTF-8 bytes written in the byte alphabet.
 */
export function bpeWords(text: string, kind: BpeKind, lowercase: boolean): string[] {
  const normal = normalize(text, lowercase);
  if (kind === "bpe") return preTokenize(normal);
  const spaced = normal.startsWith(" ") ? normal : ` ${normal}`;
  return (spaced.match(byteLevelPattern) ?? []).map((piece) => Array.from(Buffer.from(piece, "utf8"), (b) => byteToChar[b]!).join(""));
}

/** A word's starting symbols: its characters, the last with </w> (bpe); its byte characters (byte-level). */
function symbolsOf(word: string, kind: BpeKind): string[] {
  const chars = [...word];
  if (kind === "bpe") chars[chars.length - 1] += SUFFIX;
  return chars;
}

/**
 * Learns a BPE vocabulary and its merges from word counts (counted with `bpeWords`):
 * special tokens, then the alphabet (byte-level: all 256 byte characters; bpe: every
 * character seen, with and without </w>), then one piece per merge.
 */
export function trainBpe(counts: Map<string, number>, kind: BpeKind, opts: Pick<TrainOptions, "vocabSize" | "minFrequency">): { tokens: string[]; merges: [string, string][] } {
  const { alphabet, words } = startingPieces(counts, opts.minFrequency, (word) => symbolsOf(word, kind));
  const vocab = new Set<string>([...specialTokens, ...(kind === "bytelevel-bpe" ? byteToChar : alphabet)]);
  if (vocab.size > opts.vocabSize) throw new UserError(`--vocab-size ${opts.vocabSize} is smaller than the ${vocab.size} symbols and special tokens of this text: raise it.`);
  const merges = learnMerges(words, vocab, opts.vocabSize, opts.minFrequency ?? 2, (a, b) => a + b);
  return { tokens: [...vocab], merges };
}

export class BpeTokenizer {
  readonly vocab: Map<string, number>;
  readonly special: SpecialIds;
  readonly hash: string;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();

  constructor(
    readonly kind: BpeKind,
    readonly tokens: string[],
    readonly merges: [string, string][],
    readonly lowercase: boolean,
    hash?: string,
  ) {
    this.vocab = new Map(tokens.map((t, i) => [t, i]));
    const id = (t: string) => {
      const i = this.vocab.get(t);
      if (i === undefined) throw new UserError(`tokenizer has no ${t} token`);
      return i;
    };
    this.special = { pad: id("[PAD]"), unk: id("[UNK]"), cls: id("[CLS]"), sep: id("[SEP]"), mask: id("[MASK]") };
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    this.hash = hash ?? createHash("sha256").update(this.toJSON()).digest("hex");
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** Token ids of a text, without [CLS]/[SEP]; the first piece of each word is a word start. */
  encode(text: string): Encoding {
    const ids: number[] = [];
    const wordStarts: number[] = [];
    for (const word of bpeWords(text, this.kind, this.lowercase)) {
      this.pieces(word).forEach((id, i) => {
        ids.push(id);
        wordStarts.push(i === 0 ? 1 : 0);
      });
    }
    return { ids, wordStarts };
  }

  /** Merges by rank: the lowest-ranked adjacent pair first, the leftmost of equals first. */
  private pieces(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const symbols = symbolsOf(word, this.kind);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) [best, bestRank] = [i, rank];
      }
      if (best < 0) break;
      symbols.splice(best, 2, symbols[best]! + symbols[best + 1]!);
    }
    const ids = symbols.map((s) => this.vocab.get(s) ?? this.special.unk);
    if (this.cache.size < 200_000) this.cache.set(word, ids);
    return ids;
  }

  /**
   * Text from ids, special tokens dropped. bytelevel-bpe: the bytes back, the leading space
   * the encoder added removed: lossless for normalised text. bpe: words joined by spaces,
   * no space before , . ! ? (as WordPiece's decoder).
   */
  decode(ids: number[]): string {
    const specials = new Set(Object.values(this.special));
    const kept = ids.filter((id) => !specials.has(id) || id === this.special.unk).map((id) => this.tokens[id] ?? "[UNK]");
    if (this.kind === "bytelevel-bpe") {
      const bytes = kept.flatMap((t) => (t === "[UNK]" ? [] : Array.from(t, (c) => charToByte.get(c) ?? 0x3f)));
      const text = Buffer.from(bytes).toString("utf8");
      return text.startsWith(" ") ? text.slice(1) : text;
    }
    let out = "";
    for (const t of kept) out += t.endsWith(SUFFIX) ? `${t.slice(0, -SUFFIX.length)} ` : t;
    return out.trim().replace(/ ([.,!?])/g, "$1");
  }

  /** The Hugging Face tokenizer.json of this tokenizer. */
  toJSON(): string {
    const ids = (t: string) => this.vocab.get(t)!;
    const lower = this.lowercase
      ? [
          // The Lowercase normaliser is not Azerbaijani-aware: fold the dotted and dotless I first.
          { type: "Replace", pattern: { String: "I" }, content: "ı" },
          { type: "Replace", pattern: { String: "İ" }, content: "i" },
          { type: "Lowercase" },
        ]
      : [];
    const special = (t: string, typeId = 0) => ({ SpecialToken: { id: t, type_id: typeId } });
    const byteLevel = this.kind === "bytelevel-bpe";
    return JSON.stringify({
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: specialTokens.map((content) => ({ id: ids(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }, ...lower] },
      pre_tokenizer: byteLevel ? { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true } : { type: "BertPreTokenizer" },
      post_processor: {
        type: "TemplateProcessing",
        single: [special("[CLS]"), { Sequence: { id: "A", type_id: 0 } }, special("[SEP]")],
        pair: [special("[CLS]"), { Sequence: { id: "A", type_id: 0 } }, special("[SEP]"), { Sequence: { id: "B", type_id: 1 } }, special("[SEP]", 1)],
        special_tokens: Object.fromEntries(["[CLS]", "[SEP]"].map((t) => [t, { id: t, ids: [ids(t)], tokens: [t] }])),
      },
      decoder: byteLevel ? { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true } : { type: "BPEDecoder", suffix: SUFFIX },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: byteLevel ? null : "[UNK]",
        continuing_subword_prefix: null,
        end_of_word_suffix: byteLevel ? null : SUFFIX,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(this.tokens.map((t, i) => [t, i])),
        merges: this.merges.map(([a, b]) => [a, b]),
      },
    });
  }
}
