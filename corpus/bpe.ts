// BPE tokenizers: `bpe` (characters of BERT-style words, the last one marked with the
// end-of-word suffix </w>) and `bytelevel-bpe` (GPT-2's byte alphabet and pre-tokenizer, so
// no text is ever unknown). Training, encoding, decoding and the Hugging Face tokenizer.json.
//
// Owns: the BPE alphabets, the merge ranks, and an encoder that gives the same ids as the
// Hugging Face libraries for our files: merges applied lowest rank first, the leftmost of
// equal ranks first; a symbol outside the vocabulary is one [UNK] (bpe only).
// Never: learns merges differently from WordPiece: both use tokenizer.ts's learnVocabulary.
import type { FileParts } from "./tokenizer-file.js";
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
export const charToByte = new Map(byteToChar.map((c, b) => [c, b]));

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
  return byteLevelWords(normal, true, true);
}

/**
 * The ByteLevel pre-tokenizer: a leading space added unless the text starts with one
 * (`addPrefixSpace`), cut by GPT-2's pattern (`useRegex`), each piece's UTF-8 bytes written
 * in the byte alphabet.
 */
export function byteLevelWords(text: string, addPrefixSpace: boolean, useRegex: boolean): string[] {
  const spaced = addPrefixSpace && !text.startsWith(" ") ? ` ${text}` : text;
  const pieces = useRegex ? (spaced.match(byteLevelPattern) ?? []) : [spaced];
  return pieces.map((piece) => Array.from(Buffer.from(piece, "utf8"), (b) => byteToChar[b]!).join(""));
}

/** A word's starting symbols: its characters, the last with the end-of-word suffix where there is one. */
function symbolsOf(word: string, suffix: string | null): string[] {
  const chars = [...word];
  if (suffix) chars[chars.length - 1] += suffix;
  return chars;
}

/**
 * Learns a BPE vocabulary and its merges from word counts (counted with `bpeWords`):
 * special tokens, then the alphabet (byte-level: all 256 byte characters; bpe: every
 * character seen, with and without </w>), then one piece per merge.
 */
export function trainBpe(
  counts: Map<string, number>,
  kind: BpeKind,
  opts: Pick<TrainOptions, "vocabSize" | "minWordCount">,
): { tokens: string[]; merges: [string, string][] } {
  const alphabet = kind === "bytelevel-bpe" ? byteToChar : undefined;
  return learnVocabulary(counts, opts.vocabSize, {
    name: "symbols",
    pieces: (word) => symbolsOf(word, kind === "bpe" ? SUFFIX : null),
    join: (a, b) => a + b,
    alphabet,
    minWordCount: opts.minWordCount,
  });
}

/** The settings of a BPE model section (Hugging Face's names in comments). */
export interface BpeModel {
  /** end_of_word_suffix: marks a word's last symbol (null: none). */
  suffix: string | null;
  /** unk_token: what a symbol outside the vocabulary becomes (null: it is dropped). */
  unk: string | null;
  /** byte_fallback: a symbol outside the vocabulary becomes its bytes, <0xXX>, where all are tokens. */
  byteFallback: boolean;
  /** ignore_merges: a word that is itself a token is that token. */
  ignoreMerges: boolean;
  /** fuse_unk: a run of unknown symbols in a word is one unknown token. */
  fuseUnk: boolean;
}

const ownModel = (kind: BpeKind): BpeModel => ({
  suffix: kind === "bpe" ? SUFFIX : null,
  unk: kind === "bpe" ? "[UNK]" : null,
  byteFallback: false,
  ignoreMerges: false,
  fuseUnk: false,
});

/** The <0xXX> tokens of a text's UTF-8 bytes, or undefined where one is missing from the vocabulary. */
export function byteTokens(text: string, vocab: Map<string, number>): number[] | undefined {
  const ids: number[] = [];
  for (const b of Buffer.from(text, "utf8")) {
    const id = vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    if (id === undefined) return undefined;
    ids.push(id);
  }
  return ids;
}

export class BpeTokenizer extends Tokenizer {
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();
  private readonly unkId: number | undefined;

  constructor(
    readonly kind: BpeKind,
    tokens: string[],
    readonly merges: [string, string][],
    lowercase: boolean,
    hash?: string,
    file?: FileParts,
    readonly model: BpeModel = ownModel(kind),
  ) {
    super(tokens, lowercase, hash, file);
    this.ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    this.unkId = model.unk === null ? undefined : this.vocab.get(model.unk);
  }

  protected words(text: string): string[] {
    return bpeWords(text, this.kind, this.lowercase);
  }

  /**
   * Merges by rank: the lowest-ranked adjacent pair first, the leftmost of equals first. A
   * symbol outside the vocabulary becomes its bytes (byte fallback), else the unknown token
   * (one for a run of them with fuse_unk), else nothing.
   */
  protected pieces(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const whole = this.model.ignoreMerges ? this.vocab.get(word) : undefined;
    if (whole !== undefined) return [whole];
    const symbols = symbolsOf(word, this.model.suffix);
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
    const ids: number[] = [];
    let lastUnknown = false;
    for (const s of symbols) {
      const id = this.vocab.get(s);
      const bytes = id === undefined && this.model.byteFallback ? byteTokens(s, this.vocab) : undefined;
      if (id !== undefined) ids.push(id);
      else if (bytes) ids.push(...bytes);
      else if (this.unkId !== undefined && !(this.model.fuseUnk && lastUnknown)) ids.push(this.unkId);
      lastUnknown = id === undefined && !bytes;
    }
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
