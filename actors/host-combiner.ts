// Host-level combining: what a compute actor does when a step order names it its host's
// combiner.
//
// Owns: one step attempt's gradient blocks from the actors of one host (the combiner's own
// included), added along the fixed reduction tree into the largest aligned blocks of the
// host's groups; and, as each of those becomes whole, handing it back with the reports of
// the groups in it, for the compute actor to send to the shards.
// Never: sends anything, or adds across a block boundary: a whole block of the host is the
// very node of the tree the shards would have added from the same parts, so the bits are
// those of every other dealing (model/reduction-tree.ts).
import { addF32, alignedBlocks, blockKey, reduceTree, type Block } from "../model/reduction-tree.js";
import type { GroupReport, StepOrder } from "./protocol.js";

/** One actor's block of the host, with the report of the groups in it. */
export interface HostPart {
  block: Block;
  sum: Float32Array;
  report: GroupReport;
}

/** A whole block of the host: its sum, and the reports of every part added into it. */
export interface HostBlock {
  block: Block;
  sum: Float32Array;
  reports: GroupReport[];
}

/** The actors whose blocks `combiner` adds and sends in a step order (itself included, when combining). */
export function combinedBy(order: StepOrder, combiner: string): string[] {
  return Object.entries(order.combine ?? {}).flatMap(([actor, c]) => (c === combiner ? [actor] : []));
}

export class HostCombine {
  /** The largest aligned blocks of the groups dealt to the host's actors: what goes to the shards. */
  readonly targets: Block[];
  private readonly members: Set<string>;
  private readonly parts = new Map<string, HostPart>();
  private readonly sent = new Set<string>();

  constructor(
    readonly order: StepOrder,
    readonly combiner: string,
    groups: number,
  ) {
    this.members = new Set(combinedBy(order, combiner));
    const held = [...this.members].flatMap((actor) => order.assignment[actor] ?? []);
    this.targets = alignedBlocks(held, groups);
  }

  /** Why a part from `from` does not belong here, or undefined when it does: it combines through us and was dealt the block. */
  misfit(from: string, block: Block): string | undefined {
    if (!this.members.has(from)) return `${from} does not combine through ${this.combiner} in step ${this.order.step} attempt ${this.order.attempt}`;
    const dealt = new Set(this.order.assignment[from] ?? []);
    for (let g = block.lo; g < block.hi; g++) if (!dealt.has(g)) return `group ${g} was not dealt to ${from} in step ${this.order.step}`;
    return undefined;
  }

  /** Adds a part (a duplicate is ignored); returns the blocks of the host this made whole. */
  add(part: HostPart): HostBlock[] {
    const key = blockKey(part.block);
    if (this.parts.has(key)) return [];
    this.parts.set(key, part);
    const whole: HostBlock[] = [];
    for (const target of this.targets) {
      const tkey = blockKey(target);
      if (this.sent.has(tkey) || !this.covers(target)) continue;
      const inside = [...this.parts.values()].filter((p) => p.block.lo >= target.lo && p.block.hi <= target.hi);
      const sums = new Map(inside.map((p) => [blockKey(p.block), p.sum]));
      whole.push({ block: target, sum: reduceTree(sums, target.lo, target.hi, addF32)!, reports: inside.map((p) => p.report) });
      this.sent.add(tkey);
      for (const p of inside) this.parts.delete(blockKey(p.block));
    }
    return whole;
  }

  /** Whether every group of `target` is in some part received. */
  private covers(target: Block): boolean {
    const have = new Set<number>();
    for (const p of this.parts.values()) for (let g = p.block.lo; g < p.block.hi; g++) have.add(g);
    for (let g = target.lo; g < target.hi; g++) if (!have.has(g)) return false;
    return true;
  }
}
