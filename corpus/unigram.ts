// The Unigram model of SentencePiece-converted tokenizer.json files (XLM-R, ALBERT, T5 and
// their kind): each word is cut into the pieces whose scores (log probabilities) sum highest.
//
// Owns: the Viterbi search as the Hugging Face library does it: candidates at each position
// in order of length, a character no piece covers becomes the unknown token scored 10 below
// the lowest piece, ties kept by the first path found, a run of unknown characters fused into
// one unknown token (its bytes, <0xXX>, with byte_fallback where all are tokens).
// Never: trains a Unigram model (aze-run trains WordPiece and BPE only) or reads files.
import { byteTokens } from "./bpe.js";
import type { FileParts } from "./tokenizer-file.js";
import { Tokenizer } from "./tokenizer.js";

export class UnigramTokenizer extends Tokenizer {
  private readonly scores: number[];
  private readonly unkScore: number;
  private readonly longest: number;
  private readonly cache = new Map<string, number[]>();

  constructor(
    tokens: string[],
    scores: number[],
    private readonly unkId: number,
    private readonly byteFallback: boolean,
    hash: string,
    file: FileParts,
  ) {
    super(tokens, false, hash, file);
    this.scores = scores;
    // Loops, not Math.min(...scores): a spread of 250,000 arguments overflows the stack.
    let lowest = Number.POSITIVE_INFINITY;
    for (const s of scores) lowest = Math.min(lowest, s);
    this.unkScore = lowest - 10;
    let longest = 1;
    for (let i = 0; i < scores.length; i++) longest = Math.max(longest, [...tokens[i]!].length);
    this.longest = longest;
  }

  protected words(): string[] {
    throw new Error("a Unigram tokenizer is always read from a tokenizer.json");
  }

  protected join(tokens: string[]): string {
    return tokens.join("");
  }

  protected hubParts(): never {
    throw new Error("a Unigram tokenizer is always read from a tokenizer.json");
  }

  protected pieces(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const chars = [...word];
    const n = chars.length;
    // best[e]: the highest score of a cut of chars[0, e), the start and id of its last piece.
    const best = new Float64Array(n + 1).fill(Number.NEGATIVE_INFINITY);
    const from = new Int32Array(n + 1).fill(-1);
    const id = new Int32Array(n + 1);
    best[0] = 0;
    for (let s = 0; s < n; s++) {
      let single = false;
      let piece = "";
      for (let e = s + 1; e <= Math.min(n, s + this.longest); e++) {
        piece += chars[e - 1];
        const t = this.vocab.get(piece);
        // Added tokens past the model's pieces are matched in the text, never here.
        if (t === undefined || t >= this.scores.length) continue;
        if (e === s + 1) single = true;
        const score = this.scores[t]! + best[s]!;
        if (from[e]! < 0 || score > best[e]!) [best[e], from[e], id[e]] = [score, s, t];
      }
      if (!single) {
        const score = this.unkScore + best[s]!;
        if (from[s + 1]! < 0 || score > best[s + 1]!) [best[s + 1], from[s + 1], id[s + 1]] = [score, s, this.unkId];
      }
    }
    // Back from the end; a run of unknown pieces becomes one (or its bytes).
    const cut: { id: number; text: string }[] = [];
    for (let e = n; e > 0; e = from[e]!) {
      const text = chars.slice(from[e]!, e).join("");
      const last = cut.at(-1);
      if (id[e] === this.unkId && last?.id === this.unkId) last.text = text + last.text;
      else cut.push({ id: id[e]!, text });
    }
    cut.reverse();
    const ids = cut.flatMap((c) => (c.id === this.unkId && this.byteFallback ? (byteTokens(c.text, this.vocab) ?? [c.id]) : [c.id]));
    if (this.cache.size < 200_000) this.cache.set(word, ids);
    return ids;
  }
}
