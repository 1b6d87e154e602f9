// `aze-run benchmark` on a tiny checkpoint (10 steps), two seeds, one epoch per task: the
// table has a row per task and score with mean ± spread for the pre-trained model, the same
// model with random weights and the baseline, and the JSON file holds the same numbers, in
// range, each seed's run included. A tiny model need not beat anything: only shape and range
// are checked here (docs/evaluation.md has measured figures).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packageRoot } from "../../runtime/spawn.js";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

const shipped = join(packageRoot, "corpus", "sample", "tasks");

describe("benchmark", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("prints one table of mean ± spread per task and model, and writes the same as JSON", async () => {
    const config = writeTinyConfig(cwd, { steps: 10 });
    const trained = await runCli(["train", "--local", "--config", config, "--run", "m"], cwd, 120_000);
    expect(trained.code, trained.stderr).toBe(0);
    const checkpoint = lastCheckpoint(join(cwd, "runs", "m"));

    // Paths relative to the task list's folder, as the shipped list has them.
    const at = (file: string) => JSON.stringify(relative(join(cwd, "lists"), join(shipped, file)));
    const task = (name: string, kind: string, stem: string, extra = "") =>
      [
        `  - name: ${name}`,
        `    task: ${kind}`,
        `    train: ${at(`${stem}-train.jsonl`)}`,
        `    dev: ${at(`${stem}-dev.jsonl`)}`,
        "    epochs: 1",
        "    lr: 0.001",
        extra,
      ]
        .filter(Boolean)
        .join("\n");
    mkdirSync(join(cwd, "lists"));
    writeFileSync(
      join(cwd, "lists", "tasks.yaml"),
      [
        "tasks:",
        task("sentiment", "classification", "sentiment"),
        task("pairs", "pair-classification", "pairs"),
        task("entities", "token-classification", "ner", "    maxLength: 12"),
        task("questions", "question-answering", "qa"),
        "",
      ].join("\n"),
    );

    const r = await runCli(
      ["benchmark", "--checkpoint", checkpoint, "--tasks", join("lists", "tasks.yaml"), "--seeds", "2", "--out", "result.json"],
      cwd,
      300_000,
    );
    expect(r.code, r.stderr).toBe(0);

    // The table: a header, a rule, eight rows (two scores for each of four tasks), a footnote.
    const lines = r.stdout.trim().split("\n");
    const cells = (line: string) =>
      line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
    expect(cells(lines[0]!)).toEqual(["task", "kind", "score (%)", "pre-trained", "random weights", "baseline", "baseline predicts"]);
    const rows = lines
      .slice(2)
      .filter((l) => l.startsWith("|"))
      .map(cells);
    expect(rows.map((c) => [c[0], c[2]])).toEqual([
      ["sentiment", "accuracy"],
      ["sentiment", "macro F1"],
      ["pairs", "accuracy"],
      ["pairs", "macro F1"],
      ["entities", "entity F1"],
      ["entities", "word accuracy"],
      ["questions", "F1"],
      ["questions", "exact match"],
    ]);
    for (const row of rows)
      for (const cell of row.slice(3, 6)) {
        const m = /^(\d+\.\d) ± (\d+\.\d)$/.exec(cell!);
        expect(m, cell).not.toBeNull();
        expect(Number(m![1])).toBeLessThanOrEqual(100);
      }
    expect(rows.find((c) => c[0] === "questions")![6]).toBe("first sentence");
    expect(rows.find((c) => c[0] === "sentiment")![6]).toMatch(/^majority "/);
    expect(lines.at(-2)).toBe("mean ± standard deviation over seeds 1, 2");
    expect(r.stderr).toContain("questions, random weights, seed 2: F1 ");

    // The JSON: the same rows, every seed's value, means and spreads consistent and in range.
    const json = JSON.parse(readFileSync(join(cwd, "result.json"), "utf8"));
    expect(json.seeds).toEqual([1, 2]);
    expect(json.rows).toHaveLength(8);
    for (const [i, row] of json.rows.entries()) {
      expect([row.task, row.metric]).toEqual([rows[i]![0], rows[i]![2]]);
      for (const model of ["pretrained", "random", "baseline"]) {
        const s = row.models[model];
        expect(s.runs).toHaveLength(2);
        for (const v of s.runs) expect(v >= 0 && v <= 1).toBe(true);
        expect(s.mean).toBeCloseTo((s.runs[0] + s.runs[1]) / 2, 12);
        expect(s.spread).toBeCloseTo(Math.abs(s.runs[0] - s.runs[1]) / Math.SQRT2, 12);
        expect(cells(lines[2 + i]!)[3 + ["pretrained", "random", "baseline"].indexOf(model)]).toBe(
          `${(100 * s.mean).toFixed(1)} ± ${(100 * s.spread).toFixed(1)}`,
        );
      }
      expect(row.models.baseline.spread).toBe(0); // a baseline learns nothing, whatever the seed
    }
    // Known baselines: the sentiment dev split is half and half; "O" everywhere finds no entity.
    expect(json.rows[0].models.baseline.mean).toBe(0.5);
    expect(json.rows[4].models.baseline.mean).toBe(0);
  }, 300_000);
});
