// The training messages between actors, one type per subject (see runtime/subjects.ts).
//
// Owns: the shape of every training message. Never: behaviour; these travel as msgpack.
//
// One step t, as the coordinator drives it:
//   coordinator  ─ train.step {t, attempt, lr, assignment} ─▶ compute actors
//   compute      ─ train.params-req.<s> (only when it lacks version t) ─▶ shard s
//   shard s      ─ train.params.<s> (tensor, meta {version}) ─▶ compute actors
//   compute      ─ train.batch.<k> request ─▶ data-loader k ─ reply: masked micro-batch
//   compute      ─ train.grad.<s> (tensor, meta GradientMeta) ─▶ shard s, per aligned block
//   compute      ─ train.group-done ─▶ coordinator (loss, tokens, timings)
//   shard s      ─ train.shard-report {reduced, partials} ─▶ coordinator
//   coordinator  ─ train.clip {t, clip, apply} ─▶ shards
//   shard s      ─ applies AdamW, publishes version t+1, train.shard-report {applied}
import type { BatchBytes } from "../model/training.js";
import type { Block } from "./reduction-tree.js";

export interface StepOrder {
  step: number;
  /** Raised each time the groups still missing are dealt again (a death, a timeout). */
  attempt: number;
  lr: number;
  /** compute actor id → the groups it computes in this attempt. */
  assignment: Record<string, number[]>;
}

/** Travels as the meta of a gradient tensor: the slice of one aligned block for one shard. */
export interface GradientMeta {
  step: number;
  block: Block;
  shard: number;
  from: string;
}

export interface GroupDone {
  step: number;
  attempt: number;
  from: string;
  groups: number[];
  /** Sum of the masked-token losses and their count, per group, in group order. */
  lossSums: number[];
  counts: number[];
  tokens: number;
  computeMs: number;
  commMs: number;
  bytesSent: number;
}

export type ShardReport =
  | { phase: "reduced"; step: number; shard: number; partials: Uint8Array; finite: boolean; bytesReceived: number }
  | { phase: "applied"; step: number; shard: number; version: number }
  | { phase: "loaded"; step: number; shard: number; version: number };

export interface ClipOrder {
  step: number;
  /** Multiply the reduced gradient by this before AdamW. */
  clip: number;
  lr: number;
  /** false: skip the update (non-finite gradient); the version still advances. */
  apply: boolean;
}

export interface BatchRequest {
  step: number;
  group: number;
  /** micro-batch index within the group */
  index: number;
}

/** A masked micro-batch: every array is (batch, seqLen) row-major, as raw bytes. */
export type BatchReply = { ok: true } & BatchBytes;

export type CheckpointOrder =
  | { op: "save"; step: number; dir: string; shards: number }
  | { op: "load"; path: string };

export interface CheckpointSaved {
  ok: boolean;
  error?: string;
  file?: string;
  start?: number;
  end?: number;
  sha256?: string;
}
