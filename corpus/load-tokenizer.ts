// Reading a tokenizer.json, ours or one the Hugging Face library wrote, and measuring a
// tokenizer on text (fertility).
//
// Owns: which class a tokenizer.json becomes (WordPiece, BPE, byte-level BPE, Unigram), the
// model section's settings and the errors for those that cannot be honoured (the rest of the
// file: tokenizer-file.ts). Never: trains anything.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { UserError } from "../runtime/errors.js";
import { BpeTokenizer } from "./bpe.js";
import { Reader, readFileParts } from "./tokenizer-file.js";
import { preTokenize, WordPieceTokenizer, type Tokenizer } from "./tokenizer.js";
import { UnigramTokenizer } from "./unigram.js";

/** Loads a tokenizer.json: WordPiece, BPE, byte-level BPE or Unigram. */
export function loadTokenizer(file: string): Tokenizer {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read tokenizer ${file}: ${(err as Error).message}`);
  }
  return parseTokenizer(text, file);
}

/**
 * A tokenizer from tokenizer.json text (ours, or one the Hugging Face library wrote:
 * WordPiece, BPE, byte-level BPE, Unigram); `origin` names it in errors. Every setting is
 * honoured as the library does, or refused with one line naming its key.
 */
export function parseTokenizer(text: string, origin: string): Tokenizer {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`cannot read tokenizer ${origin}: ${(err as Error).message}`);
  }
  if (!json || typeof json !== "object" || !json.model || typeof json.model !== "object")
    throw new UserError(`${origin} has no model section: is it a tokenizer.json? Train one with \`aze-run tokenizer train\`.`);
  // Typed, so that TypeScript knows the refuse(…) calls below end the function.
  const model: Reader = new Reader(origin, "", json).child("model");
  const type = model.json.type;
  if (type !== "WordPiece" && type !== "BPE" && type !== "Unigram") model.refuse("type", "aze-run reads WordPiece, BPE and Unigram models");

  // The vocabulary: the model's, then added tokens past it; ids 0..N-1 without gaps.
  const tokens: string[] = [];
  const scores: number[] = [];
  if (type === "Unigram") {
    if (!Array.isArray(model.json.vocab)) model.refuse("vocab", "expected a list of [piece, score]");
    for (const [piece, score] of model.json.vocab as [string, number][]) {
      tokens.push(piece);
      scores.push(score);
    }
  } else {
    const vocab = model.json.vocab;
    if (!vocab || typeof vocab !== "object") model.refuse("vocab", "expected an object of token: id");
    for (const [t, id] of Object.entries(vocab as Record<string, number>)) tokens[id] = t;
  }
  for (const a of Array.isArray(json.added_tokens) ? (json.added_tokens as { id: number; content: string }[]) : [])
    if (tokens[a.id] === undefined) tokens[a.id] = a.content;
  if (tokens.some((t) => t === undefined) || tokens.length !== new Set(tokens).size)
    throw new UserError(`${origin}: the vocabulary's ids are not 0..N-1 without gaps or repeats.`);
  const vocab = new Map(tokens.map((t, i) => [t, i]));
  const hash = createHash("sha256").update(text).digest("hex");

  if (type === "Unigram") {
    const unkId = model.json.unk_id;
    if (typeof unkId !== "number" || !tokens[unkId]) return model.refuse("unk_id", "aze-run needs the id of the unknown piece");
    const file = readFileParts(origin, text, json, vocab, tokens[unkId]!);
    return new UnigramTokenizer(tokens, scores, unkId, model.bool("byte_fallback", false), hash, file);
  }
  const unk = model.string("unk_token", null);
  if (unk !== null && !vocab.has(unk)) model.refuse("unk_token", "it is not in the vocabulary");
  const file = readFileParts(origin, text, json, vocab, unk);
  if (type === "WordPiece") {
    if (unk === null) model.refuse("unk_token", "WordPiece needs an unknown token");
    const prefix = model.string("continuing_subword_prefix", "##") as string;
    const maxChars = model.json.max_input_chars_per_word ?? 100;
    if (typeof maxChars !== "number") return model.refuse("max_input_chars_per_word", "expected a number");
    return new WordPieceTokenizer(tokens, false, hash, file, { prefix, maxChars });
  }
  if (model.json.dropout !== null && model.json.dropout !== undefined && model.json.dropout !== 0)
    model.refuse("dropout", "dropout makes encoding random; aze-run encodes deterministically");
  if (model.string("continuing_subword_prefix", "")) model.refuse("continuing_subword_prefix", "aze-run's BPE marks word ends only (end_of_word_suffix)");
  const merges = Array.isArray(model.json.merges)
    ? (model.json.merges as (string | [string, string])[]).map((m) => (typeof m === "string" ? (m.split(" ", 2) as [string, string]) : m))
    : model.refuse("merges", "expected a list");
  const byteLevel = JSON.stringify(json.pre_tokenizer ?? null).includes('"ByteLevel"');
  return new BpeTokenizer(byteLevel ? "bytelevel-bpe" : "bpe", tokens, merges, false, hash, file, {
    suffix: model.string("end_of_word_suffix", "") || null,
    unk,
    byteFallback: model.bool("byte_fallback", false),
    ignoreMerges: model.bool("ignore_merges", false),
    fuseUnk: model.bool("fuse_unk", false),
  });
}

/** Tokens per whitespace word, characters per token and the share of [UNK] on a text. */
export function fertility(tokenizerFile: string, text: string) {
  const tokenizer = loadTokenizer(tokenizerFile);
  let words = 0,
    tokens = 0,
    unknown = 0,
    chars = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    words += line.trim().split(/\s+/u).length;
    chars += [...preTokenize(line).join("")].length;
    const ids = tokenizer.encode(line).ids;
    tokens += ids.length;
    unknown += ids.filter((id) => id === tokenizer.special.unk).length;
  }
  return {
    tokenizer: tokenizerFile,
    vocabSize: tokenizer.vocabSize,
    words,
    tokens,
    tokensPerWord: tokens / words,
    charsPerToken: chars / tokens,
    unknownShare: unknown / Math.max(1, tokens),
  };
}
