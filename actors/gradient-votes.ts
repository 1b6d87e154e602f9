// The rules of `verify: 2`: who computes a group twice, and when a gradient block is accepted.
//
// Owns: pairing compute actors (on different hosts when there are several), and the vote
// on one step's gradient blocks from the copies that arrived, keyed by (block, actor).
// Never: touches the network, a clock or a tensor's values: a copy is compared as bytes,
// since every group's gradient is a deterministic function of the parameters and the data,
// so two honest actors send the same bytes.
import { alignedBlocks, blockKey, type Block } from "../model/reduction-tree.js";

/**
 * Pairs compute actors so that each group is computed by the two actors of a pair. Actors
 * of different hosts are paired first (always taking one from each of the two hosts with
 * the most actors left, which pairs the most across hosts); what remains on one host is
 * paired there, and `sameHost` says so. An odd actor out is a spare: it settles
 * disagreements. `actors` come in the caller's order; the pairs keep it.
 */
export function pairActors(actors: { id: string; host: string }[]): { pairs: [string, string][]; sameHost: boolean } {
  const byHost = new Map<string, string[]>();
  for (const a of actors) byHost.set(a.host, [...(byHost.get(a.host) ?? []), a.id]);
  const order = new Map(actors.map((a, i) => [a.id, i]));
  const pairs: [string, string][] = [];
  let sameHost = false;
  for (;;) {
    // The hosts with the most actors left first; ties in the order of their first actor.
    const hosts = [...byHost.values()].filter((ids) => ids.length > 0).sort((a, b) => b.length - a.length || order.get(a[0]!)! - order.get(b[0]!)!);
    if (hosts.length >= 2) pairs.push([hosts[0]!.shift()!, hosts[1]!.shift()!]);
    else if (hosts.length === 1 && hosts[0]!.length >= 2) {
      sameHost = true;
      pairs.push([hosts[0]!.shift()!, hosts[0]!.shift()!]);
    } else break;
  }
  for (const p of pairs) p.sort((a, b) => order.get(a)! - order.get(b)!);
  pairs.sort((a, b) => order.get(a[0])! - order.get(b[0])!);
  return { pairs, sameHost };
}

/** What the copies of one block say so far. */
export type Vote =
  /** Two dealt actors sent the same bytes; `odd` are the dealt actors whose copy differs from them. */
  | { verdict: "accepted"; bytes: Uint8Array; by: [string, string]; odd: string[] }
  /** Fewer than two copies from actors dealt the block. */
  | { verdict: "waiting" }
  /** Every copy differs from every other: with two, a third actor must settle it; with three or more, there is no majority. */
  | { verdict: "disagreed"; actors: string[] };

/**
 * One step's copies of gradient blocks, and who was dealt which block. A copy counts only
 * once its sender was dealt that block (a step order may reach the shard after a copy), and
 * only its sender's first copy of a block counts.
 */
export class GradientVotes {
  /** block key → actors dealt that block, in this step's orders so far. */
  private readonly dealt = new Map<string, Set<string>>();
  /** block key → actor → the bytes of its copy. */
  private readonly copies = new Map<string, Map<string, Uint8Array>>();

  constructor(private readonly groups: number) {}

  /** Records a step order: each actor is dealt the aligned blocks its groups make (as compute actors send them). */
  deal(assignment: Record<string, number[]>): void {
    for (const [actor, held] of Object.entries(assignment))
      for (const block of alignedBlocks(held, this.groups)) {
        const key = blockKey(block);
        this.dealt.set(key, (this.dealt.get(key) ?? new Set()).add(actor));
      }
  }

  /** Keeps an actor's copy of a block; false when that actor already sent one. */
  add(block: Block, actor: string, bytes: Uint8Array): boolean {
    const key = blockKey(block);
    const copies = this.copies.get(key) ?? new Map<string, Uint8Array>();
    this.copies.set(key, copies);
    if (copies.has(actor)) return false;
    copies.set(actor, bytes);
    return true;
  }

  /** The blocks some copy arrived for. */
  blocks(): string[] {
    return [...this.copies.keys()];
  }

  vote(key: string): Vote {
    const dealt = this.dealt.get(key) ?? new Set<string>();
    const copies = [...(this.copies.get(key) ?? [])].filter(([actor]) => dealt.has(actor));
    for (let i = 0; i < copies.length; i++)
      for (let j = i + 1; j < copies.length; j++)
        if (sameBytes(copies[i]![1], copies[j]![1])) {
          const bytes = copies[i]![1];
          const odd = copies.filter(([, b]) => !sameBytes(b, bytes)).map(([actor]) => actor);
          return { verdict: "accepted", bytes, by: [copies[i]![0], copies[j]![0]], odd };
        }
    if (copies.length < 2) return { verdict: "waiting" };
    return { verdict: "disagreed", actors: copies.map(([actor]) => actor) };
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
