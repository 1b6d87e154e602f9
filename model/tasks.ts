// Task files and scores of fine-tuning: classification of one text or a text pair, token
// classification, and extractive question answering. Reads JSONL rows (a bad row is reported
// with its line number, then skipped or fatal), turns them into the ids the encoder reads
// (long rows into overlapping windows), and scores predictions: accuracy and macro F1,
// entity precision/recall/F1 (CoNLL), and SQuAD's exact match and token F1.
// Never: touches a model; the heads are model/task-heads.ts, the loop model/finetune.ts.
import { readFileSync } from "node:fs";
import type { loadTokenizer } from "../corpus/load-tokenizer.js";
import { azLowercase, wordSpans } from "../corpus/tokenizer.js";
import { UserError } from "../runtime/errors.js";

export const tasks = ["classification", "pair-classification", "token-classification", "question-answering"] as const;
export type Task = (typeof tasks)[number];
export type OnBadRow = "skip" | "fail";

// ---- task files ------------------------------------------------------------------------------

/** One row of a task file as read: `text`/`text_pair`/`label`, `tokens`/`tags`, or `context`/`question`/`answers`. */
export interface TaskRow {
  line: number;
  text: string;
  textPair?: string;
  label: string;
  tokens: string[];
  tags: string[];
  /** Question answering: the question (in `text`), the context and every accepted answer. */
  context?: string;
  answers?: Answer[];
}

/** An answer of a question-answering row: its text and where it starts in the context (a UTF-16 offset, as JavaScript and Python's json count). */
export interface Answer {
  text: string;
  start: number;
}

/**
 * Reads a JSONL task file. Each bad row is reported as `FILE:LINE: why`; with "fail" the
 * first one is an error, with "skip" it is left out. `labels`, when given, is the label set
 * of the training file: a dev row with another label is a bad row.
 */
export function readTaskFile(file: string, task: Task, opts: { onBadRow: OnBadRow; labels?: string[]; report?: (message: string) => void }): TaskRow[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read task file ${file}: ${(err as Error).message}`);
  }
  const known = opts.labels ? new Set(opts.labels) : undefined;
  const rows: TaskRow[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    const why = checkRow(raw, task, known);
    if (typeof why === "string") {
      const message = `${file}:${line}: ${why}`;
      if (opts.onBadRow === "fail") throw new UserError(`${message} (fix the row, or pass --on-bad-row skip to leave such rows out)`);
      opts.report?.(`${message}; row skipped`);
      return;
    }
    rows.push({ line, ...why });
  });
  if (rows.length === 0) throw new UserError(`${file} holds no usable rows for --task ${task}.`);
  return rows;
}

function checkRow(raw: string, task: Task, known?: Set<string>): string | Omit<TaskRow, "line"> {
  let row: Record<string, unknown>;
  try {
    row = JSON.parse(raw);
  } catch {
    return "not valid JSON";
  }
  if (typeof row !== "object" || row === null || Array.isArray(row)) return "not a JSON object";
  const nonEmpty = (key: string) => (typeof row[key] === "string" && (row[key] as string).trim() ? undefined : `"${key}" must be a non-empty string`);
  const labelOf = (v: unknown) => (typeof v === "string" && v.trim() ? v : Number.isInteger(v) ? String(v) : undefined);
  if (task === "question-answering") {
    const problem = nonEmpty("context") ?? nonEmpty("question");
    if (problem) return problem;
    const context = row.context as string;
    const answers = row.answers as { text?: unknown; answer_start?: unknown }[] | unknown;
    if (!Array.isArray(answers) || answers.length === 0) return `"answers" must be a non-empty array of {"text", "answer_start"}`;
    const read: Answer[] = [];
    for (const [i, a] of answers.entries()) {
      if (typeof a !== "object" || a === null || typeof a.text !== "string" || !a.text.trim() || !Number.isInteger(a.answer_start))
        return `answer ${i} must be {"text": a non-empty string, "answer_start": a whole number}`;
      const start = a.answer_start as number;
      if (context.slice(start, start + a.text.length) !== a.text)
        return `answer ${i} ${JSON.stringify(a.text)} is not in the context at answer_start ${start} (it reads ${JSON.stringify(context.slice(start, start + a.text.length))})`;
      read.push({ text: a.text, start });
    }
    return { text: row.question as string, label: "", tokens: [], tags: [], context, answers: read };
  }
  if (task === "token-classification") {
    const { tokens, tags } = row as { tokens?: unknown; tags?: unknown };
    if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => typeof t === "string" && t.trim()))
      return `"tokens" must be a non-empty array of non-empty strings`;
    if (!Array.isArray(tags) || tags.length !== tokens.length) return `"tags" must be an array as long as "tokens" (${tokens.length})`;
    const names = tags.map(labelOf);
    const bad = names.findIndex((t) => t === undefined || (known !== undefined && !known.has(t)));
    if (bad >= 0)
      return `tag ${JSON.stringify(tags[bad])} at position ${bad} is ${names[bad] === undefined ? "not a string" : "not among the training file's tags"}`;
    return { text: "", label: "", tokens: tokens as string[], tags: names as string[] };
  }
  const problem = nonEmpty("text") ?? (task === "pair-classification" ? nonEmpty("text_pair") : undefined);
  if (problem) return problem;
  const label = labelOf(row.label);
  if (label === undefined) return `"label" must be a non-empty string or a whole number`;
  if (known && !known.has(label)) return `label ${JSON.stringify(label)} is not among the training file's labels (${[...known].join(", ")})`;
  return { text: row.text as string, textPair: task === "pair-classification" ? (row.text_pair as string) : undefined, label, tokens: [], tags: [] };
}

/** The label set of a training file, sorted, so ids do not depend on row order. */
export function labelSet(rows: TaskRow[], task: Task): string[] {
  if (task === "question-answering") return ["start", "end"]; // the head's two outputs, not labels of rows
  const all = task === "token-classification" ? rows.flatMap((r) => r.tags) : rows.map((r) => r.label);
  return [...new Set(all)].sort();
}

// ---- encoding ---------------------------------------------------------------------------------

type Tokenizer = ReturnType<typeof loadTokenizer>;

/** One window of a row as the encoder sees it: ids with [CLS]/[SEP], segment ids, and its targets. */
export interface TaskExample {
  /** The row (its index among the file's usable rows) the window comes from. */
  row: number;
  ids: number[];
  typeIds: number[];
  /** Sequence tasks: the label id. */
  label: number;
  /** Token tasks: a tag id per position, -100 where nothing is predicted. */
  tags: number[];
  /** Token tasks: per position, the word this window scores there, else -1 (each word is scored in one window only). */
  scores: number[];
  /** Question answering: the answer span and how to read a predicted span back. */
  span?: SpanWindow;
}

/** A question-answering window: [CLS] question [SEP] context piece [SEP]. */
export interface SpanWindow {
  /** Positions of the first answer's first and last piece; both 0 ([CLS]) when the answer is not inside the window. */
  start: number;
  end: number;
  /** Per position: the context word its piece belongs to, -1 outside the context. */
  words: number[];
  /** Per position: true where no other window gives this piece more context. */
  maxContext: boolean[];
}

/** How long rows are cut: the longest window in tokens, and the tokens consecutive windows share. */
export interface WindowOptions {
  maxLen: number;
  stride: number;
}

/**
 * BERT's "maximum context" rule: a piece with `before` pieces of its window before it and
 * `after` after it is best read in the window where the smaller of the two is largest;
 * the window's length breaks ties (a hundredth of a piece), then the first window wins.
 */
const contextScore = (before: number, after: number, length: number) => Math.min(before, after) + 0.01 * length;

/**
 * Windows over the words of a row, `lengths[i]` pieces each: at most `room` pieces a window,
 * on word boundaries (a word longer than the room is cut to it), the next window starting
 * where the last `stride` pieces (or fewer, whole words) of the previous one begin. Each
 * word is scored in exactly one window, the one with the most context around it.
 */
export function wordWindows(lengths: number[], room: number, stride: number): { start: number; end: number; scores: number[] }[] {
  const len = lengths.map((l) => Math.min(l, room));
  const windows: { start: number; end: number; scores: number[] }[] = [];
  for (let start = 0; ; ) {
    let end = start;
    let used = 0;
    while (end < len.length && used + len[end]! <= room) used += len[end++]!;
    windows.push({ start, end, scores: [] });
    if (end >= len.length) break;
    let next = end;
    let shared = 0;
    while (next - 1 > start && shared + len[next - 1]! <= stride) shared += len[--next]!;
    start = next;
  }
  const best = len.map(() => ({ window: -1, score: -1 }));
  windows.forEach((w, i) => {
    const total = len.slice(w.start, w.end).reduce((s, l) => s + l, 0);
    let before = 0;
    for (let word = w.start; word < w.end; word++) {
      const score = contextScore(before, total - before - len[word]!, total);
      if (score > best[word]!.score) best[word] = { window: i, score };
      before += len[word]!;
    }
  });
  for (const [word, b] of best.entries()) windows[b.window]!.scores.push(word);
  return windows;
}

/** The pieces of one word (or punctuation mark); [UNK] when the tokenizer gives none. */
const piecesOf = (tokenizer: Tokenizer, word: string) => {
  const ids = tokenizer.encode(word).ids;
  return ids.length ? ids : [tokenizer.special.unk];
};

/**
 * The windows of a row. Sequence tasks: one, [CLS] a [SEP] (b [SEP]), the longer text cut
 * first when over `maxLen`. Token tasks: each word's pieces, its tag on the first piece, in
 * word windows (wordWindows) when the row is longer than `maxLen`. Question answering:
 * [CLS] question [SEP] context window [SEP] (spanWindows).
 */
export function encodeRow(row: TaskRow, index: number, task: Task, tokenizer: Tokenizer, labelIds: Map<string, number>, opts: WindowOptions): TaskExample[] {
  const { cls, sep } = tokenizer.special;
  const { maxLen } = opts;
  if (task === "question-answering") return spanWindows(row, index, tokenizer, opts);
  if (task === "token-classification") {
    const pieces = row.tokens.map((word) => piecesOf(tokenizer, word));
    return wordWindows(
      pieces.map((p) => p.length),
      maxLen - 2,
      opts.stride,
    ).map((w) => {
      const ids = [cls];
      const tags = [-100];
      const scores = [-1];
      const scored = new Set(w.scores);
      for (let word = w.start; word < w.end; word++) {
        const use = pieces[word]!.slice(0, maxLen - 2);
        ids.push(...use);
        tags.push(labelIds.get(row.tags[word]!)!, ...use.slice(1).map(() => -100));
        scores.push(scored.has(word) ? word : -1, ...use.slice(1).map(() => -1));
      }
      ids.push(sep);
      tags.push(-100);
      scores.push(-1);
      return { row: index, ids, typeIds: ids.map(() => 0), label: -1, tags, scores };
    });
  }
  const a = tokenizer.encode(row.text).ids;
  const b = row.textPair !== undefined ? tokenizer.encode(row.textPair).ids : undefined;
  // A pair is [CLS] a [SEP] b [SEP], with one more [SEP] between them where the tokenizer's template says so (RoBERTa).
  const between = Array<number>(tokenizer.pairSeparators - 1).fill(sep);
  const room = maxLen - (b ? 2 + tokenizer.pairSeparators : 2);
  while (a.length + (b?.length ?? 0) > room) (b && b.length > a.length ? b : a).pop();
  const ids = [cls, ...a, sep, ...(b ? [...between, ...b, sep] : [])];
  const typeIds = ids.map((_, i) => (i < a.length + 2 ? 0 : 1));
  return [{ row: index, ids, typeIds, label: labelIds.get(row.label)!, tags: [], scores: [] }];
}

/** The longest question kept, in pieces: at most 64 (as Hugging Face's SQuAD scripts), and at most half the room of a window. */
export const maxQuestionPieces = (maxLen: number) => Math.min(64, Math.floor((maxLen - 3) / 2));

/**
 * Question answering as in Hugging Face's SQuAD preprocessing: the question (cut to
 * maxQuestionPieces) and a window of the context's pieces, consecutive windows sharing
 * `stride` pieces. The context is split into words with their character spans (the
 * pre-tokenizer's rule), so a span of pieces maps back to a span of the context; the first
 * answer gives the training span, at [CLS] in windows that do not hold all of it.
 */
function spanWindows(row: TaskRow, index: number, tokenizer: Tokenizer, { maxLen, stride }: WindowOptions): TaskExample[] {
  const { cls, sep } = tokenizer.special;
  const context = row.context!;
  const question = tokenizer.encode(row.text).ids.slice(0, maxQuestionPieces(maxLen));
  const spans = wordSpans(context);
  const ids: number[] = [];
  const wordOf: number[] = [];
  spans.forEach((s, word) => {
    for (const id of piecesOf(tokenizer, context.slice(s.start, s.end))) {
      ids.push(id);
      wordOf.push(word);
    }
  });
  const answer = row.answers![0]!;
  const firstWord = spans.findIndex((s) => s.end > answer.start);
  const lastWord = spans.findLastIndex((s) => s.start < answer.start + answer.text.length);
  const answerFrom = wordOf.indexOf(firstWord);
  const answerTo = wordOf.lastIndexOf(lastWord);

  const room = maxLen - 3 - question.length;
  const windows: { from: number; length: number }[] = [];
  for (let from = 0; ; from += Math.max(1, room - stride)) {
    const length = Math.min(room, ids.length - from);
    windows.push({ from, length });
    if (from + length >= ids.length) break;
  }
  // The window that gives each piece the most context.
  const best = ids.map(() => ({ window: -1, score: -1 }));
  windows.forEach(({ from, length }, w) => {
    for (let i = 0; i < length; i++) {
      const score = contextScore(i, length - 1 - i, length);
      if (score > best[from + i]!.score) best[from + i] = { window: w, score };
    }
  });
  const offset = question.length + 2;
  return windows.map(({ from, length }, w) => {
    const piece = [cls, ...question, sep, ...ids.slice(from, from + length), sep];
    const words = piece.map((_, p) => (p >= offset && p < offset + length ? wordOf[from + p - offset]! : -1));
    const maxContext = piece.map((_, p) => p >= offset && p < offset + length && best[from + p - offset]!.window === w);
    const inside = answerFrom >= from && answerTo < from + length;
    return {
      row: index,
      ids: piece,
      typeIds: piece.map((_, p) => (p < offset ? 0 : 1)),
      label: -1,
      tags: [],
      scores: [],
      span: { start: inside ? offset + answerFrom - from : 0, end: inside ? offset + answerTo - from : 0, words, maxContext },
    };
  });
}

/**
 * The best answer of a question-answering row over its windows: the span of context pieces
 * with the largest start + end logit, start not after end, at most `maxAnswer` pieces long,
 * starting where its window gives it the most context; read back as the context's text from
 * the start word's first character to the end word's last. Empty when no span is valid.
 */
export function bestSpan(
  context: string,
  windows: { span: SpanWindow; start: ArrayLike<number>; end: ArrayLike<number> }[],
  maxAnswer: number,
): { text: string; score: number } {
  const spans = wordSpans(context);
  let best = { text: "", score: -Infinity };
  for (const { span, start, end } of windows) {
    const T = span.words.length;
    for (let s = 0; s < T; s++) {
      if (span.words[s]! < 0 || !span.maxContext[s]) continue;
      for (let e = s; e < Math.min(T, s + maxAnswer); e++) {
        if (span.words[e]! < 0) break;
        const score = start[s]! + end[e]!;
        if (score > best.score) best = { text: context.slice(spans[span.words[s]!]!.start, spans[span.words[e]!]!.end), score };
      }
    }
  }
  return best;
}

// ---- metrics --------------------------------------------------------------------------------

export interface Scores {
  accuracy: number;
  /** Mean F1 over the labels that occur in the gold or the predictions. */
  macroF1: number;
}

export function score(gold: number[], predicted: number[]): Scores {
  const labels = [...new Set([...gold, ...predicted])];
  let correct = 0;
  for (let i = 0; i < gold.length; i++) if (gold[i] === predicted[i]) correct++;
  const f1s = labels.map((c) => {
    let tp = 0,
      fp = 0,
      fn = 0;
    gold.forEach((g, i) => {
      const p = predicted[i];
      if (p === c && g === c) tp++;
      else if (p === c) fp++;
      else if (g === c) fn++;
    });
    return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  });
  return { accuracy: correct / Math.max(1, gold.length), macroF1: f1s.reduce((s, v) => s + v, 0) / Math.max(1, f1s.length) };
}

// ---- entities (CoNLL) -----------------------------------------------------------------------

/** An entity: its type and the words [start, end) it covers. */
export interface Entity {
  type: string;
  start: number;
  end: number;
}

/**
 * The entities of a BIO (IOB2) tag sequence by conlleval's rule: `B-X` starts an entity;
 * `I-X` continues one of type X and otherwise starts one (after `O`, or after another type);
 * `O`, and any tag without a `B-`/`I-` prefix, is outside.
 */
export function entitiesOf(tags: string[]): Entity[] {
  const out: Entity[] = [];
  let open: { type: string; start: number } | undefined;
  tags.forEach((tag, i) => {
    const m = /^([BI])-(.+)$/.exec(tag);
    if (m && m[1] === "I" && open?.type === m[2]) return;
    if (open) out.push({ ...open, end: i });
    open = m ? { type: m[2]!, start: i } : undefined;
  });
  if (open) out.push({ ...open, end: tags.length });
  return out;
}

export interface EntityScores {
  /** Correct entities over predicted ones (0 when none is predicted). */
  precision: number;
  /** Correct entities over gold ones. */
  recall: number;
  f1: number;
  gold: number;
  predicted: number;
  correct: number;
}

/** Entity-level precision, recall and F1 over sentences (micro-averaged, as conlleval): an entity counts when its span and type are exactly right. */
export function entityScores(gold: string[][], predicted: string[][]): EntityScores {
  let nGold = 0,
    nPredicted = 0,
    correct = 0;
  gold.forEach((tags, i) => {
    const key = (e: Entity) => `${e.type}\u0000${e.start}\u0000${e.end}`;
    const g = new Set(entitiesOf(tags).map(key));
    const p = entitiesOf(predicted[i]!).map(key);
    nGold += g.size;
    nPredicted += p.length;
    correct += p.filter((e) => g.has(e)).length;
  });
  const precision = nPredicted ? correct / nPredicted : 0;
  const recall = nGold ? correct / nGold : 0;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1, gold: nGold, predicted: nPredicted, correct };
}

// ---- question answering (SQuAD) ---------------------------------------------------------------

/** ASCII symbols and every Unicode P* character: the pre-tokenizer's punctuation. */
const punctuationMarks = /[!-/:-@[-`{-~]|\p{P}/gu;

/**
 * SQuAD's answer normalisation for Azerbaijani: NFC, lowercase by the Azerbaijani rule
 * (I → ı, İ → i), punctuation removed (ASCII symbols and Unicode punctuation, where SQuAD's
 * script removes ASCII punctuation), whitespace collapsed. SQuAD also removes the English
 * articles a/an/the; Azerbaijani has no articles, and nothing else is removed ("bir" is a
 * numeral as often as an indefinite marker).
 */
export function normalizeAnswer(text: string): string {
  return azLowercase(text.normalize("NFC")).replace(punctuationMarks, "").split(/\s+/u).filter(Boolean).join(" ");
}

/** SQuAD's token F1 of one prediction against one answer, over normalised whitespace tokens. */
function tokenF1(prediction: string, answer: string): number {
  const p = normalizeAnswer(prediction).split(" ").filter(Boolean);
  const g = normalizeAnswer(answer).split(" ").filter(Boolean);
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const left = new Map<string, number>();
  for (const t of g) left.set(t, (left.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const n = left.get(t) ?? 0;
    if (n > 0) {
      same++;
      left.set(t, n - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

export interface SpanScores {
  /** Share of questions whose prediction equals one of the answers after normalisation. */
  exactMatch: number;
  /** Mean over questions of the best token F1 against any of the answers. */
  f1: number;
}

/** Exact match and token F1 as SQuAD's evaluation script defines them (each the best over a question's answers), as fractions. */
export function spanScores(predictions: string[], answers: string[][]): SpanScores {
  let em = 0,
    f1 = 0;
  predictions.forEach((p, i) => {
    em += Math.max(...answers[i]!.map((a) => (normalizeAnswer(p) === normalizeAnswer(a) ? 1 : 0)));
    f1 += Math.max(...answers[i]!.map((a) => tokenF1(p, a)));
  });
  return { exactMatch: em / Math.max(1, predictions.length), f1: f1 / Math.max(1, predictions.length) };
}

/** The first-sentence baseline of question answering: the context up to its first ".", "!" or "?" followed by a space (or the whole context). */
export function firstSentence(context: string): string {
  const m = /^.*?[.!?](?=\s|$)/su.exec(context);
  return (m ? m[0] : context).trim();
}
