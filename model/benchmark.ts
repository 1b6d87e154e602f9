// `aze-run benchmark`: fine-tunes one checkpoint on every task of a task list, with several
// seeds, beside the same architecture with random weights and a baseline that learns
// nothing, and summarises each task's scores as mean ± spread per model.
//
// Owns: the task list file (YAML or JSON), the seeds loop, the summary and its table.
// Never: trains or scores anything itself (model/finetune.ts does), or writes model folders.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { UserError } from "../runtime/errors.js";
import { finetune, type DevScores, type FinetuneResult } from "./finetune.js";
import { tasks, type Task } from "./tasks.js";

const taskListSchema = z.strictObject({
  tasks: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        task: z.enum(tasks),
        /** Relative to the task list's folder. */
        train: z.string().min(1),
        dev: z.string().min(1),
        epochs: z.number().int().positive().default(3),
        lr: z.number().positive().default(1e-4),
        batchSize: z.number().int().positive().optional(),
        maxLength: z.number().int().positive().optional(),
        stride: z.number().int().positive().optional(),
      }),
    )
    .min(1),
});
export type BenchmarkTask = z.infer<typeof taskListSchema>["tasks"][number];

/** Reads a task list; train and dev paths become absolute, relative to the list's folder. */
export function readTaskList(file: string): BenchmarkTask[] {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UserError(`cannot read task list ${file}: ${(err as Error).message}`);
  }
  const parsed = taskListSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${file}: ${issue.path.join(".") || "the file"}: ${issue.message} (see docs/evaluation.md, "benchmark").`);
  }
  const names = parsed.data.tasks.map((t) => t.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new UserError(`${file}: task name "${twice}" is listed twice; give each task its own name.`);
  const list = parsed.data.tasks.map((t) => ({ ...t, train: resolve(dirname(file), t.train), dev: resolve(dirname(file), t.dev) }));
  // Checked before the first run, not when a task's turn comes minutes later.
  for (const t of list)
    for (const path of [t.train, t.dev])
      if (!existsSync(path)) throw new UserError(`${file}: task "${t.name}": no such file ${path} (paths are relative to the task list's folder).`);
  return list;
}

/** The scores the table shows per task kind, the first being the one a task is judged by. */
const metricsOf = (task: Task): { metric: string; read: (s: DevScores) => number }[] =>
  task === "question-answering"
    ? [
        { metric: "F1", read: (s) => s.f1! },
        { metric: "exact match", read: (s) => s.exactMatch! },
      ]
    : task === "token-classification"
      ? [
          { metric: "entity F1", read: (s) => s.entities!.f1 },
          { metric: "word accuracy", read: (s) => s.accuracy! },
        ]
      : [
          { metric: "accuracy", read: (s) => s.accuracy! },
          { metric: "macro F1", read: (s) => s.macroF1! },
        ];

export const models = ["pretrained", "random", "baseline"] as const;
export type ModelName = (typeof models)[number];
const modelTitles: Record<ModelName, string> = { pretrained: "pre-trained", random: "random weights", baseline: "baseline" };

/** A score over seeds: the mean, the sample standard deviation (0 for one seed), and each seed's value. */
export interface Summary {
  mean: number;
  spread: number;
  runs: number[];
}

export interface BenchmarkRow {
  task: string;
  kind: Task;
  metric: string;
  /** What the baseline predicts: the majority label, or the first sentence of the context. */
  baseline: string;
  models: Record<ModelName, Summary>;
}

export interface BenchmarkResult {
  checkpoint: string;
  taskList: string;
  seeds: number[];
  rows: BenchmarkRow[];
}

function summarise(runs: number[]): Summary {
  const mean = runs.reduce((s, v) => s + v, 0) / runs.length;
  const spread = runs.length > 1 ? Math.sqrt(runs.reduce((s, v) => s + (v - mean) ** 2, 0) / (runs.length - 1)) : 0;
  return { mean, spread, runs };
}

export async function benchmark(opts: {
  checkpoint: string;
  taskList: string;
  seeds: number;
  backend?: string;
  report?: (message: string) => void;
}): Promise<BenchmarkResult> {
  const list = readTaskList(opts.taskList);
  const seeds = Array.from({ length: opts.seeds }, (_, i) => i + 1);
  const rows: BenchmarkRow[] = [];
  for (const t of list) {
    const runs: Record<"pretrained" | "random", FinetuneResult[]> = { pretrained: [], random: [] };
    for (const seed of seeds)
      for (const weights of ["pretrained", "random"] as const) {
        const r = await finetune({ ...t, checkpoint: opts.checkpoint, seed, weights, backend: opts.backend });
        const [main] = metricsOf(t.task);
        opts.report?.(`${t.name}, ${modelTitles[weights]}, seed ${seed}: ${main!.metric} ${(100 * main!.read(r.epochs.at(-1)!.dev)).toFixed(1)}%`);
        runs[weights].push(r);
      }
    const baseline = runs.pretrained[0]!.baseline;
    for (const { metric, read } of metricsOf(t.task))
      rows.push({
        task: t.name,
        kind: t.task,
        metric,
        baseline: t.task === "question-answering" ? baseline.label : `majority "${baseline.label}"`,
        models: {
          pretrained: summarise(runs.pretrained.map((r) => read(r.epochs.at(-1)!.dev))),
          random: summarise(runs.random.map((r) => read(r.epochs.at(-1)!.dev))),
          baseline: summarise(seeds.map(() => read(baseline))),
        },
      });
  }
  return { checkpoint: opts.checkpoint, taskList: opts.taskList, seeds, rows };
}

/** The table: one row per task and score, one column per model, in percent as mean ± spread over seeds. */
export function benchmarkTable(result: BenchmarkResult): string {
  const cell = (s: Summary) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.spread).toFixed(1)}`;
  const lines = [
    ["task", "kind", "score (%)", ...models.map((m) => modelTitles[m]), "baseline predicts"],
    ...result.rows.map((r) => [r.task, r.kind, r.metric, ...models.map((m) => cell(r.models[m])), r.baseline]),
  ];
  const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  const format = (l: string[]) => `| ${l.map((v, c) => v.padEnd(widths[c]!)).join(" | ")} |`;
  return [
    format(lines[0]!),
    format(widths.map((w) => "-".repeat(w))),
    ...lines.slice(1).map(format),
    `mean ± standard deviation over seeds ${result.seeds.join(", ")}`,
  ].join("\n");
}
