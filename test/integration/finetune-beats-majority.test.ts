// Fine-tuning the demo model (configs/tiny.yaml, cut to 100 steps) on the shipped sentiment
// task beats the majority-class baseline on its dev split; the same seed gives the same
// bytes, from the checkpoint or from its Hugging Face export; token classification writes
// a folder an independent reader understands, and scores every word of rows longer than
// --max-length, with entity F1 beside word accuracy; question answering writes
// BertForQuestionAnswering's qa_outputs; bad rows are reported by line.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packageRoot } from "../../runtime/spawn.js";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { lastCheckpoint } from "../helpers/training.js";

const tasks = join(packageRoot, "corpus", "sample", "tasks");
const sentiment = [
  "--task",
  "classification",
  "--train",
  join(tasks, "sentiment-train.jsonl"),
  "--dev",
  join(tasks, "sentiment-dev.jsonl"),
  "--epochs",
  "8",
  "--lr",
  "1e-3",
  "--seed",
  "2",
  "--json",
];

// Tensor names and shapes read with Python's struct and json, not our safetensors reader.
const reader = `
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
print(json.dumps({k: v["shape"] for k, v in json.loads(data[8:8 + n]).items() if k != "__metadata__"}))`;

describe("finetune", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));
  let checkpoint = "";

  it("beats the majority baseline on the sentiment task, the same bytes for the same seed", async () => {
    const trained = await runCli(["train", "--local", "--config", join(packageRoot, "configs", "tiny.yaml"), "--run", "demo", "--steps", "100"], cwd, 180_000);
    expect(trained.code, trained.stderr).toBe(0);
    checkpoint = lastCheckpoint(join(cwd, "runs", "demo"));

    const first = await runCli(["finetune", "--checkpoint", checkpoint, ...sentiment, "--out", "a"], cwd, 180_000);
    expect(first.code, first.stderr).toBe(0);
    const r = JSON.parse(first.stdout);
    expect(r.labels).toEqual(["müsbət", "mənfi"].sort());
    expect(r.epochs).toHaveLength(8);
    const last = r.epochs.at(-1);
    expect(last.dev.accuracy).toBeGreaterThan(r.baseline.accuracy + 0.05);
    expect(last.dev.macroF1).toBeGreaterThan(r.baseline.macroF1 + 0.05);

    const second = await runCli(["finetune", "--checkpoint", checkpoint, ...sentiment, "--out", "b"], cwd, 180_000);
    expect({ ...JSON.parse(second.stdout), out: "" }).toEqual({ ...r, out: "" });
    const bytes = readFileSync(join(cwd, "a", "model.safetensors"));
    expect(readFileSync(join(cwd, "b", "model.safetensors")).equals(bytes)).toBe(true);

    // From the Hugging Face export of the same checkpoint: the same run, bit for bit.
    expect((await runCli(["export", "--checkpoint", checkpoint, "--out", "hf"], cwd)).code).toBe(0);
    const fromHub = await runCli(["finetune", "--checkpoint", "hf", ...sentiment, "--out", "c"], cwd, 180_000);
    expect(fromHub.code, fromHub.stderr).toBe(0);
    expect(readFileSync(join(cwd, "c", "model.safetensors")).equals(bytes)).toBe(true);

    const config = JSON.parse(readFileSync(join(cwd, "a", "config.json"), "utf8"));
    expect(config.architectures).toEqual(["BertForSequenceClassification"]);
    expect(config.id2label).toEqual({ 0: r.labels[0], 1: r.labels[1] });
  }, 600_000);

  it("token classification: skips bad rows by line, writes a folder an independent reader reads", async () => {
    const train = join(cwd, "ner-train.jsonl");
    writeFileSync(train, `${readFileSync(join(tasks, "ner-train.jsonl"), "utf8")}{"tokens": ["Əli", "gəldi"], "tags": ["B-PER"]}\n`);
    const lines = readFileSync(train, "utf8").trim().split("\n").length;
    const args = [
      "finetune",
      "--checkpoint",
      checkpoint,
      "--task",
      "token-classification",
      "--train",
      train,
      "--dev",
      join(tasks, "ner-dev.jsonl"),
      "--epochs",
      "1",
    ];

    const failed = await runCli([...args, "--on-bad-row", "fail", "--out", "ner-fail"], cwd, 120_000);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`${train}:${lines}: "tags" must be an array as long as "tokens" (2)`);
    expect(existsSync(join(cwd, "ner-fail"))).toBe(false);

    const skipped = await runCli([...args, "--out", "ner"], cwd, 120_000);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stderr).toContain(`${train}:${lines}: "tags" must be an array as long as "tokens" (2); row skipped`);
    expect(skipped.stdout).toMatch(/token-classification: 84 training rows, 28 dev rows, labels B-LOC, B-ORG, B-PER, I-LOC, I-ORG, I-PER, O/);

    const py = spawnSync("python3", ["-c", reader, join(cwd, "ner", "model.safetensors")], { encoding: "utf8" });
    expect(py.status, py.stderr).toBe(0);
    const shapes = JSON.parse(py.stdout) as Record<string, number[]>;
    expect(shapes["classifier.weight"]).toEqual([7, 64]);
    expect(shapes["classifier.bias"]).toEqual([7]);
    expect(Object.keys(shapes).some((n) => n.startsWith("cls.predictions"))).toBe(false);
    expect(JSON.parse(readFileSync(join(cwd, "ner", "config.json"), "utf8")).architectures).toEqual(["BertForTokenClassification"]);

    // Windows of 12 tokens: most dev sentences are longer, and every one of their 177 words is scored once.
    const short = await runCli([...args, "--max-length", "12", "--stride", "4", "--json", "--out", "ner-short"], cwd, 120_000);
    expect(short.code, short.stderr).toBe(0);
    const r = JSON.parse(short.stdout);
    expect(r.epochs[0].dev.words).toBe(177);
    expect(r.baseline.words).toBe(177);
    expect(r.baseline.accuracy).toBeCloseTo(100 / 177, 12); // "O" is 100 of the 177 dev words
    expect(r.baseline.entities).toEqual({ precision: 0, recall: 0, f1: 0, gold: 51, predicted: 0, correct: 0 });
    const e = r.epochs[0].dev.entities;
    expect(e.gold).toBe(51);
    for (const key of ["precision", "recall", "f1"]) expect(e[key] >= 0 && e[key] <= 1).toBe(true);
  }, 300_000);

  it("question answering: reports a misplaced answer by line, writes qa_outputs an independent reader reads", async () => {
    const train = join(cwd, "qa-train.jsonl");
    const bad = { context: "Kür uzun çaydır.", question: "Hansı çay uzundur?", answers: [{ text: "Kür", answer_start: 4 }] };
    writeFileSync(train, `${readFileSync(join(tasks, "qa-train.jsonl"), "utf8")}${JSON.stringify(bad)}\n`);
    const lines = readFileSync(train, "utf8").trim().split("\n").length;
    const run = await runCli(
      [
        "finetune",
        "--checkpoint",
        checkpoint,
        "--task",
        "question-answering",
        "--train",
        train,
        "--dev",
        join(tasks, "qa-dev.jsonl"),
        "--epochs",
        "1",
        "--json",
        "--out",
        "qa",
      ],
      cwd,
      120_000,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`${train}:${lines}: answer 0 "Kür" is not in the context at answer_start 4 (it reads "uzu"); row skipped`);
    const r = JSON.parse(run.stdout);
    expect([r.trainRows, r.devRows]).toEqual([67, 21]);
    expect(r.baseline.label).toBe("first sentence");
    for (const s of [r.baseline, r.epochs[0].dev]) for (const key of ["exactMatch", "f1"]) expect(s[key] >= 0 && s[key] <= 1).toBe(true);

    const py = spawnSync("python3", ["-c", reader, join(cwd, "qa", "model.safetensors")], { encoding: "utf8" });
    expect(py.status, py.stderr).toBe(0);
    const shapes = JSON.parse(py.stdout) as Record<string, number[]>;
    expect(shapes["qa_outputs.weight"]).toEqual([2, 64]);
    expect(shapes["qa_outputs.bias"]).toEqual([2]);
    expect(Object.keys(shapes).some((n) => n.startsWith("classifier") || n.startsWith("bert.pooler"))).toBe(false);
    const config = JSON.parse(readFileSync(join(cwd, "qa", "config.json"), "utf8"));
    expect(config.architectures).toEqual(["BertForQuestionAnswering"]);
    expect(config.id2label).toBeUndefined();
  }, 300_000);
});
