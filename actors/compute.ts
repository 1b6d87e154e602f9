// The compute actor. Owns: a backend (WebAssembly or CUDA) and a copy of the parameters.
//
// For each step order that names it, it makes sure it holds parameters of that version
// (from the shards' broadcasts, or by asking), fetches its groups' micro-batches from the
// data-loaders, runs forward and backward, pre-combines its groups along aligned blocks of
// the fixed tree, and sends each block's slice to the shard that owns it. With host-level
// combining, it sends its blocks to its host's combiner instead, or, as the combiner, adds
// the host's blocks together and sends the sums (actors/host-combiner.ts).
// Never: combines groups across a block boundary, or sends a gradient that is not finite
// without saying so (the shards' reports carry that to the coordinator).
import { createBackend, measurePeakFlops } from "../model/backend.js";
import { CHUNK } from "../model/layout.js";
import { addF32, alignedBlocks, blockKey, reduceTree, shardRanges, type Block } from "../model/reduction-tree.js";
import { createSimModel, simDelayMsDefault } from "../model/sim-model.js";
import { createModel, openPlan, type GroupResult, type TrainingModel, type TrainingPlan } from "../model/training.js";
import { Actor } from "../runtime/actor.js";
import { decodeChecked, encodeMessage, tensorData, tensorFrom, TensorAssembler } from "../runtime/codec.js";
import { publishTensor } from "../runtime/nats.js";
import { senderOf } from "../runtime/subjects.js";
import { HostCombine, type HostBlock } from "./host-combiner.js";
import {
  batchReplySchema,
  hostGradientMetaSchema,
  paramsMetaSchema,
  stepOrderSchema,
  workerOptionsSchema,
  type BatchRequest,
  type GradientMeta,
  type GroupDone,
  type GroupReport,
  type HostGradientMeta,
  type StepOrder,
} from "./protocol.js";

export class Compute extends Actor {
  private readonly options = workerOptionsSchema.parse(this.spec.options);
  private training!: TrainingPlan;
  private model!: TrainingModel;
  private ranges: { start: number; end: number }[] = [];
  /** The newest complete parameter vector and its version. */
  private params?: Float32Array;
  private version = -1;
  /** Slices of a version still arriving: version → shard → slice. */
  private incoming = new Map<number, Map<number, Float32Array>>();
  private assembler!: TensorAssembler;
  private hostAssembler!: TensorAssembler;
  /** Host-level combining: the state of each step attempt this actor combines for, by `step:attempt`. */
  private combining = new Map<string, HostCombine>();
  /** Blocks from this host's actors that arrived before their step order. */
  private earlyParts: { from: string; meta: HostGradientMeta; sum: Float32Array }[] = [];
  private waiters: (() => void)[] = [];
  private busy: Promise<void> = Promise.resolve();
  private groups: number[] = [];
  private backendName = "";
  private backendReason = "";
  private peakFlops?: number;

  protected override async onStart(): Promise<void> {
    // A run without a training config only lives: registers, heartbeats, obeys stop.
    if (!this.options.training) return;
    this.training = openPlan(this.options.training);
    if (this.options.backend === "sim") {
      // Simulated (model/sim-model.ts): no kernels, no micro-batches; the rest of a step is the normal path.
      this.backendName = "sim";
      this.backendReason = `simulated: each group waits ${this.training.config.cluster.simDelayMs ?? simDelayMsDefault} ms and sends a made-up gradient`;
      this.log.info("backend", { backend: "sim", reason: this.backendReason });
      this.model = createSimModel(this.training);
    } else {
      const { kernels, reason } = await createBackend(this.options.backend);
      this.backendName = kernels.name;
      this.backendReason = reason;
      this.peakFlops = measurePeakFlops(kernels);
      this.log.info("backend", { backend: kernels.name, reason, peakFlops: this.peakFlops });
      this.model = createModel(this.training, kernels);
    }
    this.ranges = shardRanges(this.training.total, this.training.shards, CHUNK);
    // A parameter broadcast is one shard's slice: a frame claiming any other size is rejected
    // before a byte is allocated for it. Each shard sends one slice at a time.
    const lengths = new Set(this.ranges.map((r) => r.end - r.start));
    this.assembler = new TensorAssembler({
      maxBytes: 4 * 1024 ** 3,
      maxPending: 2 * this.ranges.length,
      misfit: (dtype, shape) => (dtype === "f32" && shape.length === 1 && lengths.has(shape[0]!) ? undefined : "is no shard's slice of the parameters"),
    });
    // Only shard s may publish on `params.<s>` (the server enforces it): what arrives there is that shard's slice.
    for (let s = 0; s < this.ranges.length; s++) this.nc.subscribe(this.subjects.params(s), { callback: (_e, m) => this.onParamsChunk(m.data, s) });
    // Host-level combining: the host's other actors send this actor whole blocks of the parameter vector's size.
    this.hostAssembler = new TensorAssembler({
      maxBytes: 4 * 1024 ** 3,
      timeoutMs: 30_000,
      maxPending: 2 * this.training.groups,
      misfit: (dtype, shape) => (dtype === "f32" && shape.length === 1 && shape[0] === this.training.total ? undefined : "is not a whole gradient"),
    });
    this.nc.subscribe(this.subjects.hostGradientsTo(this.id), { callback: (_e, m) => this.onHostGradientChunk(m.data, senderOf(m.subject)) });
    this.on(this.subjects.step, stepOrderSchema, (order) => {
      this.onCombineOrder(order);
      const mine = order.assignment[this.id];
      if (mine?.length)
        this.busy = this.busy.then(() => this.runGroups(order, mine)).catch((err) => this.log.error("step-failed", { step: order.step, error: String(err) }));
    });
  }

  protected override status(): Record<string, unknown> {
    return {
      backend: !this.backendName ? undefined : this.backendName.startsWith("cuda") ? "cuda" : "wasm",
      backendName: this.backendName,
      backendReason: this.backendReason,
      peakFlops: this.peakFlops,
      groups: this.groups,
      version: this.version,
    };
  }

  private onParamsChunk(data: Uint8Array, from: number): void {
    const whole = this.assemble(this.assembler, paramsMetaSchema, data);
    if (!whole) return;
    const { version, shard } = whole.meta;
    if (shard !== from) return this.log.warn("rejected", { reason: `parameters for shard ${shard} sent by shard ${from}` });
    const range = this.ranges[shard];
    if (!range || whole.tensor.dtype !== "f32" || whole.tensor.shape[0] !== range.end - range.start) {
      this.log.warn("rejected", { reason: `parameter slice for shard ${shard} of the wrong shape ${JSON.stringify(whole.tensor.shape)}` });
      return;
    }
    if (version <= this.version) return;
    const slices = this.incoming.get(version) ?? new Map<number, Float32Array>();
    this.incoming.set(version, slices);
    slices.set(shard, tensorData(whole.tensor) as Float32Array);
    if (slices.size < this.ranges.length) return;
    const params = new Float32Array(this.training.total);
    for (const [s, slice] of slices) params.set(slice, this.ranges[s]!.start);
    this.params = params;
    this.version = version;
    for (const v of [...this.incoming.keys()]) if (v <= version) this.incoming.delete(v);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits until parameters of exactly `version` are here, asking the shards when they are late. */
  private async paramsOf(version: number): Promise<Float32Array> {
    const deadline = Date.now() + 60_000;
    while (this.version !== version) {
      if (this.version > version) {
        // The cluster rolled back to a checkpoint: forget the newer parameters.
        this.log.info("rolled-back", { from: this.version, to: version });
        this.version = -1;
        this.params = undefined;
        this.incoming.clear();
      }
      if (Date.now() > deadline) throw new Error(`parameters of version ${version} did not arrive within 60 s`);
      // A late joiner, or a lost broadcast: ask every shard to publish its current slice again.
      for (let s = 0; s < this.ranges.length; s++)
        if (!this.incoming.get(version)?.has(s)) this.nc.publish(this.subjects.paramsRequest(s), encodeMessage({ version }));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.params!;
  }

  private async runGroups(order: StepOrder, groups: number[]): Promise<void> {
    const t0 = performance.now();
    const params = await this.paramsOf(order.step);
    const tParams = performance.now();
    this.groups = groups;
    this.model.setParameters(params);
    let commMs = tParams - t0;
    const results = new Map<number, GroupResult>();
    const leaves = new Map<string, Float32Array>();
    let computeMs = 0;
    for (const group of groups) {
      const tc = performance.now();
      const result = await this.model.groupGradient(order.step, group, (index) => this.fetchBatch({ step: order.step, group, index }));
      computeMs += performance.now() - tc - result.fetchMs;
      commMs += result.fetchMs;
      results.set(group, result);
      leaves.set(blockKey({ lo: group, hi: group + 1 }), result.gradient);
    }
    // What this actor reports of the groups of one block: their losses; its timings go with the first block.
    const blocks = alignedBlocks(groups, this.training.groups);
    const sums = blocks.map((block) => reduceTree(leaves, block.lo, block.hi, addF32)!);
    const reportOf = (block: Block, first: boolean): GroupReport => {
      const held = groups.filter((g) => g >= block.lo && g < block.hi);
      return {
        from: this.id,
        groups: held,
        lossSums: held.map((g) => results.get(g)!.lossSum),
        counts: held.map((g) => results.get(g)!.count),
        tokens: held.reduce((n, g) => n + results.get(g)!.tokens, 0),
        computeMs: first ? computeMs : 0,
        commMs: first ? commMs : 0,
        bytesSent: 0,
      };
    };
    const tSend = performance.now();
    const combiner = order.combine?.[this.id];
    if (combiner && combiner !== this.id) {
      // Host-level combining: this host's combiner adds our blocks to its host's and sends the sums on.
      let bytesSent = 0;
      blocks.forEach((block, i) => {
        const meta: HostGradientMeta = { step: order.step, attempt: order.attempt, block, report: reportOf(block, i === 0) };
        bytesSent += publishTensor(this.nc, this.subjects.hostGradients(combiner, this.id), tensorFrom(sums[i]!, [sums[i]!.length]), meta);
      });
      await this.nc.flush();
      this.log.info("sent-to-combiner", { step: order.step, combiner, blocks: blocks.length, bytes: bytesSent, ms: performance.now() - tSend });
    } else if (combiner === this.id) {
      const combine = this.combineOf(order);
      blocks.forEach((block, i) => {
        for (const whole of combine.add({ block, sum: sums[i]!, report: reportOf(block, i === 0) })) this.sendHostBlock(order, whole);
      });
    } else {
      let bytesSent = 0;
      blocks.forEach((block, i) => {
        bytesSent += this.sendToShards(order.step, block, sums[i]!);
      });
      await this.nc.flush();
      const all = reportOf({ lo: 0, hi: this.training.groups }, true);
      const done: GroupDone = { ...all, step: order.step, attempt: order.attempt, commMs: commMs + performance.now() - tSend, bytesSent };
      this.publish(this.subjects.groupDone(this.id), done);
    }
    this.groups = [];
  }

  /** Sends each shard its slice of one block's sum; returns the bytes sent. */
  private sendToShards(step: number, block: Block, sum: Float32Array): number {
    let bytesSent = 0;
    this.ranges.forEach(({ start, end }, shard) => {
      const meta: GradientMeta = { step, block, shard, from: this.id };
      let slice = sum.subarray(start, end);
      // Test hook: the compute actor this names lies, flipping the lowest bit of the first
      // element of every gradient slice it sends, so a test can watch `verify: 2` catch it.
      if (process.env.AZE_TEST_CORRUPT_GRADIENT === this.id) {
        slice = slice.slice();
        new Uint32Array(slice.buffer)[0]! ^= 1;
      }
      bytesSent += publishTensor(this.nc, this.subjects.gradients(shard, this.id), tensorFrom(slice, [end - start]), meta);
    });
    return bytesSent;
  }

  // ---- host-level combining (actors/host-combiner.ts) -----------------------------------

  /** The combining state of a step attempt this actor combines for, made on its order's arrival. */
  private combineOf(order: StepOrder): HostCombine {
    const key = `${order.step}:${order.attempt}`;
    let combine = this.combining.get(key);
    if (!combine) {
      combine = new HostCombine(order, this.id, this.training.groups);
      this.combining.set(key, combine);
    }
    return combine;
  }

  /** A step order that names this actor its host's combiner: ready for the host's blocks, older steps forgotten. */
  private onCombineOrder(order: StepOrder): void {
    for (const [key, c] of this.combining) if (c.order.step < order.step) this.combining.delete(key);
    if (order.combine?.[this.id] === this.id) this.combineOf(order);
    // Blocks that overtook their order fit now, or never will once their step is past.
    for (const p of this.earlyParts.splice(0)) if (p.meta.step >= order.step) this.onHostPart(p.from, p.meta, p.sum);
  }

  private onHostGradientChunk(data: Uint8Array, from: string): void {
    const whole = this.assemble(this.hostAssembler, hostGradientMetaSchema, data);
    if (whole) this.onHostPart(from, whole.meta, tensorData(whole.tensor) as Float32Array);
  }

  /** A block from an actor of this host: added to the host's, and what became whole is sent on. */
  private onHostPart(from: string, meta: HostGradientMeta, sum: Float32Array): void {
    if (meta.report.from !== from) return this.log.warn("rejected", { reason: `a block sent by ${from} claims to come from ${meta.report.from}`, from });
    const combine = this.combining.get(`${meta.step}:${meta.attempt}`);
    if (!combine) {
      // Its order is not here yet (or its step is over): hold a step's worth at most.
      if (this.earlyParts.push({ from, meta, sum }) > 2 * this.training.groups) this.earlyParts.shift();
      return;
    }
    const misfit = combine.misfit(from, meta.block);
    if (misfit) return this.log.warn("rejected", { reason: misfit, from, step: meta.step });
    const order = combine.order;
    for (const whole of combine.add({ block: meta.block, sum, report: meta.report })) this.sendHostBlock(order, whole);
  }

  /** Sends a whole block of the host to the shards, then reports its groups: ours, and those of the actors whose blocks it holds. */
  private sendHostBlock(order: StepOrder, whole: HostBlock): void {
    const t0 = performance.now();
    const bytesSent = this.sendToShards(order.step, whole.block, whole.sum);
    void this.nc.flush().then(() => {
      const own = whole.reports.filter((r) => r.from === this.id);
      const mine: GroupReport = {
        from: this.id,
        groups: own.flatMap((r) => r.groups),
        lossSums: own.flatMap((r) => r.lossSums),
        counts: own.flatMap((r) => r.counts),
        tokens: own.reduce((n, r) => n + r.tokens, 0),
        computeMs: own.reduce((n, r) => n + r.computeMs, 0),
        commMs: own.reduce((n, r) => n + r.commMs, 0) + performance.now() - t0,
        bytesSent,
      };
      const combined = whole.reports.filter((r) => r.from !== this.id);
      const done: GroupDone = { ...mine, step: order.step, attempt: order.attempt, ...(combined.length ? { combined } : {}) };
      this.publish(this.subjects.groupDone(this.id), done);
    });
  }

  /**
   * Any data-loader serves any batch (a pure function of the request): the loaders form a
   * NATS queue group, so a dead one simply stops being chosen. Retries cover the moment a
   * loader dies holding a request.
   */
  private async fetchBatch(req: BatchRequest) {
    let lastError = "";
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const reply = await this.nc.request(this.subjects.batch, encodeMessage(req), { timeout: 5000 });
        const body = decodeChecked(batchReplySchema, reply.data, "a micro-batch");
        if (body.ok) return body;
        lastError = body.error;
      } catch (err) {
        lastError = (err as Error).message;
        await new Promise((r) => setTimeout(r, 250)); // no loader right now: one is being replaced
      }
    }
    throw new Error(`no data-loader served step ${req.step} group ${req.group} batch ${req.index}: ${lastError}`);
  }
}
