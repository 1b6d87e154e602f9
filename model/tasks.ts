// Task files and scores of fine-tuning: classification of one text or a text pair, and
// token classification. Reads JSONL rows (a bad row is reported with its line number, then
// skipped or fatal), turns them into the ids the encoder reads, and scores predictions
// (accuracy, macro F1).
// Never: touches a model; the heads are model/task-heads.ts, the loop model/finetune.ts.
import { readFileSync } from "node:fs";
import type { loadTokenizer } from "../corpus/load-tokenizer.js";
import { UserError } from "../runtime/errors.js";

export const tasks = ["classification", "pair-classification", "token-classification"] as const;
export type Task = (typeof tasks)[number];
export type OnBadRow = "skip" | "fail";

// ---- task files ------------------------------------------------------------------------------

/** One row of a task file as read: `text`/`text_pair`/`label`, or `tokens`/`tags`. */
export interface TaskRow {
  line: number;
  text: string;
  textPair?: string;
  label: string;
  tokens: string[];
  tags: string[];
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
  const all = task === "token-classification" ? rows.flatMap((r) => r.tags) : rows.map((r) => r.label);
  return [...new Set(all)].sort();
}

// ---- encoding ---------------------------------------------------------------------------------

type Tokenizer = ReturnType<typeof loadTokenizer>;

/** One example as the encoder sees it: ids with [CLS]/[SEP], segment ids, and its targets. */
export interface TaskExample {
  ids: number[];
  typeIds: number[];
  /** Sequence tasks: the label id. */
  label: number;
  /** Token tasks: a tag id per position, -100 where nothing is predicted. */
  tags: number[];
}

/**
 * Sequence tasks: [CLS] a [SEP] (b [SEP]), the longer text cut first when over `maxLen`.
 * Token tasks: each word's pieces, its tag on the first piece; words past `maxLen` are cut.
 */
export function encodeRow(row: TaskRow, task: Task, tokenizer: Tokenizer, labelIds: Map<string, number>, maxLen: number): TaskExample {
  const { cls, sep, unk } = tokenizer.special;
  if (task === "token-classification") {
    const ids = [cls];
    const tags = [-100];
    row.tokens.forEach((word, i) => {
      const pieces = tokenizer.encode(word).ids;
      const use = pieces.length ? pieces : [unk];
      if (ids.length + use.length > maxLen - 1) return;
      ids.push(...use);
      tags.push(labelIds.get(row.tags[i]!)!, ...use.slice(1).map(() => -100));
    });
    ids.push(sep);
    tags.push(-100);
    return { ids, typeIds: ids.map(() => 0), label: -1, tags };
  }
  const a = tokenizer.encode(row.text).ids;
  const b = row.textPair !== undefined ? tokenizer.encode(row.textPair).ids : undefined;
  // A pair is [CLS] a [SEP] b [SEP], with one more [SEP] between them where the tokenizer's template says so (RoBERTa).
  const between = Array<number>(tokenizer.pairSeparators - 1).fill(sep);
  const room = maxLen - (b ? 2 + tokenizer.pairSeparators : 2);
  while (a.length + (b?.length ?? 0) > room) (b && b.length > a.length ? b : a).pop();
  const ids = [cls, ...a, sep, ...(b ? [...between, ...b, sep] : [])];
  const typeIds = ids.map((_, i) => (i < a.length + 2 ? 0 : 1));
  return { ids, typeIds, label: labelIds.get(row.label)!, tags: [] };
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
