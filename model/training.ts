// One training run's arithmetic, shared by `train --local` and the actors of a cluster.
//
// Owns: everything a step is made of, as functions both paths call in the same way:
// a group's gradient (its micro-batches accumulated in order), the fixed-tree sum of the
// group gradients, the per-chunk sums of squares, the clip factor, AdamW over any range,
// the data a (step, group, micro-batch) gets, and checkpoints. Because the local trainer
// and the cluster call exactly these, the cluster's parameters equal the local ones bit
// for bit (DESIGN.md, "Determinism").
// Never: talks to NATS or spawns anything.
import { basename, join } from "node:path";
import { decodeMessage } from "../runtime/codec.js";
import { configHash, loadRunConfig, type RunConfig } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import { openTrainingData } from "../corpus/dataset.js";
import { ensurePrepared } from "../corpus/prepare.js";
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { beginCheckpoint, finishCheckpoint, layoutSummary, readCheckpointRange, readManifest, writeSlice, type PendingCheckpoint, type SliceFile } from "./checkpoint.js";
import { Encoder, type MaskedBatch } from "./encoder.js";
import type { Kernels } from "./kernels.js";
import { createBackend } from "./backend.js";
import { CHUNK, initParameters, parameterCount, parameterLayout, type ParamLayout } from "./layout.js";
import { applyMasking } from "./masking.js";
import { applyAdamW, clipFactor, learningRate } from "./optimizer.js";

/** What every actor of a run (and `train --local`) needs to open the same training. */
export interface TrainingOptions {
  configFile: string;
  shardsDir: string;
  shards: number;
  loaders: number;
  steps: number;
  /** A checkpoint folder to continue from. */
  resume?: string;
  backend?: string;
}

/** A micro-batch as it travels over NATS: every array as raw little-endian bytes. */
export interface BatchBytes {
  batch: number;
  seqLen: number;
  inputIds: Uint8Array;
  attentionMask: Uint8Array;
  tokenTypeIds: Uint8Array;
  labels: Uint8Array;
}

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
  groupGradient(step: number, group: number, fetch: (index: number) => Promise<BatchBytes> | BatchBytes): Promise<GroupResult>;
}

export interface TrainingData {
  maskedBatch(step: number, group: number, index: number): MaskedBatch;
  close(): void;
}

/** Prepares the data of a run (before any actor starts) and says how to open it. */
export async function planTraining(config: RunConfig, opts: { configFile: string; runsRoot: string; shards: number; loaders: number; steps?: number; resume?: string }): Promise<TrainingOptions> {
  const { shardsDir } = await ensurePrepared(config.data, join(opts.runsRoot, ".cache"), { progress: process.stderr.isTTY });
  const options: TrainingOptions = { configFile: opts.configFile, shardsDir, shards: opts.shards, loaders: opts.loaders, steps: opts.steps ?? config.training.steps, resume: opts.resume };
  const training = await openTraining(options); // checks the resume checkpoint against the model
  if (options.shards * CHUNK > training.total) throw new UserError(`${options.shards} shards are more than this model's ${training.total / CHUNK} chunks of ${CHUNK} parameters: use fewer --shards.`);
  return options;
}

export type Training = Awaited<ReturnType<typeof openTraining>>;

export async function openTraining(options: TrainingOptions) {
  const config = loadRunConfig(options.configFile);
  const tokenizer = loadTokenizer(join(options.shardsDir, "tokenizer.json"));
  const layout: ParamLayout = parameterLayout(config.model, tokenizer.vocabSize);
  const t = config.training;
  const microBatches = t.groupSize / t.microBatch;
  const resume = options.resume ? readManifest(options.resume) : undefined;
  if (resume && resume.total !== layout.total)
    throw new UserError(`${options.resume} holds ${resume.total} parameters but this config's model has ${layout.total}: resume with the config it was trained with.`);
  const hash = configHash({ ...config, training: { ...config.training, steps: 0 } });
  const params = parameterCount(layout);
  const masking = { style: t.masking.style, rate: t.masking.rate, wholeWord: t.masking.wholeWord };
  const sampleOf = (step: number, group: number, index: number) => (step * t.groups + group) * t.groupSize + index * t.microBatch;

  const training = {
    config,
    configName: basename(options.configFile),
    layout,
    total: layout.total,
    chunk: CHUNK,
    groups: t.groups,
    shards: options.shards,
    loaders: options.loaders,
    steps: options.steps,
    startStep: resume?.step ?? 0,
    parameterCount: params,
    /** Forward and backward ≈ 6 FLOPs per parameter per token. */
    flopsPerToken: 6 * params,
    decode: <T>(data: Uint8Array) => decodeMessage<T>(data, "a training message"),
    learningRate: (step: number) => learningRate(step, t),
    clipFactor: (norm: number) => clipFactor(norm, t.clipNorm),

    /** a + b elementwise in float32 (correctly rounded wherever it runs). */
    add(a: Float32Array, b: Float32Array): Float32Array {
      const out = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
      return out;
    },

    createKernels: createBackend,

    createModel(kernels: Kernels): TrainingModel {
      const encoder = new Encoder(kernels, config.model, layout, t.microBatch * config.data.seqLen, t.seed);
      return {
        setParameters: (p) => encoder.setParameters(p),
        async groupGradient(step, group, fetch) {
          let fetchMs = 0;
          const batches: MaskedBatch[] = [];
          for (let i = 0; i < microBatches; i++) {
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
            lossSum += encoder.step(b, gradScale, { dropoutCounter: sampleOf(step, group, i) }).lossSum;
            tokens += b.attentionMask.reduce((n, m) => n + m, 0);
          });
          return { gradient: encoder.downloadGrads(), lossSum, count, tokens, fetchMs };
        },
      };
    },

    openData(): TrainingData {
      const data = openTrainingData(options.shardsDir, config.data.seqLen);
      const specialIds = Object.values(data.special);
      return {
        maskedBatch(step, group, index) {
          if (!(group < t.groups && index < microBatches)) throw new Error(`no micro-batch ${index} of group ${group}: a step has ${t.groups} groups of ${microBatches}`);
          const firstSample = sampleOf(step, group, index);
          const raw = data.microBatch(t.seed, firstSample, t.microBatch);
          return applyMasking(raw, masking, { seed: t.seed, firstSample, vocabSize: data.vocabSize, maskId: data.special.mask, specialIds });
        },
        close: () => data.close(),
      };
    },

    /** Per-chunk sums of squares of a chunk-aligned slice, on the given kernels. */
    chunkSumSquares(kernels: Kernels, x: Float32Array): Float64Array {
      const buf = kernels.alloc(x.length);
      try {
        kernels.upload(buf, x);
        return kernels.sumSquares(buf, x.length, CHUNK);
      } finally {
        kernels.free(buf);
      }
    },

    /** AdamW over [start, start + params.length), in place on the arrays. */
    adamw(kernels: Kernels, s: { params: Float32Array; grad: Float32Array; m: Float32Array; v: Float32Array; start: number; lr: number; step: number; clip: number }): void {
      const n = s.params.length;
      const bufs = { params: kernels.alloc(n), grad: kernels.alloc(n), m: kernels.alloc(n), v: kernels.alloc(n) };
      try {
        kernels.upload(bufs.params, s.params);
        kernels.upload(bufs.grad, s.grad);
        kernels.upload(bufs.m, s.m);
        kernels.upload(bufs.v, s.v);
        applyAdamW(kernels, bufs, layout, s.start, s.start + n, { lr: s.lr, step: s.step, clip: s.clip, training: t });
        kernels.download(bufs.params, s.params);
        kernels.download(bufs.m, s.m);
        kernels.download(bufs.v, s.v);
      } finally {
        for (const b of Object.values(bufs)) kernels.free(b);
      }
    },

    /** The slice a shard (or the local trainer) starts from: the resume checkpoint or the seeded init. */
    initialSlice(start: number, end: number) {
      if (options.resume) return training.loadSlice(options.resume, start, end);
      return { params: initParameters(layout, t.seed).slice(start, end), m: new Float32Array(end - start), v: new Float32Array(end - start), step: 0 };
    },

    /** A checkpoint's slice; "" means the seeded initialisation (a rollback with no checkpoint). */
    loadSlice(path: string, start: number, end: number) {
      if (!path) return { params: initParameters(layout, t.seed).slice(start, end), m: new Float32Array(end - start), v: new Float32Array(end - start), step: 0 };
      const r = readCheckpointRange(path, start, end);
      return { params: r.params, m: r.m, v: r.v, step: r.manifest.step };
    },

    beginCheckpoint: (runDir: string, step: number) => beginCheckpoint(runDir, step),
    saveSlice: (dir: string, index: number, count: number, start: number, slice: { params: Float32Array; m: Float32Array; v: Float32Array }) => writeSlice(dir, index, count, start, slice),
    finishCheckpoint(pending: PendingCheckpoint, step: number, slices: SliceFile[]): string {
      return finishCheckpoint(
        pending,
        {
          step,
          configHash: hash,
          seed: t.seed,
          tokenizerHash: tokenizer.hash,
          dataPosition: { nextSample: step * t.groups * t.groupSize },
          total: layout.total,
          layout: layoutSummary(layout),
          architecture: config.model.architecture,
          vocabSize: tokenizer.vocabSize,
          model: config.model,
          seqLen: config.data.seqLen,
          shards: slices,
        },
        config.checkpoint.keep,
        { "tokenizer.json": join(options.shardsDir, "tokenizer.json") },
      );
    },
    stepOfCheckpoint: (path: string) => readManifest(path).step,
    checkpointsDir: (runDir: string) => join(runDir, "checkpoints"),
  };
  return training;
}

const i32 = (b: Uint8Array) => new Int32Array(new Uint8Array(b).buffer); // a copy: msgpack bins may sit at any offset

function fromBytes(b: BatchBytes | MaskedBatch): MaskedBatch {
  if (b.inputIds instanceof Int32Array) return b as MaskedBatch;
  const x = b as BatchBytes;
  return { batch: x.batch, seqLen: x.seqLen, inputIds: i32(x.inputIds), attentionMask: i32(x.attentionMask), tokenTypeIds: i32(x.tokenTypeIds), labels: i32(x.labels) };
}

/** The bytes of a masked batch, for the wire. */
export function toBytes(b: MaskedBatch): BatchBytes {
  const u8 = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return { batch: b.batch, seqLen: b.seqLen, inputIds: u8(b.inputIds), attentionMask: u8(b.attentionMask), tokenTypeIds: u8(b.tokenTypeIds), labels: u8(b.labels) };
}
