// BPE tokenizers: `bpe` (characters of BERT-style words, the last one marked with the
// end-of-word suffix </w>) and `bytelevel-bpe` (GPT-2's byte alphabet and pre-tokenizer, so
// no text is ever unknown). Training, encoding, decoding and the Hugging Face tokenizer.json.
//
// Owns: the BPE alphabets, the merge ranks, and an encoder that gives the same ids as the
// Hugging Face libraries for our files: merges applied lowest rank first, the leftmost of
// equal ranks first; a symbol outside the vocabulary is one [UNK] (bpe only).
// Never: learns merges differently from WordPiece: both use tokenizer.ts's learnVocabulary.
import { learnVocabulary, normalize, preTokenize, Tokenizer, type TrainOptions } from "./tokenizer.js";

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
export function trainBpe(counts: Map<string, number>, kind: BpeKind, opts: Pick<TrainOptions, "vocabSize">): { tokens: string[]; merges: [string, string][] } {
  const alphabet = kind === "bytelevel-bpe" ? byteToChar : undefined;
  return learnVocabulary(counts, opts.vocabSize, { name: "symbols", pieces: (word) => symbolsOf(word, kind), join: (a, b) => a + b, alphabet });
}

export class BpeTokenizer extends Tokenizer {
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();

  constructor(
    readonly kind: BpeKind,
    tokens: string[],
    readonly merges: [string, string][],
    lowercase: boolean,
    hash?: string,
  ) {
    super(tokens, lowercase, hash);
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  }

  protected words(text: string): string[] {
    return bpeWords(text, this.kind, this.lowercase);
  }

  /** Merges by rank: the lowest-ranked adjacent pair first, the leftmost of equals first. */
  protected pieces(word: string): number[] {
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
   * bytelevel-bpe: the bytes back, the leading space the encoder added removed: lossless for
   * normalised text. bpe: words joined by spaces, no space before , . ! ? (as WordPiece's decoder).
   */
  protected join(tokens: string[]): string {
    if (this.kind === "bytelevel-bpe") {
      const bytes = tokens.flatMap((t) => (t === "[UNK]" ? [] : Array.from(t, (c) => charToByte.get(c) ?? 0x3f)));
      const text = Buffer.from(bytes).toString("utf8");
      return text.startsWith(" ") ? text.slice(1) : text;
    }
    let out = "";
    for (const t of tokens) out += t.endsWith(SUFFIX) ? `${t.slice(0, -SUFFIX.length)} ` : t;
    return out.trim().replace(/ ([.,!?])/g, "$1");
  }

  protected hubParts() {
    const byteLevel = this.kind === "bytelevel-bpe";
    const byteLevelParts = { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true };
    return {
      pre_tokenizer: byteLevel ? byteLevelParts : { type: "BertPreTokenizer" },
      decoder: byteLevel ? byteLevelParts : { type: "BPEDecoder", suffix: SUFFIX },
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
    };
  }
}
