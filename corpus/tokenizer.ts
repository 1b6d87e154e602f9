// Tokenizers: training a WordPiece vocabulary on Azerbaijani text, encoding and decoding
// with it, and the Hugging Face `tokenizer.json` that carries it elsewhere; the merge loop
// and the base class the BPE tokenizers of bpe.ts share (load-tokenizer.ts reads either).
//
// Owns: normalisation (NFC; Azerbaijani-aware lowercasing where asked), pre-tokenisation
// (whitespace and punctuation, as Hugging Face's BertPreTokenizer), the trainer, and the
// encoder, which must give the same ids as the Hugging Face libraries for our files.
// Never: reads a whole corpus into memory: the trainer streams lines and keeps word
// counts only, pruning rare words when the table grows past its bound.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { UserError } from "../runtime/errors.js";
import type { FileParts } from "./tokenizer-file.js";

export const specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] as const;
export interface SpecialIds {
  pad: number;
  unk: number;
  cls: number;
  sep: number;
  mask: number;
}

// ---- normalisation and pre-tokenisation --------------------------------------------------

/**
 * Lowercasing for Azerbaijani: I → ı and İ → i (String.prototype.toLowerCase maps I → i and
 * İ → i̇, both wrong here), then the ordinary lowercase for everything else.
 */
export function azLowercase(text: string): string {
  return text.replace(/I/g, "ı").replace(/İ/g, "i").toLowerCase();
}

export function normalize(text: string, lowercase: boolean): string {
  const nfc = text.normalize("NFC");
  return lowercase ? azLowercase(nfc) : nfc;
}

/** Hugging Face's notion of punctuation: ASCII symbols and every Unicode P* character. */
const punctuation = /[!-/:-@[-`{-~]|\p{P}/u;
const whitespace = /\s/u;

/** Words and punctuation marks, in order (BertPreTokenizer's rule). */
export function preTokenize(text: string): string[] {
  const out: string[] = [];
  let word = "";
  for (const ch of text) {
    if (whitespace.test(ch)) {
      if (word) out.push(word);
      word = "";
    } else if (punctuation.test(ch)) {
      if (word) out.push(word);
      out.push(ch);
      word = "";
    } else word += ch;
  }
  if (word) out.push(word);
  return out;
}

/** Where preTokenize's words and punctuation marks lie in `text`: [start, end) in UTF-16 units, so a character offset maps to a word. */
export function wordSpans(text: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let from = -1;
  let at = 0;
  for (const ch of text) {
    const space = whitespace.test(ch);
    if (space || punctuation.test(ch)) {
      if (from >= 0) out.push({ start: from, end: at });
      from = -1;
      if (!space) out.push({ start: at, end: at + ch.length });
    } else if (from < 0) from = at;
    at += ch.length;
  }
  if (from >= 0) out.push({ start: from, end: at });
  return out;
}

// ---- training -------------------------------------------------------------------------------

/**
 * Pairs rarer than this are not merged; by default words seen fewer times are not used to
 * learn merges either (TrainOptions.minWordCount).
 */
const minFrequency = 2;
/** The word table is pruned (rarest first) when it holds more words than this. */
const maxWords = 2_000_000;

export interface TrainOptions {
  vocabSize: number;
  lowercase: boolean;
  onProgress?: (bytesRead: number) => void;
  /** How a line becomes words; default: normalise, then preTokenize. */
  split?: (line: string) => string[];
  /**
   * Words seen fewer times than this add to the alphabet but not to the merges (default 2).
   * 1 learns from every word: in Azerbaijani most word forms are rare, and their suffixes are
   * what the merges should learn (docs/corpus.md: 1.5–2% fewer tokens per word on held-out
   * text); 2 stays the default so existing runs train the same tokenizer.
   */
  minWordCount?: number;
}

/** Counts words over files, line by line, with bounded memory. */
export async function countWords(files: string[], opts: Pick<TrainOptions, "lowercase" | "onProgress" | "split">): Promise<Map<string, number>> {
  const split = opts.split ?? ((line: string) => preTokenize(normalize(line, opts.lowercase)));
  const counts = new Map<string, number>();
  let bytes = 0;
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
    for await (const line of lines) {
      bytes += Buffer.byteLength(line) + 1;
      for (const w of split(line)) counts.set(w, (counts.get(w) ?? 0) + 1);
      if (counts.size > maxWords) prune(counts, maxWords / 2);
      opts.onProgress?.(bytes);
    }
  }
  return counts;
}

function prune(counts: Map<string, number>, keep: number): void {
  const sorted = [...counts.values()].sort((a, b) => b - a);
  const floor = sorted[Math.floor(keep)] ?? 0;
  for (const [w, c] of counts) if (c <= floor) counts.delete(w);
}

/**
 * Learns a WordPiece vocabulary: every word starts as its characters (continuations
 * prefixed with ##), then the most frequent adjacent pair is merged until the vocabulary
 * is full. Ties break on the pair's text, so training is deterministic.
 */
export function trainWordPiece(counts: Map<string, number>, opts: TrainOptions): string[] {
  const pieces = (word: string) => [...word].map((c, i) => (i === 0 ? c : `##${c}`));
  return learnVocabulary(counts, opts.vocabSize, { name: "characters", pieces, join: (a, b) => a + b.slice(2), minWordCount: opts.minWordCount }).tokens;
}

/**
 * The training WordPiece and BPE share. Each word starts as its `pieces`, in the sorted
 * order of the words; words seen fewer than `minWordCount` times (default `minFrequency`),
 * or longer than 100 characters, add to the alphabet but not to the merges. The vocabulary: the special
 * tokens, the `alphabet` (default: every starting piece, in order of first appearance),
 * then the pieces `learnMerges` makes.
 */
export function learnVocabulary(
  counts: Map<string, number>,
  vocabSize: number,
  symbols: { name: string; pieces: (word: string) => string[]; join: (a: string, b: string) => string; alphabet?: string[]; minWordCount?: number },
): { tokens: string[]; merges: [string, string][] } {
  const seen = new Set<string>();
  const words: { pieces: string[]; count: number }[] = [];
  for (const [word, count] of [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const p = symbols.pieces(word);
    for (const x of p) seen.add(x);
    if (count >= (symbols.minWordCount ?? minFrequency) && p.length <= 100) words.push({ pieces: p, count });
  }
  const vocab = new Set<string>([...specialTokens, ...(symbols.alphabet ?? seen)]);
  if (vocab.size > vocabSize)
    throw new UserError(`--vocab-size ${vocabSize} is smaller than the ${vocab.size} ${symbols.name} and special tokens of this text: raise it.`);
  const merges = learnMerges(words, vocab, vocabSize, symbols.join);
  return { tokens: [...vocab], merges };
}

/**
 * The merge loop WordPiece and BPE share: the most frequent adjacent pair of pieces (ties
 * broken on the pair's text) is merged in every word and its result added to `vocab`,
 * until `vocab` holds `vocabSize` pieces or the best pair is rarer than `minFrequency`.
 * Pair counts are kept up to date as words change. Returns the merges in order (two pairs
 * can make the same piece, a·bc and ab·c: both are merges, the piece is added once).
 */
function learnMerges(
  words: { pieces: string[]; count: number }[],
  vocab: Set<string>,
  vocabSize: number,
  join: (a: string, b: string) => string,
): [string, string][] {
  const pairKey = (a: string, b: string) => `${a}\u0000${b}`;
  const pairs = new Map<string, number>();
  const where = new Map<string, Set<number>>();
  const changed = new Set<string>();
  const addPairs = (w: number, sign: number) => {
    const { pieces, count } = words[w]!;
    for (let i = 0; i + 1 < pieces.length; i++) {
      const key = pairKey(pieces[i]!, pieces[i + 1]!);
      const c = (pairs.get(key) ?? 0) + sign * count;
      if (c > 0) pairs.set(key, c);
      else pairs.delete(key);
      changed.add(key);
      if (sign > 0) (where.get(key) ?? where.set(key, new Set()).get(key)!).add(w);
    }
  };
  // The best pair comes from a max-heap (count, then the pair's text) whose entries go
  // stale when a count changes: a popped entry counts only if it matches the table.
  const heap = new PairHeap();
  const pushChanged = () => {
    for (const key of changed) if (pairs.has(key)) heap.push(pairs.get(key)!, key);
    changed.clear();
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);
  pushChanged();
  const merges: [string, string][] = [];
  while (vocab.size < vocabSize) {
    let best = heap.pop();
    while (best && pairs.get(best.key) !== best.count) best = heap.pop();
    if (!best || best.count < minFrequency) break;
    const [a, b] = best.key.split("\u0000") as [string, string];
    const merged = join(a, b);
    for (const w of where.get(best.key) ?? []) {
      addPairs(w, -1);
      const p = words[w]!.pieces;
      const next: string[] = [];
      for (let i = 0; i < p.length; i++) {
        if (i + 1 < p.length && p[i] === a && p[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(p[i]!);
      }
      words[w]!.pieces = next;
      addPairs(w, 1);
    }
    pairs.delete(best.key);
    where.delete(best.key);
    pushChanged();
    merges.push([a, b]);
    vocab.add(merged);
  }
  return merges;
}

/** A binary max-heap of (count, pair): the higher count first, then the smaller text. */
class PairHeap {
  private readonly entries: { count: number; key: string }[] = [];

  private before(i: number, j: number): boolean {
    const a = this.entries[i]!;
    const b = this.entries[j]!;
    return a.count > b.count || (a.count === b.count && a.key < b.key);
  }

  private swap(i: number, j: number): void {
    [this.entries[i], this.entries[j]] = [this.entries[j]!, this.entries[i]!];
  }

  push(count: number, key: string): void {
    this.entries.push({ count, key });
    for (let i = this.entries.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: string } | undefined {
    const top = this.entries[0];
    const last = this.entries.pop()!;
    if (this.entries.length > 0) {
      this.entries[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.entries.length && this.before(l, m)) m = l;
        if (r < this.entries.length && this.before(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

// ---- the tokenizer ---------------------------------------------------------------------------

/**
 * What every tokenizer type gives the rest of aze-run (WordPiece here, BPE in bpe.ts), and
 * what they share: a vocabulary holding the special tokens, text cut into words and each
 * word into pieces, decoding that drops special tokens, and the parts of tokenizer.json that
 * do not depend on the model (normaliser, special tokens, the [CLS] … [SEP] template).
 */
export abstract class Tokenizer {
  readonly vocab: Map<string, number>;
  readonly special: SpecialIds;
  /** [SEP]s between the two texts of a pair: 1 ([CLS] a [SEP] b [SEP]), 2 for RoBERTa's template. */
  readonly pairSeparators: number;

  /**
   * `lowercase` is how we train and write a tokenizer; one read from a tokenizer.json
   * (`file`, load-tokenizer.ts) normalises, splits, frames and decodes as the file says.
   */
  constructor(
    readonly tokens: string[],
    readonly lowercase: boolean,
    private knownHash?: string,
    protected readonly file?: FileParts,
  ) {
    this.vocab = new Map(tokens.map((t, i) => [t, i]));
    const names = file?.specialTokens ?? { pad: "[PAD]", unk: "[UNK]", cls: "[CLS]", sep: "[SEP]", mask: "[MASK]" };
    const id = (t: string) => {
      const i = this.vocab.get(t);
      if (i === undefined) throw new UserError(`tokenizer has no ${t} token`);
      return i;
    };
    this.special = { pad: id(names.pad), unk: id(names.unk), cls: id(names.cls), sep: id(names.sep), mask: id(names.mask) };
    this.pairSeparators = file?.pairSeparators ?? 1;
  }

  /** sha256 of the tokenizer.json text: recorded by shards and checkpoints. */
  get hash(): string {
    this.knownHash ??= createHash("sha256").update(this.toJSON()).digest("hex");
    return this.knownHash;
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** The words of a text, normalised. */
  protected abstract words(text: string): string[];
  /** A word's token ids. */
  protected abstract pieces(word: string): number[];
  /** Text from the tokens of `decode`'s ids, special tokens other than [UNK] already dropped. */
  protected abstract join(tokens: string[]): string;
  /** The model-specific parts of tokenizer.json. */
  protected abstract hubParts(): { pre_tokenizer: unknown; decoder: unknown; model: unknown };

  /**
   * Token ids of a text, without [CLS]/[SEP] (the dataset adds them per sequence), and
   * wordStarts: 1 where a token starts a word (not a continuation).
   */
  encode(text: string): { ids: number[]; wordStarts: number[] } {
    const ids: number[] = [];
    const wordStarts: number[] = [];
    for (const word of this.file ? this.file.segments(text) : this.words(text)) {
      // A number is an added token written in the text (a file's special token): its id as is.
      const pieces = typeof word === "number" ? [word] : this.pieces(word);
      pieces.forEach((id, i) => {
        ids.push(id);
        wordStarts.push(i === 0 ? 1 : 0);
      });
    }
    return { ids, wordStarts };
  }

  decode(ids: number[]): string {
    const specials = new Set(Object.values(this.special));
    const tokens = ids.filter((id) => !specials.has(id) || id === this.special.unk).map((id) => this.tokens[id] ?? this.tokens[this.special.unk]!);
    return this.file ? this.file.join(tokens) : this.join(tokens);
  }

  /** The Hugging Face tokenizer.json of this tokenizer (for one read from a file, that file's text). */
  toJSON(): string {
    if (this.file) return this.file.json;
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
    const { pre_tokenizer, decoder, model } = this.hubParts();
    return JSON.stringify({
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: specialTokens.map((content) => ({
        id: ids(content),
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }, ...lower] },
      pre_tokenizer,
      post_processor: {
        type: "TemplateProcessing",
        single: [special("[CLS]"), { Sequence: { id: "A", type_id: 0 } }, special("[SEP]")],
        pair: [special("[CLS]"), { Sequence: { id: "A", type_id: 0 } }, special("[SEP]"), { Sequence: { id: "B", type_id: 1 } }, special("[SEP]", 1)],
        special_tokens: Object.fromEntries(["[CLS]", "[SEP]"].map((t) => [t, { id: t, ids: [ids(t)], tokens: [t] }])),
      },
      decoder,
      model,
    });
  }
}

/** The settings of a WordPiece model section: continuing_subword_prefix and max_input_chars_per_word. */
export interface WordPieceModel {
  prefix: string;
  maxChars: number;
}

export class WordPieceTokenizer extends Tokenizer {
  constructor(
    tokens: string[],
    lowercase: boolean,
    hash?: string,
    file?: FileParts,
    readonly model: WordPieceModel = { prefix: "##", maxChars: 100 },
  ) {
    super(tokens, lowercase, hash, file);
  }

  protected words(text: string): string[] {
    return preTokenize(normalize(text, this.lowercase));
  }

  /** Greedy longest-match-first, as the WordPiece model: a word that cannot be covered is [UNK]. */
  protected pieces(word: string): number[] {
    const chars = [...word];
    if (chars.length > this.model.maxChars) return [this.special.unk];
    const out: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: number | undefined;
      while (start < end) {
        const piece = (start > 0 ? this.model.prefix : "") + chars.slice(start, end).join("");
        found = this.vocab.get(piece);
        if (found !== undefined) break;
        end--;
      }
      if (found === undefined) return [this.special.unk];
      out.push(found);
      start = end;
    }
    return out;
  }

  /** Continuations glued, no space before , . ! ? */
  protected join(tokens: string[]): string {
    let out = "";
    for (const t of tokens) out += t.startsWith("##") ? t.slice(2) : (out ? " " : "") + t;
    return out.replace(/ ([.,!?])/g, "$1");
  }

  protected hubParts() {
    return {
      pre_tokenizer: { type: "BertPreTokenizer" },
      decoder: { type: "WordPiece", prefix: "##", cleanup: true },
      model: {
        type: "WordPiece",
        unk_token: "[UNK]",
        continuing_subword_prefix: "##",
        max_input_chars_per_word: 100,
        vocab: Object.fromEntries(this.tokens.map((t, i) => [t, i])),
      },
    };
  }
}
