// The optimizer and the schedule: AdamW with decoupled weight decay on matrices only,
// linear warmup then cosine or linear decay, and global-norm clipping.
//
// Owns: the learning rate of a step, the clip factor from the global norm, and applying
// AdamW to any range [start, end) of the flat vector, so a param-shard updating its slice
// gets the same bits as one process updating the whole vector.
// Never: sums the gradient norm over anything but fixed chunks (see layout.CHUNK).
import type { TrainingConfig } from "../runtime/config.js";
import type { Buf, Kernels } from "./kernels.js";
import { CHUNK, type ParamLayout } from "./layout.js";

/** The learning rate of step `step` (0-based; the update it drives is the step+1-th). */
export function learningRate(step: number, t: Pick<TrainingConfig, "lr" | "warmupSteps" | "schedule" | "steps" | "minLrRatio">): number {
  const s = step + 1;
  if (t.warmupSteps > 0 && s <= t.warmupSteps) return (t.lr * s) / t.warmupSteps;
  if (t.schedule === "constant") return t.lr;
  const span = Math.max(1, t.steps - t.warmupSteps);
  const progress = Math.min(1, (s - t.warmupSteps) / span);
  const floor = t.minLrRatio;
  const shape = t.schedule === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return t.lr * (floor + (1 - floor) * shape);
}

/** Global norm from per-chunk partial sums of squares, added in chunk order. */
export function globalNorm(partials: Iterable<number>): number {
  let sum = 0;
  for (const p of partials) sum += p;
  return Math.sqrt(sum);
}

/** The factor the gradient is multiplied by before AdamW: clip to `clipNorm` (0: off). */
export function clipFactor(norm: number, clipNorm: number): number {
  return clipNorm > 0 && norm > clipNorm ? clipNorm / (norm + 1e-6) : 1;
}

export interface SliceBuffers {
  /** Each holds the elements [start, end) of its vector. */
  params: Buf;
  grad: Buf;
  m: Buf;
  v: Buf;
}

/**
 * One AdamW update of the elements [start, end) of the flat vector: the gradient is
 * scaled by `clip`, then each layout entry's part of the range gets AdamW with weight
 * decay where the entry takes it. Every element is updated independently, which is why any
 * slicing of the vector gives the same bits.
 */
export function applyAdamW(
  k: Kernels,
  bufs: SliceBuffers,
  layout: ParamLayout,
  start: number,
  end: number,
  args: { lr: number; step: number; clip: number; training: Pick<TrainingConfig, "beta1" | "beta2" | "eps" | "weightDecay"> },
): void {
  const n = end - start;
  if (args.clip !== 1) k.scale(bufs.grad, n, args.clip);
  const t = args.training;
  for (const e of layout.entries) {
    const from = Math.max(start, e.offset);
    const to = Math.min(end, e.offset + e.size);
    if (from >= to) continue;
    const at = from - start;
    k.adamw(k.view(bufs.params, at), k.view(bufs.grad, at), k.view(bufs.m, at), k.view(bufs.v, at), to - from, {
      lr: args.lr,
      beta1: t.beta1,
      beta2: t.beta2,
      eps: t.eps,
      weightDecay: e.decay ? t.weightDecay : 0,
      step: args.step,
    });
  }
}

/** Per-chunk sums of squares of a chunk-aligned slice of the flat vector (host memory in and out). */
export function chunkSumSquares(k: Kernels, x: Float32Array): Float64Array {
  const buf = k.alloc(x.length);
  try {
    k.upload(buf, x);
    return k.sumSquares(buf, x.length, CHUNK);
  } finally {
    k.free(buf);
  }
}

/** `applyAdamW` on host arrays holding [start, start + params.length): updates params, m and v in place. */
export function applyAdamWOnHost(
  k: Kernels,
  layout: ParamLayout,
  slice: { params: Float32Array; grad: Float32Array; m: Float32Array; v: Float32Array; start: number },
  args: Parameters<typeof applyAdamW>[5],
): void {
  const n = slice.params.length;
  const bufs = { params: k.alloc(n), grad: k.alloc(n), m: k.alloc(n), v: k.alloc(n) };
  try {
    for (const name of ["params", "grad", "m", "v"] as const) k.upload(bufs[name], slice[name]);
    applyAdamW(k, bufs, layout, slice.start, slice.start + n, args);
    for (const name of ["params", "m", "v"] as const) k.download(bufs[name], slice[name]);
  } finally {
    for (const b of Object.values(bufs)) k.free(b);
  }
}
