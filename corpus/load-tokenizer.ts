// Reading a tokenizer.json written by `tokenizer train`, whatever its type, and measuring a
// tokenizer on text (fertility).
//
// Owns: which class a tokenizer.json becomes (WordPiece, BPE, byte-level BPE) and the errors
// for files that are none of them. Never: trains anything.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { UserError } from "../runtime/errors.js";
import { BpeTokenizer } from "./bpe.js";
import { preTokenize, WordPieceTokenizer, type Tokenizer } from "./tokenizer.js";

/** Loads a tokenizer.json written by `tokenizer train`: WordPiece, BPE or byte-level BPE. */
export function loadTokenizer(file: string): Tokenizer {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read tokenizer ${file}: ${(err as Error).message}`);
  }
  return parseTokenizer(text, file);
}

/** A tokenizer from tokenizer.json text; `origin` names it in errors. */
export function parseTokenizer(text: string, origin: string): Tokenizer {
  let json: {
    model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
    normalizer?: { normalizers?: { type: string }[] };
    pre_tokenizer?: { type?: string };
  };
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`cannot read tokenizer ${origin}: ${(err as Error).message}`);
  }
  const model = json.model;
  if ((model?.type !== "WordPiece" && model?.type !== "BPE") || !model.vocab)
    throw new UserError(`${origin} is not a WordPiece or BPE tokenizer.json (model.type is ${model?.type}); train one with \`aze-run tokenizer train\`.`);
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(model.vocab)) tokens[id] = t;
  if (tokens.some((t) => t === undefined) || tokens.length !== Object.keys(model.vocab).length)
    throw new UserError(`${origin}: the vocabulary's ids are not 0..N-1 without gaps.`);
  const lowercase = (json.normalizer?.normalizers ?? []).some((n) => n.type === "Lowercase");
  const hash = createHash("sha256").update(text).digest("hex");
  if (model.type === "WordPiece") return new WordPieceTokenizer(tokens, lowercase, hash);
  const merges = (model.merges ?? []).map((m) => (typeof m === "string" ? (m.split(" ", 2) as [string, string]) : m));
  return new BpeTokenizer(json.pre_tokenizer?.type === "ByteLevel" ? "bytelevel-bpe" : "bpe", tokens, merges, lowercase, hash);
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
