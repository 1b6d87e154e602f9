// The param-shard actor. Owns: a contiguous, chunk-aligned slice [start, end) of the flat
// parameter vector and its AdamW moments.
//
// Each step it receives gradient blocks for its slice, reduces them along the fixed tree,
// reports its per-chunk sums of squares, and when the coordinator sends the clip factor it
// applies AdamW and publishes the next version of its slice. It writes and loads its slice
// of checkpoints. It reads the step orders, and takes a gradient block only from an actor
// dealt every group of it in that step (or its host's combiner); with `verify: 2`, only when the copies of two actors
// dealt it agree bit for bit (actors/gradient-votes.ts).
// Never: adds a block twice, applies a step twice, or applies a gradient whose reduction is
// incomplete or not finite.
import { existsSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createBackend } from "../model/backend.js";
import { writeSlice } from "../model/checkpoint.js";
import type { Kernels } from "../model/kernels.js";
import { CHUNK } from "../model/layout.js";
import { applyAdamWOnHost, chunkSumSquares } from "../model/optimizer.js";
import { addF32, blockKey, reduceTree, shardRanges } from "../model/reduction-tree.js";
import { openPlan, readSlice, type TrainingPlan } from "../model/training.js";
import { Actor } from "../runtime/actor.js";
import { GradientVotes } from "./gradient-votes.js";
import { combinedBy } from "./host-combiner.js";
import { tensorData, tensorFrom, TensorAssembler, type Tensor } from "../runtime/codec.js";
import { publishTensor } from "../runtime/nats.js";
import { senderOf } from "../runtime/subjects.js";
import {
  checkpointOrderSchema,
  clipOrderSchema,
  gradientMetaSchema,
  paramsRequestSchema,
  stepOrderSchema,
  workerOptionsSchema,
  type CheckpointOrder,
  type CheckpointSaved,
  type ClipOrder,
  type GradientMeta,
  type ShardReport,
  type StepOrder,
} from "./protocol.js";

/** Asks for this slice are answered by one broadcast per this many ms at most. */
const republishGapMs = 1000;

export class ParamShard extends Actor {
  private readonly options = workerOptionsSchema.parse(this.spec.options);
  private training!: TrainingPlan;
  private kernels!: Kernels;
  private readonly index = Number(this.spec.id.split("-").pop());
  private sliceStart = 0;
  private sliceEnd = 0;
  /** Parameters of `version` (= the number of steps applied). */
  private params!: Float32Array;
  private m!: Float32Array;
  private v!: Float32Array;
  private version = 0;
  /** The last broadcast of this slice, and a republish waiting for its turn. */
  private lastPublished = { version: -1, at: 0 };
  private republish?: NodeJS.Timeout;
  /** Gradient blocks of the current step, by block key. */
  private blocks = new Map<string, Float32Array>();
  private reduced?: Float32Array;
  private bytesReceived = 0;
  private assembler!: TensorAssembler;
  /** The step orders seen, by step: who was dealt which groups. */
  private orders = new Map<number, StepOrder[]>();
  /** Gradient blocks whose sender was not (yet) dealt their groups. */
  private parked: { sender: string; meta: GradientMeta; tensor: Tensor }[] = [];
  /** `verify: 2`: the copies of this step's blocks and who was dealt them. */
  private votes?: GradientVotes;
  /** Blocks of this step already reported as disagreed (by how many copies) or outvoted (by actor). */
  private voteReported = new Set<string>();

  protected override async onStart(): Promise<void> {
    // A run without a training config only lives: registers, heartbeats, obeys stop.
    if (!this.options.training) return;
    this.training = openPlan(this.options.training);
    this.kernels = (await createBackend(this.options.backend)).kernels;
    const shards = this.training.shards;
    if (!(this.index < shards)) throw new Error(`${this.id} has index ${this.index} but the run has ${shards} shards`);
    ({ start: this.sliceStart, end: this.sliceEnd } = shardRanges(this.training.total, shards, CHUNK)[this.index]!);
    const initial = readSlice(this.training, this.training.options.resume, this.sliceStart, this.sliceEnd);
    this.params = initial.params;
    this.m = initial.m;
    this.v = initial.v;
    this.version = initial.step;
    this.log.info("slice", { start: this.sliceStart, end: this.sliceEnd, version: this.version });
    // A gradient block is exactly this shard's slice: a frame claiming anything else is
    // rejected before a byte is allocated for it. Every block of a step may be in flight at once.
    const length = this.sliceEnd - this.sliceStart;
    this.assembler = new TensorAssembler({
      maxBytes: 4 * 1024 ** 3,
      timeoutMs: 30_000,
      maxPending: 2 * this.training.groups,
      misfit: (dtype, shape) => (dtype === "f32" && shape.length === 1 && shape[0] === length ? undefined : `does not fit this shard's ${length} f32 elements`),
    });

    this.nc.subscribe(this.subjects.gradientsTo(this.index), { callback: (_e, msg) => this.onGradientChunk(msg.data, senderOf(msg.subject)) });
    this.on(this.subjects.step, stepOrderSchema, (order) => this.onStepOrder(order));
    this.on(this.subjects.paramsRequest(this.index), paramsRequestSchema, () => this.onParamsRequest());
    this.on(this.subjects.clip, clipOrderSchema, (order) => this.onClip(order));
    this.handle(this.subjects.checkpoint(this.index), checkpointOrderSchema, (order) => this.onCheckpoint(order));
    this.publishParams();
    this.report({ phase: "loaded", step: this.version, shard: this.index, version: this.version });
  }

  protected override status(): Record<string, unknown> {
    return { shard: this.index, start: this.sliceStart, end: this.sliceEnd, version: this.version };
  }

  private publishParams(): void {
    this.lastPublished = { version: this.version, at: Date.now() };
    publishTensor(this.nc, this.subjects.params(this.index), tensorFrom(this.params, [this.params.length]), { version: this.version, shard: this.index });
  }

  /**
   * A compute actor lacks this slice (it joined late, or missed a broadcast) and asks again.
   * A broadcast reaches every actor, so many asks at once (hundreds of actors joining) are
   * answered by one publish a second at most, not one each: N asks would otherwise send N
   * copies to N actors. Askers ask again every 2 s until they have it.
   */
  private onParamsRequest(): void {
    const since = Date.now() - this.lastPublished.at;
    if (this.lastPublished.version !== this.version || since >= republishGapMs) return this.publishParams();
    if (this.republish) return;
    this.republish = setTimeout(() => {
      this.republish = undefined;
      if (!this.nc.isClosed()) this.publishParams();
    }, republishGapMs - since);
    this.republish.unref();
  }

  private report(r: ShardReport): void {
    this.publish(this.subjects.shardReport(this.index), r);
  }

  private onGradientChunk(data: Uint8Array, sender: string): void {
    const whole = this.assemble(this.assembler, gradientMetaSchema, data);
    if (whole) this.acceptGradient(sender, whole.meta, whole.tensor);
  }

  /**
   * A gradient block counts only when its sender, named by the subject (which the server
   * lets no one else publish on), was dealt every group of the block in that step.
   */
  private acceptGradient(sender: string, meta: GradientMeta, tensor: Tensor): void {
    const reject = (reason: string) => this.log.warn("rejected", { reason, from: sender, step: meta.step });
    // A contribution for a step already applied (late, or from an actor that was replaced) is dropped.
    if (meta.step !== this.version) return reject(`gradient for step ${meta.step} while at step ${this.version}`);
    if (this.reduced) return; // complete already: anything more is a duplicate
    if (meta.from !== sender) return reject(`gradient sent by ${sender} claims to come from ${meta.from}`);
    if (meta.shard !== this.index) return reject(`gradient for shard ${meta.shard} sent to shard ${this.index}`);
    if (!(meta.block.lo >= 0 && meta.block.hi <= this.training.groups && meta.block.lo < meta.block.hi))
      return reject(`block ${JSON.stringify(meta.block)} is outside the ${this.training.groups} groups`);
    // A host combiner sends the blocks of its host's actors too: theirs count as dealt to it.
    const dealt = new Set(
      (this.orders.get(meta.step) ?? []).flatMap((order) => [sender, ...combinedBy(order, sender)].flatMap((actor) => order.assignment[actor] ?? [])),
    );
    const covered = Array.from({ length: meta.block.hi - meta.block.lo }, (_, i) => meta.block.lo + i).every((g) => dealt.has(g));
    if (!covered) {
      // Not (yet) dealt to the sender: held until the step ends, in case its order is late;
      // a step's worth at most, so a flood from one identity cannot grow the shard.
      this.parked.push({ sender, meta, tensor });
      if (this.parked.length > 2 * this.training.groups) this.rejectParked(this.parked.shift()!);
      return;
    }
    if (this.training.config.cluster.verify === 2) return this.onCopy(sender, meta, tensor.bytes);
    const key = blockKey(meta.block);
    if (this.blocks.has(key)) return; // duplicate
    this.blocks.set(key, tensorData(tensor) as Float32Array);
    this.bytesReceived += tensor.bytes.byteLength;
    this.reduceIfComplete();
  }

  /**
   * A step order says who computes which groups: the blocks those make are theirs. Blocks
   * that overtook their order (possible across a cluster of servers) may fit now.
   */
  private onStepOrder(order: StepOrder): void {
    if (order.step < this.version) return;
    this.orders.set(order.step, [...(this.orders.get(order.step) ?? []), order]);
    if (order.step === this.version && !this.reduced && this.training.config.cluster.verify === 2) {
      if (this.votes) this.votes.deal(order.assignment);
      const votes = this.votesOfStep(); // a new one deals every order of the step, this one included
      for (const key of votes.blocks()) this.settle(key);
    }
    for (const p of this.parked.splice(0)) this.acceptGradient(p.sender, p.meta, p.tensor);
  }

  /** This step's votes, with every order of this step dealt (orders may arrive before the step's first copy). */
  private votesOfStep(): GradientVotes {
    if (!this.votes) {
      this.votes = new GradientVotes(this.training.groups);
      for (const order of this.orders.get(this.version) ?? []) this.votes.deal(order.assignment);
    }
    return this.votes;
  }

  /** `verify: 2`: one dealt actor's copy of a block. */
  private onCopy(sender: string, meta: GradientMeta, bytes: Uint8Array): void {
    if (!this.votesOfStep().add(meta.block, sender, bytes)) return; // that actor's duplicate
    this.bytesReceived += bytes.byteLength;
    this.settle(blockKey(meta.block));
  }

  /** Accepts a block once two dealt copies agree; reports a disagreement, and the actor outvoted. */
  private settle(key: string): void {
    const vote = this.votesOfStep().vote(key);
    const [lo, hi] = key.split("-").map(Number) as [number, number];
    const step = this.version;
    const once = (what: string) => {
      if (this.voteReported.has(what)) return false;
      this.voteReported.add(what);
      return true;
    };
    if (vote.verdict === "disagreed" && once(`${key}:${vote.actors.length}`)) {
      this.log.warn("disagreed", { step, block: key, actors: vote.actors });
      this.report({ phase: "disagreed", step, shard: this.index, block: { lo, hi }, actors: vote.actors });
    }
    if (vote.verdict !== "accepted") return;
    for (const actor of vote.odd)
      if (once(`${key}:${actor}`)) {
        this.log.warn("outvoted", { step, block: key, outvoted: actor, by: vote.by });
        this.report({ phase: "outvoted", step, shard: this.index, block: { lo, hi }, actor, by: vote.by });
      }
    if (this.reduced || this.blocks.has(key)) return;
    this.blocks.set(key, tensorData({ dtype: "f32", shape: [vote.bytes.byteLength / 4], bytes: vote.bytes }) as Float32Array);
    this.reduceIfComplete();
  }

  /** Reports the reduced gradient once the tree over every group is complete. */
  private reduceIfComplete(): void {
    const sum = reduceTree(this.blocks, 0, this.training.groups, addF32);
    if (!sum) return;
    this.reduced = sum;
    const partials = chunkSumSquares(this.kernels, sum);
    this.report({ phase: "reduced", step: this.version, shard: this.index, partials: new Uint8Array(partials.buffer), bytesReceived: this.bytesReceived });
  }

  private async onClip(order: ClipOrder): Promise<void> {
    if (order.step !== this.version || !this.reduced) return; // not this step, or already applied
    // Test hook: the main thread blocks for AZE_TEST_BLOCK_MS (a busy wait, as a long kernel
    // call does) before applying the steps listed in AZE_TEST_BLOCK_STEPS (counted from 0), so
    // a test can check that a busy actor is not declared dead.
    const blockMs = Number(process.env.AZE_TEST_BLOCK_MS ?? 0);
    if (blockMs > 0 && process.env.AZE_TEST_BLOCK_STEPS?.split(",").includes(String(order.step)))
      for (const until = performance.now() + blockMs; performance.now() < until; );
    const gradient = this.reduced;
    if (order.apply)
      applyAdamWOnHost(
        this.kernels,
        this.training.layout,
        { params: this.params, grad: gradient, m: this.m, v: this.v, start: this.sliceStart },
        { lr: order.lr, step: order.step + 1, clip: order.clip, training: this.training.config.training },
      );
    this.version = order.step + 1;
    this.forgetStep();
    this.publishParams();
    this.report({ phase: "applied", step: order.step, shard: this.index, version: this.version });
  }

  /**
   * The version moved: everything held for the step before goes (its blocks, copies, votes
   * and byte count), orders of older steps are done with, and what was parked never fit.
   */
  private forgetStep(): void {
    this.reduced = undefined;
    this.blocks = new Map();
    this.votes = undefined;
    this.voteReported.clear();
    this.bytesReceived = 0;
    for (const step of [...this.orders.keys()]) if (step < this.version) this.orders.delete(step);
    for (const p of this.parked.splice(0)) this.rejectParked(p);
  }

  private rejectParked(p: { sender: string; meta: GradientMeta }): void {
    const { lo, hi } = p.meta.block;
    this.log.warn("rejected", {
      reason: `gradient of groups ${lo}..${hi - 1} from ${p.sender}, which were not dealt to it in step ${p.meta.step}`,
      from: p.sender,
      step: p.meta.step,
    });
  }

  private async onCheckpoint(order: CheckpointOrder): Promise<CheckpointSaved> {
    if (order.op === "save") {
      if (order.step !== this.version) return { ok: false, error: `${this.id} is at step ${this.version}, not ${order.step}` };
      // Test hook: while the file this names exists, the write waits (`<file>.<id>` says so),
      // so a test can kill a shard mid-checkpoint: a tiny model's write is over in milliseconds.
      const hold = process.env.AZE_TEST_HOLD_CHECKPOINT_WRITE;
      if (hold && existsSync(hold)) writeFileSync(`${hold}.${this.id}`, "");
      while (hold && existsSync(hold)) await sleep(100);
      const saved = writeSlice(order.dir, this.index, order.shards, this.sliceStart, { params: this.params, m: this.m, v: this.v });
      return { ok: true, ...saved };
    }
    const loaded = readSlice(this.training, order.path || undefined, this.sliceStart, this.sliceEnd);
    this.params = loaded.params;
    this.m = loaded.m;
    this.v = loaded.v;
    this.version = loaded.step;
    this.orders.clear(); // a rollback: steps from here on are dealt anew
    this.forgetStep();
    this.publishParams();
    this.report({ phase: "loaded", step: this.version, shard: this.index, version: this.version });
    return { ok: true };
  }
}
