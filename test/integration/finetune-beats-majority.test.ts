// Fine-tuning the demo model (configs/tiny.yaml, cut to 100 steps) on the shipped sentiment
// task beats the majority-class baseline on its dev split; the same seed gives the same
// bytes, from the checkpoint or from its Hugging Face export; token classification writes
// a folder an independent reader understands; bad rows are reported by line.
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
  }, 300_000);
});
