// The step driver: the coordinator's training loop.
//
// Owns: the step counter, the dealing of gradient groups to live compute actors (again,
// for the groups still missing, when one dies or stalls; with `verify: 2` to pairs of actors,
// a disputed block to a third, and never again to an actor outvoted), the global gradient
// norm from the shards' per-chunk partial sums, the clip/skip decision, metrics, checkpoints,
// pause, the rollback to the last checkpoint when a shard dies, and picking training up
// again where the shards stand when the coordinator was restarted after a crash.
// Never: touches a gradient or a parameter; shards and compute actors do.
import { appendFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { abandonCheckpoint, beginCheckpoint, listCheckpoints, readManifest, removeInterruptedWrites, stepFolderName } from "../model/checkpoint.js";
import { learningRate } from "../model/optimizer.js";
import { assignGroups, blockKey, type Block } from "../model/reduction-tree.js";
import { finishStep, sealCheckpoint, type StepMetrics, type TrainingPlan } from "../model/training.js";
import type { z } from "zod";
import type { Logger } from "../runtime/log.js";
import { requestMessage, type Msg, type NatsConnection } from "../runtime/nats.js";
import { senderOf, type Subjects } from "../runtime/subjects.js";
import { pairActors } from "./gradient-votes.js";
import {
  checkpointSavedSchema,
  groupDoneSchema,
  shardReportSchema,
  type CheckpointOrder,
  type ClipOrder,
  type ClusterEventType,
  type GroupDone,
  type ShardReport,
  type StepOrder,
} from "./protocol.js";

export interface DriverHost {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  runDir: string;
  /** Ids of the compute actors alive and ready now. */
  liveCompute(): string[];
  /** How many compute actors the run asks for now. */
  desiredCompute(): number;
  /** Ids of the param-shards alive and ready now. */
  liveShards(): string[];
  /** The parameter version each live shard's last heartbeat carried. */
  shardVersions(): unknown[];
  /** Whether a live compute actor's last heartbeat says it is computing groups. */
  computeBusy(): boolean;
  /** The host a live actor runs on, from its heartbeats. */
  hostOf(id: string): string | undefined;
  /** The node agent that runs a live actor: one per host. */
  agentOf(id: string): string | undefined;
  /** Asks an actor to stop; the coordinator places a replacement. */
  retire(id: string, reason: string): void;
  event(type: ClusterEventType, actor: string | undefined, message: string, extra?: Record<string, unknown>): void;
  publish(subject: string, body: unknown): void;
  /** Subscribes with the actor's own checks: a wrong-shaped message is logged as rejected. */
  on<S extends z.ZodType>(subject: string, schema: S, handler: (body: z.infer<S>, msg: Msg) => void): void;
}

/**
 * How long a step may go without its reduction before its missing groups are dealt again:
 * three times the longest recent step, and never under 20 s. A compute actor that takes three
 * whole steps for its share is stuck or far slower than its peers, and re-dealing costs
 * little (the first result of each group wins, so a late one is simply dropped); the floor
 * covers the first steps, before any is measured, and a tiny model's sub-second steps,
 * where a busy core's hiccup would otherwise re-deal every step.
 */
const stallFloorMs = 20_000;
/** How long the first step waits for the rest of the compute actors asked for, once one is ready. */
const firstStepWaitMs = 60_000;
const stallFactor = 3;
/** Steps whose wall times the deadlines look at: recent enough to follow a change of pace (a scale-down, a busier host). */
const recentSteps = 10;

class Rollback extends Error {}

export class StepDriver {
  step = 0;
  readonly totalSteps: number;
  paused = false;
  finished = false;
  lastMetrics?: StepMetrics;
  private reports = new Map<string, ShardReport>();
  private done = new Map<number, GroupDone>();
  /** The current step's deal, over every attempt: actor → the groups it was given. */
  private dealt = new Map<string, Set<number>>();
  private doneBy = new Map<string, GroupDone[]>();
  /** The current step's host combining, over every attempt: actor → the combiners dealt to add its blocks. */
  private combiners = new Map<string, Set<string>>();
  /** The checks of pending until() calls; wake() runs them all. */
  private readonly waiters = new Set<() => void>();
  private checkpointAsked = false;
  private shardDied = false;
  lastCheckpoint?: string;
  /** Whether `step` says where the shards stand: not yet while a restarted coordinator finds out. */
  located: boolean;
  private stopping = false;
  /** Wall times (ms) of the last steps, from the first deal until every shard applied the update. */
  private readonly recentStepMs: number[] = [];
  /** `verify: 2`: 1 or 2 copies of every group, from `cluster.verify`. */
  private readonly verify: number;
  /** `verify: 2`: compute actors outvoted in this run; never dealt to again. */
  private readonly quarantined = new Set<string>();
  /** `verify: 2`: this step's blocks whose two copies differ, and the third actors dealt them, by block key. */
  private disputes = new Map<string, { block: Block; actors: string[]; thirds: string[]; waitSaid?: boolean }>();
  /** `verify: 2`: set when a block's copies all differ: the run cannot go on. */
  private noMajority?: string;
  /** Counts the shards' vote reports, so a wait for the step ends when one arrives. */
  private voteReports = 0;
  private saidSameHost = false;
  private saidTooFew = false;

  constructor(
    private readonly host: DriverHost,
    private readonly training: TrainingPlan,
    /** The coordinator was restarted after a crash: training goes on where the shards stand, not from the start. */
    private readonly recovering = false,
  ) {
    this.totalSteps = training.steps;
    this.located = !recovering;
    this.step = training.startStep;
    this.lastCheckpoint = training.options.resume;
    this.verify = training.config.cluster.verify;
    // Each shard reports on its own subject and each compute actor on its own: the server lets
    // no one else publish there, so the subject says who sent it, whatever the body claims.
    host.on(host.subjects.shardReports, shardReportSchema, (r, msg) => {
      if (msg.subject !== host.subjects.shardReport(r.shard)) return this.reject(msg, `a report for shard ${r.shard}`);
      this.onReport(r);
    });
    host.on(host.subjects.groupDones, groupDoneSchema, (d, msg) => {
      if (senderOf(msg.subject) !== d.from) return this.reject(msg, `a report from ${d.from}`);
      this.onGroupDone(d, msg);
    });
  }

  private reject(msg: Msg, what: string): void {
    this.host.log.warn("rejected", { subject: msg.subject, reason: `${what} sent by ${senderOf(msg.subject)}` });
  }

  private onReport(r: ShardReport): void {
    if (r.phase === "disagreed" || r.phase === "outvoted") return this.onVote(r);
    this.reports.set(`${r.phase}:${r.step}:${r.shard}`, r);
    this.wake();
  }

  /**
   * `verify: 2`: a shard found a block's copies differing. Two: a third actor settles it (in
   * the step loop). Three or more, all different: no majority, the run stops. Outvoted: that
   * actor is quarantined.
   */
  private onVote(r: Extract<ShardReport, { phase: "disagreed" | "outvoted" }>): void {
    if (r.step !== this.step) return;
    const groups = `groups [${r.block.lo}, ${r.block.hi}) of step ${r.step + 1}`;
    if (r.phase === "outvoted") this.quarantine(r.actor, `its gradient for ${groups} differs from the one ${r.by.join(" and ")} agree on`);
    else if (r.actors.length >= 3) this.noMajority ??= `stopped: no two of ${r.actors.join(", ")} agree on the gradient for ${groups}`;
    else if (!this.disputes.has(blockKey(r.block))) {
      this.disputes.set(blockKey(r.block), { block: r.block, actors: r.actors, thirds: [] });
      this.host.event("rejected", undefined, `${r.actors.join(" and ")} sent different gradients for ${groups}: a third compute actor settles it`);
    }
    this.voteReports++;
    this.wake();
  }

  /** Never deals to the actor again in this run, says so, and stops it (the coordinator places a replacement). */
  private quarantine(actor: string, why: string): void {
    if (this.quarantined.has(actor)) return;
    this.quarantined.add(actor);
    this.host.event("quarantine", actor, `compute actor ${actor} is quarantined: ${why}; it is stopped and never dealt to again in this run`);
    this.host.retire(actor, "quarantined: its gradient was outvoted");
  }

  /** The compute actors that may be dealt groups: alive, ready, and not quarantined. */
  private liveCompute(): string[] {
    return this.host.liveCompute().filter((id) => !this.quarantined.has(id));
  }

  private onGroupDone(d: GroupDone, msg: Msg): void {
    if (d.step !== this.step) return;
    // A host combiner also reports for the actors of its host whose blocks it sent on: each
    // report counts only for groups dealt to its actor, and only from that actor's combiner.
    const reports: GroupDone[] = [d, ...(d.combined ?? []).map((m) => ({ ...m, step: d.step, attempt: d.attempt }))];
    for (const r of reports) {
      const dealt = this.dealt.get(r.from);
      if (!r.groups.every((g) => dealt?.has(g))) return this.reject(msg, `losses of groups ${r.groups.join(",")} that were not dealt to ${r.from}`);
      if (r !== d && !this.combiners.get(r.from)?.has(d.from))
        return this.reject(msg, `a report for ${r.from}, whose blocks ${d.from} was not dealt to combine`);
    }
    for (const r of reports) {
      for (const g of r.groups) if (!this.done.has(g)) this.done.set(g, r);
      const list = this.doneBy.get(r.from) ?? [];
      list.push(r);
      this.doneBy.set(r.from, list);
    }
    this.wake();
  }

  /** A membership change (join, death, scale) may unblock or re-deal the current step. */
  membershipChanged(kind: string, died: boolean): void {
    if (kind === "param-shard" && died) this.shardDied = true;
    this.wake();
  }

  requestCheckpoint(): void {
    this.checkpointAsked = true;
    this.wake();
  }

  stop(): void {
    this.stopping = true;
    this.wake();
  }

  /**
   * Resolves true once `ready()` holds (checked whenever a report or a membership change
   * arrives, and every 250 ms), false on a stop, a shard's death or the timeout.
   */
  private until(ready: () => boolean, timeoutMs = Infinity, evenWhenStopping = false): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (value: boolean) => {
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(value);
      };
      const check = () => {
        if ((this.stopping && !evenWhenStopping) || this.shardDied) return settle(false);
        if (ready()) return settle(true);
        if (Date.now() >= deadline) return settle(false);
        clearTimeout(timer);
        timer = setTimeout(check, Math.min(250, Math.max(1, deadline - Date.now())));
      };
      this.waiters.add(check);
      check();
    });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }

  /**
   * The longest of the recent steps' wall times (0 before the first): the coordinator's
   * deadline for an unresponsive main thread scales with it, and so does the stall deadline.
   * The longest rather than the mean, so one slow step raises both at once.
   */
  get longestRecentStepMs(): number {
    return Math.max(0, ...this.recentStepMs);
  }

  private get stallMs(): number {
    return Math.max(stallFloorMs, stallFactor * this.longestRecentStepMs);
  }

  private shardsReport(phase: ShardReport["phase"], step: number): ShardReport[] | undefined {
    const out: ShardReport[] = [];
    for (let s = 0; s < this.training.shards; s++) {
      const r = this.reports.get(`${phase}:${step}:${s}`);
      if (!r) return undefined;
      out.push(r);
    }
    return out;
  }

  /** The loop: runs until the last step, a stop, or an unrecoverable error. */
  async run(): Promise<void> {
    if (this.recovering) await this.recover();
    else {
      await this.until(() => this.host.liveShards().length === this.training.shards && !!this.shardsReport("loaded", this.step));
      // The first step waits for the compute actors asked for, so it is not computed by the
      // first one up alone while the others start; a minute at most after the first is ready.
      await this.until(() => this.liveCompute().length > 0);
      await this.until(() => this.liveCompute().length >= this.host.desiredCompute(), firstStepWaitMs);
    }
    while (!this.stopping && this.step < this.totalSteps) {
      if (this.shardDied) {
        await this.rollback(`a shard died at step ${this.step}`);
        continue;
      }
      if (this.paused) {
        await this.until(() => !this.paused || this.checkpointAsked);
        if (this.checkpointAsked) await this.checkpoint();
        continue;
      }
      try {
        await this.runStep();
      } catch (err) {
        if (err instanceof Rollback) continue;
        throw err;
      }
      const every = this.training.config.checkpoint.every;
      if (this.checkpointAsked || (every > 0 && this.step % every === 0) || this.step === this.totalSteps) await this.checkpoint();
    }
    if (this.stopping) return;
    this.finished = true;
    this.host.event("info", undefined, `finished ${this.totalSteps} steps; last checkpoint ${this.lastCheckpoint ?? "none"}`, { end: "finished" });
  }

  private async runStep(): Promise<void> {
    const t0 = performance.now();
    const step = this.step;
    const lr = learningRate(step, this.training.config.training);
    this.done = new Map();
    this.doneBy = new Map();
    this.dealt = new Map();
    this.combiners = new Map();
    this.disputes = new Map();
    let attempt = 0;
    const groups = Array.from({ length: this.training.groups }, (_, g) => g);
    let lastDeal = 0;
    let dealtTo: string[] = [];
    // Deal, then re-deal what is missing whenever a dealt-to actor is gone or the step stalls.
    while (!this.shardsReport("reduced", step)) {
      if (this.stopping) return;
      if (this.shardDied) throw new Rollback();
      if (this.noMajority) {
        this.stopping = true;
        this.host.event("error", undefined, this.noMajority, { end: "error" });
        return;
      }
      const live = this.liveCompute();
      const lost = dealtTo.some((id) => !live.includes(id));
      const stalled = Date.now() - lastDeal > this.stallMs;
      if (live.length < this.verify && live.length > 0 && !this.saidTooFew) {
        this.saidTooFew = true;
        this.host.event(
          "info",
          undefined,
          `verify: 2 deals every group to two compute actors, and ${live.length} is ready: step ${step + 1} waits for another`,
        );
      }
      if (live.length >= this.verify && (attempt === 0 || lost || stalled)) {
        this.saidTooFew = false;
        // A group is missing while fewer actors than `verify` (not quarantined) reported it done.
        const missing = attempt === 0 ? groups : groups.filter((g) => this.copiesDone(g) < this.verify);
        const dealing = this.verify === 2 ? { assignment: this.dealToPairs(missing, live) } : this.dealByHost(missing, live);
        this.deal({ step, attempt, ...dealing });
        const { assignment } = dealing;
        if (attempt > 0) this.host.log.info("re-dealt", { step, attempt, missing });
        dealtTo = Object.keys(assignment);
        attempt++;
        lastDeal = Date.now();
      }
      attempt = this.dealDisputes(step, attempt);
      const votes = this.voteReports;
      await this.until(() => !!this.shardsReport("reduced", step) || this.liveCompute().join() !== live.join() || this.voteReports !== votes, 1000);
    }
    const tReduced = performance.now();
    // Each compute actor reports its groups' losses after sending their gradients: the
    // shards can finish first. Give the reports a moment so the step's loss is whole.
    await this.until(() => this.done.size === this.training.groups, 5000);
    const reduced = this.shardsReport("reduced", step) as Extract<ShardReport, { phase: "reduced" }>[];
    // Shards are contiguous and in order, so their partials together are in chunk order.
    const partials = reduced.flatMap((r) => [...new Float64Array(new Uint8Array(r.partials).buffer)]);
    const { clip, update, metrics } = finishStep(this.training, {
      step,
      lr,
      partials,
      ...this.groupLosses(),
      stepMs: performance.now() - t0,
      traffic: { ...this.traffic(t0, tReduced), shardBytes: reduced.reduce((n, r) => n + r.bytesReceived, 0) },
    });
    if (update !== "applied")
      this.host.event(
        "rejected",
        undefined,
        `step ${step + 1}: the gradient is not finite (training.onNonFinite: ${this.training.config.training.onNonFinite})`,
      );
    if (update === "stopped") {
      this.stopping = true;
      this.host.event("error", undefined, `stopped: non-finite gradient at step ${step + 1}`, { end: "non-finite gradient" });
      return;
    }
    const order: ClipOrder = { step, clip, lr, apply: update === "applied" };
    this.host.publish(this.host.subjects.clip, order);
    // Once the clip order is out the shards apply it, a stop or not: wait for them, so the step
    // counted here is the version the shards hold and the checkpoint `cluster down` asks for
    // finds them where it expects (`cluster down` signals what is left after a minute).
    if (!(await this.until(() => !!this.shardsReport("applied", step), Infinity, true))) {
      if (this.shardDied) throw new Rollback();
      return;
    }
    for (const key of [...this.reports.keys()]) if (Number(key.split(":")[1]) <= step) this.reports.delete(key);
    // The whole step, the shards' update included: a shard's AdamW blocks its main thread too.
    this.recentStepMs.push(performance.now() - t0);
    if (this.recentStepMs.length > recentSteps) this.recentStepMs.shift();
    this.step = step + 1;
    this.lastMetrics = metrics;
    this.host.publish(this.host.subjects.metrics, metrics);
    appendFileSync(join(this.host.runDir, "metrics.jsonl"), `${JSON.stringify(metrics)}\n`);
  }

  /** Publishes a step order, and remembers whom it dealt which groups (their loss reports count only for those). */
  private deal(order: StepOrder): void {
    for (const [actor, given] of Object.entries(order.assignment)) this.dealt.set(actor, new Set([...(this.dealt.get(actor) ?? []), ...given]));
    for (const [actor, combiner] of Object.entries(order.combine ?? {})) this.combiners.set(actor, new Set([...(this.combiners.get(actor) ?? []), combiner]));
    this.host.publish(this.host.subjects.step, order);
  }

  /**
   * Deals the groups with each host's actors side by side, so each host holds one run of
   * groups, and, where host-level combining is on (`cluster.combine`), names each host's
   * combiner: the first of its actors dealt groups. Its host's actors send it their blocks;
   * it adds them along the tree and sends the sums to the shards, so the bytes entering the
   * shards grow with hosts, not actors. Any dealing and any combining give the same bits.
   */
  private dealByHost(missing: number[], live: string[]): Pick<StepOrder, "assignment" | "combine"> {
    const hostOf = (id: string) => this.host.agentOf(id) ?? id;
    const hosts = [...new Set(live.map(hostOf))];
    const ordered = hosts.flatMap((h) => live.filter((id) => hostOf(id) === h));
    const assignment = Object.fromEntries(assignGroups(missing, ordered));
    const dealtHosts = new Map<string, string[]>();
    for (const id of Object.keys(assignment)) dealtHosts.set(hostOf(id), [...(dealtHosts.get(hostOf(id)) ?? []), id]);
    const mode = this.training.config.cluster.combine;
    if (mode === "none" || (mode === "auto" && dealtHosts.size < 2)) return { assignment };
    const combine: Record<string, string> = {};
    for (const actors of dealtHosts.values()) if (actors.length > 1) for (const id of actors) combine[id] = actors[0]!;
    return Object.keys(combine).length > 0 ? { assignment, combine } : { assignment };
  }

  /**
   * `verify: 2`: pairs the live actors (across hosts where it can) and deals the groups to
   * the pairs; both actors of a pair get the same groups, so they send the same blocks.
   */
  private dealToPairs(missing: number[], live: string[]): Record<string, number[]> {
    const { pairs, sameHost } = pairActors(live.map((id) => ({ id, host: this.host.hostOf(id) ?? "" })));
    if (sameHost && !this.saidSameHost) {
      this.saidSameHost = true;
      this.host.event(
        "info",
        undefined,
        "verify: 2 pairs compute actors of the same host, as too few hosts run compute actors: two copies then guard against a faulty actor, not a faulty host",
      );
    }
    const partnerOf = new Map(pairs);
    const assignment: Record<string, number[]> = {};
    for (const [first, held] of assignGroups(missing, [...partnerOf.keys()])) {
      assignment[first] = held;
      assignment[partnerOf.get(first)!] = held;
    }
    return assignment;
  }

  /** How many actors (not quarantined) reported group `g` of this step done. */
  private copiesDone(g: number): number {
    let n = 0;
    for (const [id, ds] of this.doneBy) if (!this.quarantined.has(id) && ds.some((d) => d.groups.includes(g))) n++;
    return n;
  }

  /**
   * `verify: 2`: deals each disputed block to a third actor, neither of the two (on another
   * host where there is one), and again to another when that one is gone. Returns the next attempt.
   */
  private dealDisputes(step: number, attempt: number): number {
    const live = this.liveCompute();
    for (const d of this.disputes.values()) {
      if (d.thirds.some((id) => live.includes(id))) continue;
      const candidates = live.filter((id) => !d.actors.includes(id) && !d.thirds.includes(id));
      const theirHosts = new Set(d.actors.map((id) => this.host.hostOf(id)));
      const third = candidates.find((id) => !theirHosts.has(this.host.hostOf(id))) ?? candidates[0];
      if (!third) {
        if (!d.waitSaid)
          this.host.event(
            "info",
            undefined,
            `verify: 2 waits for a third compute actor to settle groups [${d.block.lo}, ${d.block.hi}) of step ${step + 1}: scale to at least 3 compute actors`,
          );
        d.waitSaid = true;
        continue;
      }
      d.thirds.push(third);
      const held = Array.from({ length: d.block.hi - d.block.lo }, (_, i) => d.block.lo + i);
      this.deal({ step, attempt, assignment: { [third]: held } });
      this.host.log.info("dealt-third", { step, attempt, block: blockKey(d.block), third, disputed: d.actors });
      attempt++;
    }
    return attempt;
  }

  /** The step's losses per group, in group order, and its tokens, from the compute actors' reports. */
  private groupLosses(): { lossSums: number[]; counts: number[]; tokens: number } {
    const lossSums: number[] = [];
    const counts: number[] = [];
    const reports = new Set<GroupDone>();
    for (let g = 0; g < this.training.groups; g++) {
      const d = this.reportOf(g);
      if (!d) continue;
      reports.add(d);
      const i = d.groups.indexOf(g);
      lossSums.push(d.lossSums[i]!);
      counts.push(d.counts[i]!);
    }
    let tokens = 0;
    for (const d of reports) tokens += d.tokens;
    return { lossSums, counts, tokens };
  }

  /** The first report of group `g`, or, when its sender was quarantined, another actor's. */
  private reportOf(g: number): GroupDone | undefined {
    const first = this.done.get(g);
    if (!first || !this.quarantined.has(first.from)) return first;
    const honest = [...this.doneBy].filter(([id]) => !this.quarantined.has(id)).flatMap(([, ds]) => ds);
    return honest.find((d) => d.groups.includes(g)) ?? first;
  }

  /** Where the step's time went, per compute actor and on average. */
  private traffic(t0: number, tReduced: number): Pick<StepMetrics, "computeMs" | "commMs" | "waitMs" | "bytesSent" | "actors"> {
    const reports = [...this.doneBy.values()].flat();
    // Per actor, then the mean over actors: one actor may report in several parts (a re-deal, a combiner's blocks).
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    const perActor = (field: "computeMs" | "commMs") => [...this.doneBy.values()].map((ds) => ds.reduce((n, d) => n + d[field], 0));
    const computeMs = mean(perActor("computeMs"));
    const commMs = mean(perActor("commMs"));
    return {
      computeMs,
      commMs,
      waitMs: Math.max(0, tReduced - t0 - computeMs - commMs),
      bytesSent: reports.reduce((n, d) => n + d.bytesSent, 0),
      actors: [...this.doneBy].map(([id, ds]) => {
        const ms = ds.reduce((n, d) => n + d.computeMs + d.commMs, 0);
        const tk = ds.reduce((n, d) => n + d.tokens, 0);
        return { id, groups: ds.flatMap((d) => d.groups), stepMs: ms, tokensPerSec: ms > 0 ? tk / (ms / 1000) : 0 };
      }),
    };
  }

  /** Every shard writes its slice into a temp folder; the manifest is written last; then rename. */
  async checkpoint(): Promise<string | undefined> {
    this.checkpointAsked = false;
    const step = this.step;
    // `cluster down` after the last step asks again for the step just saved (or resumed from).
    if (this.lastCheckpoint && resolve(this.lastCheckpoint) === resolve(this.host.runDir, "checkpoints", stepFolderName(step))) return this.lastCheckpoint;
    const folder = beginCheckpoint(this.host.runDir, step);
    const order: CheckpointOrder = { op: "save", step, dir: folder.temp, shards: this.training.shards };
    const saved = [];
    // A failed write (a full disk, a shard that died) is an error event, never the end of the
    // coordinator: its temp folder goes, the last checkpoint stays the one to roll back to.
    const failed = (actor: string | undefined, why: string) => {
      rmSync(folder.temp, { recursive: true, force: true });
      this.host.event("error", actor, `checkpoint at step ${step} failed: ${why}; the last checkpoint is still ${this.lastCheckpoint ?? "none"}`);
      return undefined;
    };
    for (let s = 0; s < this.training.shards; s++) {
      const reply = await this.askShardWhileAllLive(s, order);
      if (!reply.ok) return failed(`shard-${s}`, reply.error ?? "no reason given");
      saved.push({ file: reply.file!, start: reply.start!, end: reply.end!, sha256: reply.sha256! });
    }
    let path: string;
    try {
      path = sealCheckpoint(this.training, folder, step, saved);
    } catch (err) {
      return failed(undefined, abandonCheckpoint(folder, err).message);
    }
    this.lastCheckpoint = path;
    this.host.event("checkpoint", undefined, `checkpoint at step ${step}: ${path}`);
    return path;
  }

  /** A checkpoint order to one shard; a shard that does not answer is a failed reply. */
  private askShard(shard: number, order: CheckpointOrder) {
    return requestMessage(this.host.nc, this.host.subjects.checkpoint(shard), order, checkpointSavedSchema, 60_000).catch(
      (err) => ({ ok: false, error: (err as Error).message }) as const,
    );
  }

  /**
   * A save order that fails as soon as any shard's death is known (membership: the agent's
   * death event or missed heartbeats): a checkpoint missing a slice can never be sealed, and
   * waiting out the request timeout would stall the run before its rollback.
   */
  private async askShardWhileAllLive(shard: number, order: CheckpointOrder) {
    let forget = () => {};
    const death = new Promise<{ ok: false; error: string }>((resolve) => {
      const check = () => {
        if (this.shardDied) resolve({ ok: false, error: "a param-shard died during the write" });
      };
      forget = () => this.waiters.delete(check);
      this.waiters.add(check);
      check();
    });
    try {
      return await Promise.race([this.askShard(shard, order), death]);
    } finally {
      forget();
    }
  }

  /**
   * The coordinator was restarted: the dead one's step counter and reports are gone, and it
   * may have died mid-step, leaving shards with some blocks of a step, or with a reduced
   * gradient waiting for a clip order that never came. Where the shards stand decides:
   *
   * - every shard at one version v: write a checkpoint of v (or take the one sealed at v),
   *   and every shard reloads it, which drops whatever of step v it held; step v then runs
   *   from the start. Blocks are deterministic, so a compute actor still sending a block of
   *   the old dealing sends the bits the new one would.
   * - shards at different versions (a clip order applied by some only), or a checkpoint of
   *   v that cannot be written: roll back to the newest sealed checkpoint, as when a shard dies.
   *
   * Either way the steps that follow give the bits of an undisturbed run.
   */
  private async recover(): Promise<void> {
    // A write the dead coordinator began is never sealed now.
    removeInterruptedWrites(this.host.runDir);
    this.lastCheckpoint = this.newestCheckpoint();
    await this.until(() => this.host.liveShards().length === this.training.shards);
    // Groups still computed for the dead coordinator's order would report done after the
    // reload below, and a later re-deal would skip them: let that work end first.
    await this.until(() => !this.host.computeBusy(), 30_000);
    if (this.stopping) return;
    const versions = [...new Set(this.host.shardVersions())];
    const [version] = versions;
    if (versions.length === 1 && typeof version === "number" && !this.shardDied) {
      this.step = version;
      this.located = true;
      const saved = await this.checkpoint();
      if (saved && !this.shardDied) {
        this.host.event("info", undefined, `recovered at step ${version}: every shard reloads ${saved} and training goes on`);
        await this.reload(saved);
        return;
      }
    }
    await this.rollback(`the restarted coordinator found the shards at versions ${versions.join(", ")}`);
  }

  /** The newest sealed checkpoint of the run folder, or the one the run resumed from if newer; none before the first. */
  private newestCheckpoint(): string | undefined {
    const candidates = [listCheckpoints(this.host.runDir).at(-1), this.training.options.resume].filter((p): p is string => !!p);
    return candidates.sort((a, b) => readManifest(b).step - readManifest(a).step)[0];
  }

  /**
   * A shard died: its slice and moments are gone. Wait for its replacement, then every
   * shard loads the last checkpoint (or starts over from the seeded initialisation), and
   * the steps since replay: they give the same bits, since every step is deterministic.
   */
  private async rollback(why: string): Promise<void> {
    this.host.event("rollback", undefined, `${why}: rolling back to ${this.lastCheckpoint ?? "the initial parameters"}`);
    await new Promise((r) => setTimeout(r, 500));
    this.shardDied = false;
    await this.until(() => this.host.liveShards().length === this.training.shards);
    if (this.stopping) return;
    await this.reload(this.lastCheckpoint);
  }

  /** Every shard loads `path` (none: the seeded initialisation), dropping whatever step it held; training goes on from there. */
  private async reload(path: string | undefined): Promise<void> {
    this.reports.clear();
    const target = path ? readManifest(path).step : 0;
    const order: CheckpointOrder = { op: "load", path: path ?? "" };
    for (let s = 0; s < this.training.shards; s++) {
      const reply = await this.askShard(s, order);
      if (!reply.ok) throw new Error(`shard ${s} could not load ${path ?? "the initial parameters"}: ${reply.error}`);
      // What it reported before it loaded is void (its reply comes after its reports).
      for (const key of [...this.reports.keys()]) if (key.endsWith(`:${s}`) && !key.startsWith("loaded:")) this.reports.delete(key);
    }
    this.step = target;
    this.located = true;
    await this.until(() => !!this.shardsReport("loaded", target), 60_000);
  }
}
