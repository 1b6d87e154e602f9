// The fixed reduction tree of gradient groups, and how groups are dealt to compute actors.
//
// Owns: the rules that make a distributed step bitwise equal to `train --local`:
// - the G group gradients of a step are summed along one fixed binary tree over [0, G);
// - a compute actor holding several groups pre-combines them only along whole nodes of
//   that tree (aligned blocks), so whoever adds two operands, the operands and the order
//   are the same and so are the bits;
// - shard boundaries fall on the chunks over which the gradient norm is summed.
// Never: touches the network; apart from `addF32`, the one sum the tree is made of,
// everything here is integer bookkeeping.

/** A node of the tree: the groups [lo, hi), hi - lo a power of two, lo a multiple of it. */
export interface Block {
  lo: number;
  hi: number;
}

export function isAlignedBlock({ lo, hi }: Block, groups: number): boolean {
  const size = hi - lo;
  return size > 0 && (size & (size - 1)) === 0 && lo % size === 0 && hi <= groups;
}

/**
 * The largest aligned blocks that tile a set of groups: [0,1,2,3,5] in a tree of 8 gives
 * [0,4) and [5,6). An actor sends one contribution per block.
 */
export function alignedBlocks(held: number[], groups: number): Block[] {
  const set = new Set(held);
  const out: Block[] = [];
  const visit = (lo: number, hi: number) => {
    let all = true;
    for (let g = lo; g < hi && all; g++) all = set.has(g);
    if (all) return void out.push({ lo, hi });
    if (hi - lo === 1) return;
    const mid = (lo + hi) / 2;
    visit(lo, mid);
    visit(mid, hi);
  };
  visit(0, groups);
  return out;
}

/**
 * The value of node [lo, hi) from the blocks received: a received block of exactly that
 * node, else the sum of its two children (left + right). Returns undefined while any leaf
 * below is missing. `add(a, b)` must return a new value a + b.
 */
export function reduceTree<T>(received: Map<string, T>, lo: number, hi: number, add: (a: T, b: T) => T): T | undefined {
  const own = received.get(blockKey({ lo, hi }));
  if (own !== undefined) return own;
  if (hi - lo === 1) return undefined;
  const mid = (lo + hi) / 2;
  const left = reduceTree(received, lo, mid, add);
  if (left === undefined) return undefined;
  const right = reduceTree(received, mid, hi, add);
  if (right === undefined) return undefined;
  return add(left, right);
}

export const blockKey = (b: Block) => `${b.lo}-${b.hi}`;

/** a + b elementwise in float32, into a new array: the `add` of gradient trees. */
export function addF32(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

/**
 * Deals `groups` to actors as contiguous runs, as evenly as possible, in actor order, so
 * most actors hold whole aligned blocks and send few contributions. Any dealing gives the
 * same bits; this one only keeps traffic low.
 */
export function assignGroups(groups: number[], actors: string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  if (actors.length === 0) return out;
  const sorted = [...groups].sort((a, b) => a - b);
  const base = Math.floor(sorted.length / actors.length);
  const extra = sorted.length % actors.length;
  let at = 0;
  actors.forEach((actor, i) => {
    const n = base + (i < extra ? 1 : 0);
    if (n > 0) out.set(actor, sorted.slice(at, at + n));
    at += n;
  });
  return out;
}

/**
 * Splits a flat vector of `total` elements (a multiple of `chunk`) into `shards`
 * contiguous ranges whose boundaries fall on chunk boundaries.
 */
export function shardRanges(total: number, shards: number, chunk: number): { start: number; end: number }[] {
  if (total % chunk !== 0) throw new Error(`parameter vector of ${total} elements is not a whole number of ${chunk}-element chunks`);
  const chunks = total / chunk;
  if (shards > chunks) throw new Error(`${shards} shards for ${chunks} chunks: use at most ${chunks} shards for this model`);
  const out: { start: number; end: number }[] = [];
  for (let s = 0; s < shards; s++) {
    const first = Math.floor((s * chunks) / shards);
    const last = Math.floor(((s + 1) * chunks) / shards);
    out.push({ start: first * chunk, end: last * chunk });
  }
  return out;
}
