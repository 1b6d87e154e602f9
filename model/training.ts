// One training run's arithmetic, shared by `train --local` and the actors of a cluster.
//
// Owns: the plan of a run (numbers, layout, which sample is where), a group's gradient
// (its micro-batches accumulated in order), the data a (step, group, micro-batch) gets,
// the slice a shard or the local trainer starts from, and `finishStep`: from the per-chunk
// sums of squares and the group losses to the norm, the clip factor, the apply/skip/stop
// decision and the step's metrics record. Because the local trainer and the cluster call
// exactly these, the cluster's parameters equal the local ones bit for bit (DESIGN.md,
// "Determinism").
// Never: talks to NATS or spawns anything.
import { rmSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import { openTrainingData } from "../corpus/dataset.js";
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { ensurePrepared } from "../corpus/prepare.js";
import { configHash, loadRunConfig, type RunConfig } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import {
  finishCheckpoint,
  layoutSummary,
  listCheckpoints,
  readCheckpointRange,
  readManifest,
  removeInterruptedWrites,
  verifyCheckpoint,
  type CheckpointManifest,
  type PendingCheckpoint,
  type Slice,
  type SliceFile,
} from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { Encoder, type MaskedBatch } from "./encoder.js";
import type { Kernels } from "./kernels.js";
import { CHUNK, initParameters, parameterCount, parameterLayout, type ParamLayout } from "./layout.js";
import { applyMasking } from "./masking.js";
import { clipFactor, globalNorm } from "./optimizer.js";

/** What every actor of a run (and `train --local`) needs to open the same training. */
export const trainingOptionsSchema = z.object({
  configFile: z.string(),
  shardsDir: z.string(),
  shards: z.number().int().positive(),
  loaders: z.number().int().positive(),
  steps: z.number().int().nonnegative(),
  /** A checkpoint folder to continue from. */
  resume: z.string().optional(),
});
export type TrainingOptions = z.infer<typeof trainingOptionsSchema>;

/** The plain facts of a run: no open files, no kernels. */
export interface TrainingPlan {
  options: TrainingOptions;
  config: RunConfig;
  configName: string;
  /** The config's hash without its step count (more steps is still the same run). */
  configHash: string;
  tokenizerHash: string;
  layout: ParamLayout;
  total: number;
  groups: number;
  microBatches: number;
  shards: number;
  steps: number;
  /** The step a resumed run starts at; 0 for a fresh one. */
  startStep: number;
  parameterCount: number;
  /** Forward and backward ≈ 6 FLOPs per parameter per token. */
  flopsPerToken: number;
}

/** Prepares the data of a run (before any actor starts) and checks it can be opened. */
export async function planTraining(
  config: RunConfig,
  opts: { configFile: string; runsRoot: string; runDir: string; shards: number; loaders: number; steps?: number; resume?: string; fresh?: boolean },
): Promise<TrainingOptions> {
  removeInterruptedWrites(opts.runDir);
  if (opts.fresh) {
    if (opts.resume && resolve(opts.resume).startsWith(resolve(opts.runDir, "checkpoints")))
      throw new UserError(`--fresh would delete ${opts.resume}, which --resume names: resume into another --run, or drop one of the two.`);
    rmSync(join(opts.runDir, "checkpoints"), { recursive: true, force: true });
    rmSync(join(opts.runDir, "metrics.jsonl"), { force: true });
  }
  const { shardsDir } = await ensurePrepared(config.data, join(opts.runsRoot, ".cache"), { progress: process.stderr.isTTY });
  const options: TrainingOptions = {
    configFile: opts.configFile,
    shardsDir,
    shards: opts.shards,
    loaders: opts.loaders,
    steps: opts.steps ?? config.training.steps,
    resume: opts.resume,
  };
  if (options.resume) verifyCheckpoint(options.resume);
  const plan = openPlan(options); // checks the resume checkpoint against the config
  checkRunFolder(opts.runDir, plan);
  if (options.shards * CHUNK > plan.total)
    throw new UserError(`${options.shards} shards are more than this model's ${plan.total / CHUNK} chunks of ${CHUNK} parameters: use fewer --shards.`);
  return options;
}

/**
 * A run folder holds one run: every checkpoint in it but the one resumed from must come
 * from this config (its hash) and from no later step than this run starts at. Otherwise
 * this run's checkpoints would mix with another's, and rotation, which keeps the newest,
 * would delete the new ones first.
 */
function checkRunFolder(runDir: string, plan: TrainingPlan): void {
  const resume = plan.options.resume && resolve(plan.options.resume);
  const held = listCheckpoints(runDir).filter((path) => path !== resume);
  const last = held.at(-1);
  if (!last) return;
  const how = "pass --fresh to delete its checkpoints and start over, or use another --run name";
  const foreign = held.map((path) => ({ path, m: readManifest(path) })).findLast(({ m }) => m.configHash !== plan.configHash);
  if (foreign)
    throw new UserError(
      `${foreign.path} was written by another config (hash ${foreign.m.configHash}, ${plan.configName} has ${plan.configHash}): resume that run with its own config, ${how}.`,
    );
  const step = readManifest(last).step;
  if (step > plan.startStep)
    throw new UserError(`${runDir} already holds this config's checkpoints up to step ${step}: continue with --resume ${last}, ${how}.`);
}

export function openPlan(options: TrainingOptions): TrainingPlan {
  const config = loadRunConfig(options.configFile);
  const tokenizer = loadTokenizer(join(options.shardsDir, "tokenizer.json"));
  const layout = parameterLayout(config.model, tokenizer.vocabSize);
  const resume = options.resume ? readManifest(options.resume) : undefined;
  if (resume) checkResume(options.resume!, resume, { config, configName: basename(options.configFile), layout, tokenizerHash: tokenizer.hash });
  const t = config.training;
  const params = parameterCount(layout);
  return {
    options,
    config,
    configName: basename(options.configFile),
    configHash: configHash({ ...config, training: { ...t, steps: 0 } }),
    tokenizerHash: tokenizer.hash,
    layout,
    total: layout.total,
    groups: t.groups,
    microBatches: t.groupSize / t.microBatch,
    shards: options.shards,
    steps: options.steps,
    startStep: resume?.step ?? 0,
    parameterCount: params,
    flopsPerToken: 6 * params,
  };
}

/**
 * A checkpoint resumes only into the model, tokenizer, seed and data order it was trained
 * with; each mismatch is named in one line. Deliberately allowed: more (or fewer) steps,
 * another number of shards, compute actors or loaders, another learning-rate schedule or
 * other optimizer settings, another micro-batch size, and any seed for a checkpoint
 * made by `import` (it has none). Another sequence length or packing is allowed at step 0
 * only, where no data has been read yet.
 */
export function checkResume(path: string, m: CheckpointManifest, plan: Pick<TrainingPlan, "config" | "configName" | "layout" | "tokenizerHash">): void {
  const { model, training: t, data } = plan.config;
  const refuse = (why: string) => {
    throw new UserError(`${path} cannot resume with ${plan.configName}: ${why}; resume with the config it was trained with, or start a new run.`);
  };
  if (m.architecture !== model.architecture) refuse(`it is a ${m.architecture} checkpoint and model.architecture is ${model.architecture}`);
  for (const key of Object.keys(model) as (keyof ModelConfig)[])
    if (key !== "preset" && m.model?.[key] !== model[key]) refuse(`model.${key} is ${m.model?.[key]} in the checkpoint and ${model[key]} in the config`);
  if (JSON.stringify(m.layout) !== JSON.stringify(layoutSummary(plan.layout)))
    refuse(`its parameter layout (${m.total} parameters) differs from this model's (${plan.layout.total})`);
  if (m.tokenizerHash !== plan.tokenizerHash)
    refuse("it was trained with another tokenizer (data.tokenizer, data.vocabSize or the data the tokenizer was trained on)");
  if (m.configHash !== "imported" && m.seed !== t.seed) refuse(`training.seed is ${m.seed} in the checkpoint and ${t.seed} in the config`);
  const next = m.step * t.groups * t.groupSize;
  if (m.dataPosition.nextSample !== next)
    refuse(`the data stopped at sample ${m.dataPosition.nextSample}, but training.groups × training.groupSize would continue at ${next}`);
  if (next > 0 && m.seqLen !== data.seqLen)
    refuse(`data.seqLen is ${m.seqLen} in the checkpoint and ${data.seqLen} in the config, so its samples are other text`);
  if (next > 0 && (m.packing ?? "none") !== (data.packing ?? "none"))
    refuse(`data.packing is ${m.packing ?? "none"} in the checkpoint and ${data.packing ?? "none"} in the config, so its samples are other text`);
}

/** The global index of the first sample of micro-batch `index` of `group` in `step`. */
export function sampleOf(plan: TrainingPlan, step: number, group: number, index: number): number {
  const t = plan.config.training;
  return (step * t.groups + group) * t.groupSize + index * t.microBatch;
}

// ---- one group's gradient ----------------------------------------------------------------------

/** A micro-batch as it travels over NATS: every array as raw little-endian bytes. */
export type BatchBytes = { [K in keyof MaskedBatch]: MaskedBatch[K] extends Int32Array ? Uint8Array : MaskedBatch[K] };

export interface GroupResult {
  gradient: Float32Array;
  lossSum: number;
  count: number;
  tokens: number;
  /** Time spent waiting for batches (communication, in a cluster). */
  fetchMs: number;
}

export interface TrainingModel {
  setParameters(params: Float32Array): void;
  groupGradient(step: number, group: number, fetch: (index: number) => Promise<BatchBytes | MaskedBatch> | BatchBytes | MaskedBatch): Promise<GroupResult>;
}

export function createModel(plan: TrainingPlan, kernels: Kernels): TrainingModel {
  const t = plan.config.training;
  const encoder = new Encoder(kernels, plan.config.model, plan.layout, t.microBatch * plan.config.data.seqLen, t.seed);
  return {
    setParameters: (p) => encoder.setParameters(p),
    async groupGradient(step, group, fetch) {
      let fetchMs = 0;
      const batches: MaskedBatch[] = [];
      for (let i = 0; i < plan.microBatches; i++) {
        const t0 = performance.now();
        batches.push(fromBytes(await fetch(i)));
        fetchMs += performance.now() - t0;
      }
      // The group's loss is the mean over its predicted tokens; the step's gradient is
      // the mean of the group means: a rule that depends on the group alone.
      const count = batches.reduce((n, b) => n + b.labels.reduce((m, l) => m + (l !== -100 ? 1 : 0), 0), 0);
      const gradScale = count > 0 ? 1 / (t.groups * count) : 0;
      encoder.zeroGrads();
      let lossSum = 0;
      let tokens = 0;
      batches.forEach((b, i) => {
        lossSum += encoder.step(b, gradScale, { dropoutCounter: sampleOf(plan, step, group, i) }).lossSum;
        tokens += b.attentionMask.reduce((n, m) => n + (m !== 0 ? 1 : 0), 0); // a packed mask may number documents
      });
      return { gradient: encoder.downloadGrads(), lossSum, count, tokens, fetchMs };
    },
  };
}

export type TrainingData = ReturnType<typeof openData>;

export function openData(plan: TrainingPlan) {
  const t = plan.config.training;
  const { seqLen, packing, documentMask } = plan.config.data;
  const data = openTrainingData(plan.options.shardsDir, { seqLen, packing, documentMask });
  const specialIds = Object.values(data.special);
  return {
    maskedBatch(step: number, group: number, index: number): MaskedBatch {
      if (!(group < t.groups && index < plan.microBatches))
        throw new Error(`no micro-batch ${index} of group ${group}: a step has ${t.groups} groups of ${plan.microBatches}`);
      const firstSample = sampleOf(plan, step, group, index);
      const raw = data.microBatch(t.seed, firstSample, t.microBatch);
      return applyMasking(raw, t.masking, { seed: t.seed, firstSample, vocabSize: data.vocabSize, maskId: data.special.mask, specialIds });
    },
    close: () => data.close(),
  };
}

const i32 = (b: Uint8Array) => new Int32Array(new Uint8Array(b).buffer); // a copy: msgpack bins may sit at any offset

function fromBytes(b: BatchBytes | MaskedBatch): MaskedBatch {
  if (b.inputIds instanceof Int32Array) return b as MaskedBatch;
  const x = b as BatchBytes;
  return {
    batch: x.batch,
    seqLen: x.seqLen,
    inputIds: i32(x.inputIds),
    attentionMask: i32(x.attentionMask),
    tokenTypeIds: i32(x.tokenTypeIds),
    labels: i32(x.labels),
  };
}

/** The bytes of a masked batch, for the wire. */
export function toBytes(b: MaskedBatch): BatchBytes {
  const u8 = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return {
    batch: b.batch,
    seqLen: b.seqLen,
    inputIds: u8(b.inputIds),
    attentionMask: u8(b.attentionMask),
    tokenTypeIds: u8(b.tokenTypeIds),
    labels: u8(b.labels),
  };
}

// ---- the end of a step -------------------------------------------------------------------------

/** One compute actor's share of a step. */
export const actorStepMetricsSchema = z.object({
  id: z.string(),
  /** Gradient groups this actor computed in the step. */
  groups: z.array(z.number().int()),
  stepMs: z.number(),
  tokensPerSec: z.number(),
});

/** The record of one step: a line of metrics.jsonl, and what the coordinator publishes. */
export const stepMetricsSchema = z.object({
  /** Steps completed, this one included. */
  step: z.number().int(),
  loss: z.number(),
  lr: z.number(),
  /** Global gradient norm before clipping. */
  gradNorm: z.number(),
  /** What happened to the update: applied, skipped or stopped (a non-finite gradient). */
  update: z.enum(["applied", "skipped", "stopped"]),
  /** Tokens in this step's global batch (padding excluded). */
  tokens: z.number(),
  /** tokens over all positions of the global batch: what packing fills (absent in records written before it). */
  realTokenShare: z.number().optional(),
  tokensPerSec: z.number(),
  /** Model FLOPs per token for forward + backward (about 6 × parameters for an encoder). */
  flopsPerToken: z.number().optional(),
  /** Wall time of the step up to the update decision (the shards' AdamW comes after). */
  stepMs: z.number(),
  /** Mean over compute actors of forward/backward time. */
  computeMs: z.number(),
  /** Time spent moving parameters and gradients through NATS (0 in one process). */
  commMs: z.number(),
  /** Time waited for the slowest group (stragglers, reassignment). */
  waitMs: z.number(),
  /** Bytes published through NATS during the step, all actors together. */
  bytesSent: z.number(),
  /** Gradient bytes the shards took in (with host-level combining they grow with hosts, not actors). */
  shardBytes: z.number().optional(),
  actors: z.array(actorStepMetricsSchema),
});
export type StepMetrics = z.infer<typeof stepMetricsSchema>;
export type ActorStepMetrics = z.infer<typeof actorStepMetricsSchema>;

/** What a step produced, however it was computed. */
export interface StepResult {
  /** The step finished (0-based: its update is the step+1-th). */
  step: number;
  lr: number;
  /** Per-chunk sums of squares of the reduced gradient, in chunk order. */
  partials: Iterable<number>;
  /** Per group, in group order: the sum of its masked-token losses and their count. */
  lossSums: number[];
  counts: number[];
  tokens: number;
  stepMs: number;
  /** A cluster's timings; one process has no communication and computes the whole step. */
  traffic?: Pick<StepMetrics, "computeMs" | "commMs" | "waitMs" | "bytesSent" | "shardBytes" | "actors">;
}

export interface StepOutcome {
  gradNorm: number;
  /** Multiply the reduced gradient by this before AdamW. */
  clip: number;
  /** The update: apply it, skip it (non-finite gradient), or stop the run. */
  update: StepMetrics["update"];
  metrics: StepMetrics;
}

/**
 * The end of every step, in one process or a cluster: the global norm from the per-chunk
 * partial sums (added in chunk order, so any sharding gives the same bits), the clip factor,
 * what `training.onNonFinite` says to do with a gradient that holds NaN or Inf, and the
 * metrics record. The loss is the mean over the step's masked tokens.
 */
export function finishStep(plan: Pick<TrainingPlan, "config" | "flopsPerToken">, r: StepResult): StepOutcome {
  const t = plan.config.training;
  const gradNorm = globalNorm(r.partials);
  const update = Number.isFinite(gradNorm) ? "applied" : t.onNonFinite === "stop" ? "stopped" : "skipped";
  const lossSum = r.lossSums.reduce((a, b) => a + b, 0);
  const count = r.counts.reduce((a, b) => a + b, 0);
  const metrics: StepMetrics = {
    step: r.step + 1,
    loss: count > 0 ? lossSum / count : NaN,
    lr: r.lr,
    gradNorm,
    update,
    tokens: r.tokens,
    realTokenShare: r.tokens / (t.groups * t.groupSize * plan.config.data.seqLen),
    tokensPerSec: r.tokens / (r.stepMs / 1000),
    flopsPerToken: plan.flopsPerToken,
    stepMs: r.stepMs,
    ...(r.traffic ?? { computeMs: r.stepMs, commMs: 0, waitMs: 0, bytesSent: 0, actors: [] }),
  };
  return { gradNorm, clip: clipFactor(gradNorm, t.clipNorm), update, metrics };
}

// ---- parameters in and out ---------------------------------------------------------------------

/**
 * The elements [start, end) of the parameters and moments: read from a checkpoint, or,
 * without one, the seeded initialisation with zero moments at step 0.
 */
export function readSlice(plan: TrainingPlan, checkpoint: string | undefined, start: number, end: number): Slice & { step: number } {
  if (checkpoint) {
    const r = readCheckpointRange(checkpoint, start, end);
    return { params: r.params, m: r.m, v: r.v, step: r.manifest.step };
  }
  return {
    params: initParameters(plan.layout, plan.config.training.seed).slice(start, end),
    m: new Float32Array(end - start),
    v: new Float32Array(end - start),
    step: 0,
  };
}

/** Seals a checkpoint whose slice files are written: its manifest, its tokenizer, the rename. */
export function sealCheckpoint(plan: TrainingPlan, pending: PendingCheckpoint, step: number, slices: SliceFile[]): string {
  const { config, layout } = plan;
  const t = config.training;
  return finishCheckpoint(
    pending,
    {
      step,
      configHash: plan.configHash,
      seed: t.seed,
      tokenizerHash: plan.tokenizerHash,
      dataPosition: { nextSample: step * t.groups * t.groupSize },
      total: layout.total,
      layout: layoutSummary(layout),
      architecture: config.model.architecture,
      vocabSize: layout.vocabSize,
      model: config.model,
      seqLen: config.data.seqLen,
      // Written only for packed runs, so the manifests of unpacked runs stay as they were.
      ...(config.data.packing === "full" ? { packing: config.data.packing } : {}),
      shards: slices,
    },
    config.checkpoint.keep,
    { "tokenizer.json": join(plan.options.shardsDir, "tokenizer.json") },
  );
}
