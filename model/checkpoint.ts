// Checkpoints: `runs/<name>/checkpoints/step-NNNNNN/`, one safetensors file per slice of the
// flat vector (params, adam_m, adam_v) and a manifest written last.
//
// Owns: the checkpoint format, writing it atomically (a temporary folder, fsync, rename),
// reading any range of the vector whatever the number of slice files (so a run resumes
// with another number of shards), and verifying checksums and completeness.
// Never: leaves a half-written checkpoint where a reader could take it for a whole one.
import { createHash } from "node:crypto";
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { UserError } from "../runtime/errors.js";
import type { ModelConfig } from "./config.js";
import type { ParamLayout } from "./layout.js";
import { f32, readSafetensors, writeSafetensors } from "./safetensors.js";

export const checkpointFormat = "aze-run-checkpoint/1";

export interface SliceFile {
  file: string;
  start: number;
  end: number;
  sha256: string;
}

export interface CheckpointManifest {
  format: typeof checkpointFormat;
  step: number;
  configHash: string;
  seed: number;
  tokenizerHash: string;
  /** The next global sample index the data would serve (step · global batch). */
  dataPosition: { nextSample: number };
  total: number;
  layout: { name: string; offset: number; shape: number[]; size: number }[];
  architecture: string;
  vocabSize: number;
  /** The model's architecture config, so a checkpoint can be evaluated or exported alone. */
  model: ModelConfig;
  seqLen: number;
  /** data.packing of the run, where it packed ("full"); absent: one document per sequence. */
  packing?: "full";
  shards: SliceFile[];
}

export interface Slice {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export const stepFolderName = (step: number) => `step-${String(step).padStart(6, "0")}`;

export interface PendingCheckpoint {
  temp: string;
  final: string;
}

/**
 * A temporary folder beside the final one. A folder that already holds this step is
 * replaced when the new one is sealed, never kept: a run checks its folder at start
 * (training.ts, `checkRunFolder`), so such a folder can only be this run's own, and the
 * config hash leaves out the step count, on which the learning-rate schedule depends,
 * so keeping a folder for its name could keep bits another run computed.
 */
export function beginCheckpoint(runDir: string, step: number): PendingCheckpoint {
  const root = join(runDir, "checkpoints");
  const final = join(root, stepFolderName(step));
  const temp = join(root, `.${stepFolderName(step)}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(temp, { recursive: true });
  return { temp, final };
}

/**
 * Removes a pending checkpoint whose write failed and says why in one sentence: a full disk
 * (or any file error) names the checkpoint and leaves the previous one, which is untouched.
 */
export function abandonCheckpoint(pending: PendingCheckpoint, err: unknown): Error {
  rmSync(pending.temp, { recursive: true, force: true });
  const { code } = err as NodeJS.ErrnoException;
  if (code === "ENOSPC" || code === "EDQUOT")
    return new UserError(
      `${pending.final}: no space left on the device, so this checkpoint was not written (the previous one is intact): free some space or write elsewhere.`,
    );
  if (code) return new UserError(`${pending.final}: the checkpoint could not be written (${(err as Error).message}); the previous one is intact.`);
  return err as Error;
}

/** The finished checkpoints of a run folder (`step-NNNNNN`), oldest first. */
export function listCheckpoints(runDir: string): string[] {
  const root = join(runDir, "checkpoints");
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => /^step-\d{6}$/.test(n))
    .sort()
    .map((n) => join(root, n));
}

/** Removes the temporary folders (`.step-*.tmp-*`) that a write killed midway leaves behind. */
export function removeInterruptedWrites(runDir: string): void {
  const root = join(runDir, "checkpoints");
  if (!existsSync(root)) return;
  for (const n of readdirSync(root)) if (/^\.step-\d{6}\.tmp-/.test(n)) rmSync(join(root, n), { recursive: true, force: true });
}

/** Writes one slice file into a pending checkpoint and returns its entry for the manifest. */
export function writeSlice(dir: string, index: number, count: number, start: number, slice: Slice): SliceFile {
  const file = `shard-${String(index).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`;
  const n = slice.params.length;
  writeSafetensors(
    join(dir, file),
    [
      { name: "params", dtype: "F32", shape: [n], data: slice.params },
      { name: "adam_m", dtype: "F32", shape: [n], data: slice.m },
      { name: "adam_v", dtype: "F32", shape: [n], data: slice.v },
    ],
    { start: String(start), end: String(start + n) },
  );
  return { file, start, end: start + n, sha256: sha256File(join(dir, file)) };
}

/**
 * Writes the manifest last, then renames the folder into place; keeps the newest `keep`.
 * `files` (the tokenizer.json) are copied in first, so the checkpoint stands alone.
 */
export function finishCheckpoint(
  pending: PendingCheckpoint,
  manifest: Omit<CheckpointManifest, "format">,
  keep = Infinity,
  files: Record<string, string> = {},
): string {
  for (const [name, from] of Object.entries(files)) copyFileSync(from, join(pending.temp, name));
  const whole = { format: checkpointFormat, ...manifest, shards: [...manifest.shards].sort((a, b) => a.start - b.start) };
  const covered = whole.shards.reduce((at, s) => (s.start === at ? s.end : NaN), 0);
  if (covered !== whole.total) throw new Error(`checkpoint slices do not cover [0, ${whole.total}) exactly`);
  const file = join(pending.temp, "manifest.json");
  writeFileSync(file, `${JSON.stringify(whole, null, 1)}\n`);
  fsyncPath(file);
  fsyncPath(pending.temp);
  // A replaced folder is renamed aside first (a temporary name, removed at the next start if
  // we die here): a reader finds the old checkpoint, no checkpoint, or the new one, never half.
  const old = `${pending.temp}-replaced`;
  if (existsSync(pending.final)) renameSync(pending.final, old);
  renameSync(pending.temp, pending.final);
  rmSync(old, { recursive: true, force: true });
  fsyncPath(dirname(pending.final));
  if (Number.isFinite(keep)) {
    const steps = listCheckpoints(dirname(dirname(pending.final)));
    for (const old of steps.slice(0, Math.max(0, steps.length - keep))) rmSync(old, { recursive: true, force: true });
  }
  return pending.final;
}

export function readManifest(path: string): CheckpointManifest {
  const file = join(path, "manifest.json");
  if (!existsSync(file)) throw new UserError(`${path} is not a checkpoint: it has no manifest.json (an interrupted write leaves none).`);
  let m: CheckpointManifest;
  try {
    m = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    throw new UserError(`${file} is not valid JSON: the checkpoint is damaged.`);
  }
  if (m.format !== checkpointFormat) throw new UserError(`${file} has format "${m.format}", expected "${checkpointFormat}".`);
  return m;
}

/** The elements [start, end) of params and moments, read from whichever slice files hold them. */
export function readCheckpointRange(path: string, start: number, end: number): Slice & { manifest: CheckpointManifest } {
  const manifest = readManifest(path);
  if (end > manifest.total)
    throw new UserError(`${path} holds ${manifest.total} parameters; [${start}, ${end}) does not fit: is it a checkpoint of this model?`);
  const out: Slice = { params: new Float32Array(end - start), m: new Float32Array(end - start), v: new Float32Array(end - start) };
  for (const s of manifest.shards) {
    const from = Math.max(start, s.start);
    const to = Math.min(end, s.end);
    if (from >= to) continue;
    const file = join(path, s.file);
    if (!existsSync(file)) throw new UserError(`${path} is incomplete: ${s.file} is missing.`);
    if (sha256File(file) !== s.sha256) throw new UserError(`${file} fails its checksum: the checkpoint is corrupted.`);
    const st = readSafetensors(file);
    for (const [key, name] of [
      ["params", "params"],
      ["m", "adam_m"],
      ["v", "adam_v"],
    ] as const) {
      const data = f32(st, name, file);
      if (data.length !== s.end - s.start) throw new UserError(`${file}: ${name} has ${data.length} elements, the manifest says ${s.end - s.start}.`);
      out[key].set(data.subarray(from - s.start, to - s.start), from - start);
    }
  }
  return { ...out, manifest };
}

/** Checks a checkpoint whole: manifest, coverage, every file's checksum and shapes. */
export function verifyCheckpoint(path: string): { step: number; files: number; total: number } {
  const manifest = readManifest(path);
  const shards = [...manifest.shards].sort((a, b) => a.start - b.start);
  let at = 0;
  for (const s of shards) {
    if (s.start !== at) throw new UserError(`${path} is incomplete: no slice holds elements [${at}, ${s.start}).`);
    at = s.end;
  }
  if (at !== manifest.total) throw new UserError(`${path} is incomplete: no slice holds elements [${at}, ${manifest.total}).`);
  readCheckpointRange(path, 0, manifest.total);
  return { step: manifest.step, files: shards.length, total: manifest.total };
}

export function layoutSummary(layout: ParamLayout): CheckpointManifest["layout"] {
  return layout.entries.map(({ name, offset, shape, size }) => ({ name, offset, shape, size }));
}

function sha256File(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
