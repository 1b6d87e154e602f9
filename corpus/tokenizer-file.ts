// Reading the model-independent parts of a Hugging Face tokenizer.json: the normaliser, the
// pre-tokeniser, the added tokens, the post-processor's [CLS]/[SEP] and the decoder, each
// turned into a function that does what the Hugging Face tokenizers library does with it.
//
// Owns: which settings are honoured and the one-line error for every one that is not
// (`FILE: normalizer.normalizers[1].type "Precompiled" is not supported: ...`); a setting
// is either reproduced exactly or refused, never replaced by one of ours (a key the file
// leaves out takes the library's own default for it, as the library does).
// Never: reads the model section (load-tokenizer.ts does) or trains anything.
import { UserError } from "../runtime/errors.js";
import { byteLevelWords, charToByte } from "./bpe.js";
import { preTokenize, type SpecialIds } from "./tokenizer.js";

type Json = Record<string, unknown>;

/** A setting of `file` at `path` that cannot be honoured: the error names both and why. */
export function refuse(file: string, path: string, value: unknown, why: string): never {
  throw new UserError(`${file}: ${path} ${JSON.stringify(value)} is not supported: ${why}`);
}

/** Reads typed values out of one object of the file, refusing a value of the wrong type. */
export class Reader {
  constructor(
    readonly file: string,
    readonly path: string,
    readonly json: Json,
  ) {}

  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.json[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== "boolean") refuse(this.file, this.at(key), v, "expected true or false");
    return v;
  }

  string(key: string, fallback?: string | null): string | null {
    const v = this.json[key];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== "string") refuse(this.file, this.at(key), v, "expected a string");
    return v;
  }

  child(key: string): Reader {
    const v = this.json[key];
    if (!v || typeof v !== "object" || Array.isArray(v)) refuse(this.file, this.at(key), v, "expected an object");
    return new Reader(this.file, this.at(key), v as Json);
  }

  list(key: string): Reader[] {
    const v = this.json[key];
    if (!Array.isArray(v)) refuse(this.file, this.at(key), v, "expected a list");
    return v.map((x, i) => {
      if (!x || typeof x !== "object" || Array.isArray(x)) refuse(this.file, `${this.at(key)}[${i}]`, x, "expected an object");
      return new Reader(this.file, `${this.at(key)}[${i}]`, x as Json);
    });
  }

  get type(): string {
    return this.string("type") as string;
  }

  refuse(key: string, why: string): never {
    refuse(this.file, this.at(key), this.json[key], why);
  }
}

// ---- normalisers ---------------------------------------------------------------------------

type TextStep = (text: string) => string;

/** BertNormalizer's CJK ranges (the Hugging Face library's is_chinese_char). */
function isChinese(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const control = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;
const nonspacingMarks = /\p{Mn}/gu;

/** Drops NUL, U+FFFD and control characters (not tab, newline, CR); every whitespace becomes a space. */
function cleanText(text: string): string {
  let out = "";
  for (const ch of text) {
    if (ch === "\0" || ch === "\ufffd" || (ch !== "\t" && ch !== "\n" && ch !== "\r" && control.test(ch))) continue;
    out += /\s/u.test(ch) ? " " : ch;
  }
  return out;
}

function spaceChinese(text: string): string {
  let out = "";
  for (const ch of text) out += isChinese(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
  return out;
}

/**
 * BertNormalizer, in the Hugging Face library's order: clean, space CJK characters, strip
 * accents (NFD, then drop non-spacing marks), lowercase. strip_accents null follows
 * lowercase, so an uncased BERT strips accents: "Ə" → "ə", "Ş" → "s", "İ" → "i".
 */
function bertNormalizer(r: Reader): TextStep {
  const clean = r.bool("clean_text", true);
  const chinese = r.bool("handle_chinese_chars", true);
  const lowercase = r.bool("lowercase", true);
  const strip = r.json.strip_accents === null || r.json.strip_accents === undefined ? lowercase : r.bool("strip_accents");
  return (text) => {
    if (clean) text = cleanText(text);
    if (chinese) text = spaceChinese(text);
    if (strip) text = text.normalize("NFD").replace(nonspacingMarks, "");
    if (lowercase) text = text.toLowerCase();
    return text;
  };
}

/**
 * A Replace or Split pattern: a plain string, or a regex the JavaScript and Oniguruma
 * engines read the same way (literal characters, escaped symbols and counted repeats such
 * as " {2,}"); anything richer is refused rather than guessed.
 */
export function pattern(r: Reader, key: string): RegExp {
  const p = r.child(key);
  if (typeof p.json.String === "string") return new RegExp(p.json.String.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gu");
  const source = p.json.Regex;
  if (typeof source !== "string") r.refuse(key, "expected {String} or {Regex}");
  const atom = String.raw`(?:[^\\.*+?^$|()[\]{}]|\\[.*+?^$|()[\]{}\\/-])`;
  if (!new RegExp(`^(?:${atom}(?:[*+?]|\\{\\d+(?:,\\d*)?\\})?)+$`, "u").test(source))
    r.refuse(key, "only literal text and repeats of single characters are read the same by JavaScript and Oniguruma");
  return new RegExp(source, "gu");
}

function normalizer(r: Reader): TextStep {
  switch (r.type) {
    case "BertNormalizer":
      return bertNormalizer(r);
    case "Lowercase":
      return (t) => t.toLowerCase();
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD": {
      const form = r.type;
      return (t) => t.normalize(form);
    }
    case "StripAccents":
      // Non-spacing marks only, and no decomposition of its own (Sequence[NFD, StripAccents] is the usual pair).
      return (t) => t.replace(nonspacingMarks, "");
    case "Replace": {
      const re = pattern(r, "pattern");
      const content = r.string("content") as string;
      return (t) => t.replace(re, () => content);
    }
    case "Prepend": {
      const prefix = r.string("prepend") as string;
      // The library leaves an empty text empty.
      return (t) => (t ? prefix + t : t);
    }
    case "Strip": {
      const left = r.bool("strip_left");
      const right = r.bool("strip_right");
      return (t) => (left && right ? t.trim() : left ? t.trimStart() : right ? t.trimEnd() : t);
    }
    case "Sequence": {
      const steps = r.list("normalizers").map(normalizer);
      return (t) => steps.reduce((s, f) => f(s), t);
    }
    case "Precompiled":
      return r.refuse("type", "it applies SentencePiece's compiled character map, which aze-run does not implement (NFKC alone is close to it, not the same)");
    default:
      return r.refuse("type", "aze-run reads BertNormalizer, Lowercase, NFC, NFD, NFKC, NFKD, StripAccents, Replace, Prepend, Strip and Sequence");
  }
}

// ---- pre-tokenisers ------------------------------------------------------------------------

/** A pre-tokeniser: one section of text (between added tokens; `first`: the section starts the text) to words. */
type Split = (text: string, first: boolean) => string[];

function metaspace(r: Reader): Split {
  const replacement = r.string("replacement", "\u2581") as string;
  // Files from before prepend_scheme say add_prefix_space instead.
  const scheme = r.json.prepend_scheme === undefined ? (r.bool("add_prefix_space", true) ? "always" : "never") : r.string("prepend_scheme");
  if (scheme !== "always" && scheme !== "first" && scheme !== "never") r.refuse("prepend_scheme", 'expected "always", "first" or "never"');
  const split = r.bool("split", true);
  return (text, first) => {
    let t = text.replaceAll(" ", replacement);
    if (!t.startsWith(replacement) && (scheme === "always" || (scheme === "first" && first))) t = replacement + t;
    // Split before every replacement character (the library's MergedWithNext).
    if (!split) return [t];
    const words: string[] = [];
    let start = 0;
    for (let at = t.indexOf(replacement, 1); at > 0; at = t.indexOf(replacement, at + replacement.length)) {
      words.push(t.slice(start, at));
      start = at;
    }
    words.push(t.slice(start));
    return words.filter(Boolean);
  };
}

function preTokenizer(r: Reader): Split {
  switch (r.type) {
    case "BertPreTokenizer":
      return (t) => preTokenize(t);
    case "WhitespaceSplit":
      return (t) => t.split(/\s+/u).filter(Boolean);
    case "ByteLevel": {
      const prefix = r.bool("add_prefix_space", true);
      const regex = r.bool("use_regex", true);
      r.bool("trim_offsets", true); // offsets only
      return (t) => byteLevelWords(t, prefix, regex);
    }
    case "Metaspace":
      return metaspace(r);
    case "Digits": {
      const single = r.bool("individual_digits", false);
      const re = single ? /[^0-9]+|[0-9]/gu : /[^0-9]+|[0-9]+/gu;
      return (t) => t.match(re) ?? [];
    }
    case "Sequence": {
      const steps = r.list("pretokenizers").map(preTokenizer);
      return (t, first) => steps.reduce<string[]>((words, f) => words.flatMap((w) => f(w, first)), [t]);
    }
    case "Whitespace":
      return r.refuse("type", "its \\w is Unicode-aware in the Hugging Face library and ASCII-only in its JavaScript port, so no one encoding is faithful");
    default:
      return r.refuse("type", "aze-run reads BertPreTokenizer, ByteLevel, Metaspace, WhitespaceSplit, Digits and Sequence");
  }
}

// ---- decoders (decode only: they never change ids) -----------------------------------------

type Join = (tokens: string[]) => string;

function byteDecode(tokens: string[]): string {
  return Buffer.from(tokens.flatMap((t) => Array.from(t, (c) => charToByte.get(c) ?? 0x3f))).toString("utf8");
}

/** Token-wise decoder steps of a Sequence (Replace, ByteFallback, Fuse, Strip), then joined. */
function decoderSteps(r: Reader): (tokens: string[]) => string[] {
  switch (r.type) {
    case "Replace": {
      const re = pattern(r, "pattern");
      const content = r.string("content") as string;
      return (ts) => ts.map((t) => t.replace(re, () => content));
    }
    case "ByteFallback":
      return (ts) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = () => {
          if (bytes.length) out.push(Buffer.from(bytes).toString("utf8"));
          bytes = [];
        };
        for (const t of ts) {
          const m = /^<0x([0-9A-F]{2})>$/.exec(t);
          if (m) bytes.push(Number.parseInt(m[1]!, 16));
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
    case "Fuse":
      return (ts) => [ts.join("")];
    case "Strip": {
      const content = r.string("content") as string;
      const start = Number(r.json.start ?? 0);
      const stop = Number(r.json.stop ?? 0);
      return (ts) =>
        ts.map((t) => {
          let s = t;
          for (let k = 0; k < start && s.startsWith(content); k++) s = s.slice(content.length);
          for (let k = 0; k < stop && s.endsWith(content); k++) s = s.slice(0, -content.length);
          return s;
        });
    }
    default:
      return r.refuse("type", "aze-run decodes Sequence steps Replace, ByteFallback, Fuse and Strip");
  }
}

function decoder(r: Reader | null): Join {
  if (!r) return (ts) => ts.join(" ");
  switch (r.type) {
    case "WordPiece": {
      const prefix = r.string("prefix", "##") as string;
      const cleanup = r.bool("cleanup", true);
      return (ts) => {
        let out = "";
        for (const t of ts) out += t.startsWith(prefix) ? t.slice(prefix.length) : (out ? " " : "") + t;
        return cleanup ? out.replace(/ ([.,!?])/g, "$1") : out;
      };
    }
    case "ByteLevel":
      return byteDecode;
    case "BPEDecoder": {
      const suffix = r.string("suffix", "</w>") as string;
      return (ts) =>
        ts
          .map((t) => t.replaceAll(suffix, " "))
          .join("")
          .trim();
    }
    case "Metaspace": {
      const replacement = r.string("replacement", "\u2581") as string;
      return (ts) => {
        const text = ts.join("").replaceAll(replacement, " ");
        return text.startsWith(" ") ? text.slice(1) : text;
      };
    }
    case "Sequence": {
      const steps = r.list("decoders").map(decoderSteps);
      return (ts) => steps.reduce((s, f) => f(s), ts).join("");
    }
    default:
      return r.refuse("type", "aze-run decodes with WordPiece, ByteLevel, BPEDecoder, Metaspace and Sequence decoders");
  }
}

// ---- the whole pipeline ----------------------------------------------------------------------

/** What a tokenizer read from a file does instead of our trained defaults (tokenizer.ts's Tokenizer uses it). */
export interface FileParts {
  /** The file's text: toJSON gives it back, and the hash is of it. */
  json: string;
  /** Text to its segments: a word for the model to cut, or the id of an added token found in the text. */
  segments: (text: string) => (string | number)[];
  /** The decoder over tokens (special tokens already dropped). */
  join: (tokens: string[]) => string;
  /** The tokens in each special role. */
  specialTokens: Record<keyof SpecialIds, string>;
  /** Ids a pair of sequences is framed with: [CLS] a [SEP] (extra [SEP] for RoBERTa) b [SEP]. */
  pairSeparators: number;
}

interface AddedToken {
  id: number;
  content: string;
  lstrip: boolean;
  rstrip: boolean;
}

/**
 * Cuts text at the added tokens (special tokens written in the text become their ids, as
 * the library does: the longest match first, whitespace beside an lstrip/rstrip token
 * dropped), then normalises and pre-tokenises each section between them.
 */
function segmenter(added: AddedToken[], normalize: TextStep, split: Split | null): (text: string) => (string | number)[] {
  const byContent = new Map(added.map((a) => [a.content, a]));
  const sorted = [...added].sort((a, b) => b.content.length - a.content.length);
  const re = sorted.length ? new RegExp(sorted.map((a) => a.content.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "gu") : null;
  const words = (section: string, first: boolean): string[] => {
    const normal = normalize(section);
    if (!normal) return [];
    return split ? split(normal, first) : [normal];
  };
  return (text) => {
    if (!re?.test(text)) return words(text, true);
    re.lastIndex = 0;
    const parts: (string | AddedToken)[] = [];
    let at = 0;
    for (const m of text.matchAll(re)) {
      parts.push(text.slice(at, m.index), byContent.get(m[0])!);
      at = m.index + m[0].length;
    }
    parts.push(text.slice(at));
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (typeof p === "string") continue;
      if (p.lstrip && i > 0) parts[i - 1] = (parts[i - 1] as string).trimEnd();
      if (p.rstrip && i + 1 < parts.length) parts[i + 1] = (parts[i + 1] as string).trimStart();
    }
    const out: (string | number)[] = [];
    parts.forEach((p, i) => {
      if (typeof p !== "string") out.push(p.id);
      else if (p) for (const w of words(p, i === 0)) out.push(w);
    });
    return out;
  };
}

/** The [CLS]/[SEP] tokens of the post-processor and how a pair is framed. */
function framing(r: Reader | null, file: string): { cls: string; sep: string; pairSeparators: number } {
  if (!r) return refuse(file, "post_processor", null, "aze-run frames every sequence as [CLS] … [SEP] and needs the post-processor to name them");
  const pairOf = (key: string): string => {
    const v = r.json[key] as unknown[];
    if (!Array.isArray(v) || typeof v[0] !== "string") r.refuse(key, "expected [token, id]");
    return v[0] as string;
  };
  switch (r.type) {
    case "BertProcessing":
      return { cls: pairOf("cls"), sep: pairOf("sep"), pairSeparators: 1 };
    case "RobertaProcessing":
      // trim_offsets and add_prefix_space change offsets only.
      return { cls: pairOf("cls"), sep: pairOf("sep"), pairSeparators: 2 };
    case "TemplateProcessing": {
      const piece = (item: unknown) => {
        const x = item as { SpecialToken?: { id: string }; Sequence?: { id: string } };
        return x.SpecialToken ? `S:${x.SpecialToken.id}` : x.Sequence ? x.Sequence.id : "?";
      };
      const single = Array.isArray(r.json.single) ? r.json.single.map(piece) : [];
      if (single.length !== 3 || !single[0]!.startsWith("S:") || single[1] !== "A" || !single[2]!.startsWith("S:"))
        r.refuse("single", "aze-run frames a sequence as exactly one special token, the text, one special token ([CLS] $A [SEP])");
      const [cls, sep] = [single[0]!.slice(2), single[2]!.slice(2)];
      const pair = Array.isArray(r.json.pair) ? r.json.pair.map(piece).join(" ") : "";
      const bert = `S:${cls} A S:${sep} B S:${sep}`;
      const roberta = `S:${cls} A S:${sep} S:${sep} B S:${sep}`;
      if (pair !== bert && pair !== roberta) r.refuse("pair", `aze-run frames a pair as ${cls} $A ${sep} $B ${sep} or ${cls} $A ${sep} ${sep} $B ${sep}`);
      const specials = r.child("special_tokens");
      for (const t of [cls, sep]) {
        const ids = (specials.json[t] as { ids?: unknown[] } | undefined)?.ids;
        if (!Array.isArray(ids) || ids.length !== 1) specials.refuse(t, "each special token of the template must be one id");
      }
      return { cls, sep, pairSeparators: pair === bert ? 1 : 2 };
    }
    case "Sequence": {
      // ByteLevel post-processors only trim offsets; exactly one other step frames the text.
      const steps = r.list("processors").filter((p) => p.type !== "ByteLevel");
      if (steps.length !== 1) r.refuse("processors", "aze-run reads a Sequence of ByteLevel steps and one framing step");
      return framing(steps[0]!, file);
    }
    default:
      return r.refuse("type", "aze-run reads BertProcessing, RobertaProcessing, TemplateProcessing ([CLS] $A [SEP]) and Sequence");
  }
}

/**
 * The pipeline of a parsed tokenizer.json whose vocabulary (with added tokens) is `vocab`
 * and whose model's unknown token is `modelUnk` (null: the model has none).
 */
export function readFileParts(file: string, text: string, json: Json, vocab: Map<string, number>, modelUnk: string | null): FileParts {
  const top = new Reader(file, "", json);
  const sub = (key: string) => (json[key] === null || json[key] === undefined ? null : top.child(key));
  for (const key of ["truncation", "padding"])
    if (json[key] !== null && json[key] !== undefined) refuse(file, key, json[key], "aze-run cuts and pads sequences itself; set it to null");
  const normalizerReader = sub("normalizer");
  const normalize = normalizerReader ? normalizer(normalizerReader) : (t: string) => t;
  const preReader = sub("pre_tokenizer");
  const split = preReader ? preTokenizer(preReader) : null;

  const added: AddedToken[] = (Array.isArray(json.added_tokens) ? top.list("added_tokens") : []).map((a) => {
    if (a.bool("normalized", false)) a.refuse("normalized", "aze-run matches added tokens in the text before normalising");
    if (a.bool("single_word", false)) a.refuse("single_word", "aze-run matches added tokens anywhere in the text");
    const content = a.string("content") as string;
    if (vocab.get(content) !== a.json.id) a.refuse("id", `${content} has id ${vocab.get(content)} in the vocabulary`);
    return { id: a.json.id as number, content, lstrip: a.bool("lstrip", false), rstrip: a.bool("rstrip", false) };
  });

  const { cls, sep, pairSeparators } = framing(sub("post_processor"), file);
  const named = (role: string, names: string[], given?: string | null): string => {
    if (given) return given;
    const found = names.find((n) => added.some((a) => a.content === n) || vocab.has(n));
    if (!found) refuse(file, "added_tokens", names, `aze-run needs a ${role} token and finds none of these`);
    return found;
  };
  const specialTokens = {
    pad: named("padding", ["[PAD]", "<pad>"]),
    unk: named("unknown", ["[UNK]", "<unk>"], modelUnk),
    cls,
    sep,
    mask: named("mask", ["[MASK]", "<mask>"]),
  };
  for (const [role, t] of Object.entries(specialTokens)) if (!vocab.has(t)) refuse(file, "vocab", t, `the ${role} token is not in the vocabulary`);
  return { json: text, segments: segmenter(added, normalize, split), join: decoder(sub("decoder")), specialTokens, pairSeparators };
}
