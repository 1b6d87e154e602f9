// Fixtures for the distributed-training suites: a small run config on the shipped sample
// text, and reading a checkpoint's parameter bytes with a reader of our own (not the
// writer's code path) so runs can be compared bit for bit.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../runtime/spawn.js";
import { runCli } from "./cluster.js";

export const sampleText = join(packageRoot, "corpus", "sample", "az-sample.txt");

/**
 * Writes a config for a tiny, fast run into `dir` (as `file`) and returns its path. It trains on
 * the sample text, or on `dataShards`, a folder `data prepare` wrote.
 */
export function writeTinyConfig(
  dir: string,
  overrides: {
    steps?: number;
    every?: number;
    shards?: number;
    seed?: number;
    dataShards?: string;
    file?: string;
    /** `cluster.combine`: host-level combining of gradients. */
    combine?: "auto" | "host" | "none";
    /** Gradient groups per step (default 4). */
    groups?: number;
    /** data.packing, data.documentMask and training.masking.wholeWord; left out of the file when not given. */
    packing?: "full" | "none";
    documentMask?: boolean;
    wholeWord?: boolean;
  } = {},
): string {
  const file = join(dir, overrides.file ?? "tiny-test.yaml");
  writeFileSync(
    file,
    [
      "name: tiny-test",
      "model:",
      "  preset: tiny",
      "data:",
      overrides.dataShards ? `  shards: ${JSON.stringify(overrides.dataShards)}` : `  sources: [{ name: sample, path: ${JSON.stringify(sampleText)} }]`,
      "  vocabSize: 600",
      "  seqLen: 32",
      ...(overrides.packing ? [`  packing: ${overrides.packing}`] : []),
      ...(overrides.documentMask !== undefined ? [`  documentMask: ${overrides.documentMask}`] : []),
      "training:",
      `  seed: ${overrides.seed ?? 7}`,
      `  steps: ${overrides.steps ?? 6}`,
      `  groups: ${overrides.groups ?? 4}`,
      "  groupSize: 2",
      "  microBatch: 2",
      "  lr: 0.003",
      "  warmupSteps: 2",
      ...(overrides.wholeWord !== undefined ? [`  masking: { wholeWord: ${overrides.wholeWord} }`] : []),
      "checkpoint:",
      `  every: ${overrides.every ?? 0}`,
      "cluster:",
      `  shards: ${overrides.shards ?? 1}`,
      "  backend: wasm",
      ...(overrides.combine ? [`  combine: ${overrides.combine}`] : []),
      "",
    ].join("\n"),
  );
  return file;
}

/** The folder of the newest checkpoint of a run. */
export function lastCheckpoint(runDir: string): string {
  const root = join(runDir, "checkpoints");
  if (!existsSync(root)) throw new Error(`${runDir} has no checkpoints`);
  const steps = readdirSync(root)
    .filter((n) => /^step-\d{6}$/.test(n))
    .sort();
  if (steps.length === 0) throw new Error(`${root} holds no finished checkpoint`);
  return join(root, steps.at(-1)!);
}

/**
 * The `params` bytes of a checkpoint, concatenated in order of the slices' starts. Parses
 * safetensors by its specification: u64 little-endian header length, a JSON header with
 * each tensor's dtype, shape and data_offsets, then the data.
 */
export function checkpointParamBytes(dir: string, tensor = "params"): Buffer {
  const slices: { start: number; bytes: Buffer }[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".safetensors"))) {
    const file = readFileSync(join(dir, name));
    const headerLength = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + headerLength).toString("utf8")) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] }
    > & { __metadata__?: Record<string, string> };
    const entry = header[tensor];
    if (!entry) throw new Error(`${name} has no tensor "${tensor}"`);
    if (entry.dtype !== "F32") throw new Error(`${name}: ${tensor} is ${entry.dtype}, expected F32`);
    const [from, to] = entry.data_offsets;
    slices.push({ start: Number(header.__metadata__?.start ?? 0), bytes: file.subarray(8 + headerLength + from, 8 + headerLength + to) });
  }
  slices.sort((a, b) => a.start - b.start);
  return Buffer.concat(slices.map((s) => s.bytes));
}

/**
 * Trains `config` in one process (`train --local`, run "reference" under `cwd/runs`) and
 * returns its final parameter bytes: what every cluster run of the config must equal.
 */
export async function referenceBytes(cwd: string, config: string): Promise<Buffer> {
  const local = await runCli(["train", "--local", "--config", config, "--run", "reference"], cwd, 180_000);
  if (local.code !== 0) throw new Error(`train --local failed: ${local.stderr}`);
  return checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "reference")));
}
