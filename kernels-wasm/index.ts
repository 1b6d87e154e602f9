// The WebAssembly backend of the Kernels interface.
//
// Owns: loading the AssemblyScript module (the relaxed-SIMD build where the engine
// validates it, else plain SIMD), its memory (grown on demand, refused past 4 GiB with an
// error naming the size asked), and the dispatch: every kernel of a training step runs in
// WebAssembly; memory management, fill and copy (typed-array fill and copyWithin over the
// module's memory) are model/arena.ts's, the allocator the reference uses too. It
// implements DecoderKernels too: a decoder's rotary embedding, causal grouped-query
// attention and the cached generation step.
// Never: mixes builds within a process: one process, one module, the same bits every time.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import type { Buf, DecoderKernels, MatmulArgs } from "../model/kernels.js";
import { ropeInverseFrequencies } from "../model/rope.js";
import { memoryOps, type Arena } from "../model/arena.js";

interface Exports {
  memory: WebAssembly.Memory;
  /** Columns of B per packed panel (matmul's column block). */
  NC: { value: number };
  matmul(out: number, a: number, b: number, m: number, n: number, k: number, alpha: number, accumulate: number, panel: number): void;
  transpose(dst: number, src: number, rows: number, cols: number): void;
  add(out: number, a: number, b: number, n: number): void;
  axpy(y: number, x: number, n: number, alpha: number): void;
  scale(x: number, n: number, s: number): void;
  adamw(p: number, g: number, m: number, v: number, n: number, lr: number, b1: number, b2: number, eps: number, wd: number, c1: number, c2: number): void;
  sumSquares(out: number, x: number, n: number, chunk: number): void;
  moveHeads(dst: number, src: number, b: number, t: number, parts: number, h: number, d: number, toHeads: number): void;
  maskedSoftmax(scores: number, mask: number, b: number, h: number, t: number): void;
  softmaxBackward(ds: number, p: number, dp: number, rows: number, t: number, scale: number): void;
  gelu(out: number, inp: number, n: number, exact: number): void;
  geluBackward(dInp: number, inp: number, dOut: number, n: number, exact: number): void;
  tanh(out: number, inp: number, n: number): void;
  tanhBackward(dInp: number, out: number, dOut: number, n: number): void;
  swiglu(out: number, inp: number, rows: number, hidden: number): void;
  swigluBackward(dInp: number, inp: number, dOut: number, rows: number, hidden: number): void;
  addBias(x: number, bias: number, rows: number, cols: number): void;
  biasBackward(dBias: number, dOut: number, rows: number, cols: number, accumulate: number): void;
  dropout(out: number, inp: number, n: number, p: number, seed: number, counter: number): void;
  layerNorm(out: number, mean: number, rstd: number, inp: number, weight: number, bias: number, rows: number, cols: number, eps: number): void;
  layerNormBackward(
    dInp: number,
    dWeight: number,
    dBias: number,
    dOut: number,
    inp: number,
    weight: number,
    mean: number,
    rstd: number,
    rows: number,
    cols: number,
  ): void;
  rmsNorm(out: number, rstd: number, inp: number, weight: number, rows: number, cols: number, eps: number): void;
  rmsNormBackward(dInp: number, dWeight: number, dOut: number, inp: number, weight: number, rstd: number, rows: number, cols: number): void;
  rope(qkv: number, b: number, t: number, h: number, d: number, table: number, inverse: number): void;
  rotary(x: number, rows: number, stride: number, heads: number, d: number, seqLen: number, start: number, table: number, inverse: number): void;
  causalSoftmax(scores: number, rows: number, t: number, qLen: number, offset: number): void;
  linearRows(out: number, a: number, b: number, m: number, n: number, k: number): void;
  embedding(out: number, table: number, ids: number, n: number, dim: number, accumulate: number): void;
  embeddingBackward(dTable: number, dOut: number, ids: number, n: number, dim: number): void;
  crossEntropy(losses: number, dLogits: number, logits: number, labels: number, rows: number, vocab: number, gradScale: number): void;
}

const PAGE = 65536;
const MAX_BYTES = 4 * 1024 ** 3;

function buildDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) dir = dirname(dir);
  return join(dir, "kernels-wasm", "build");
}

/**
 * Whether this engine runs relaxed SIMD. Node 20 has it behind a V8 flag, which we turn on
 * here rather than on every command line: every process then loads the same build, and the
 * same backend is what makes a cluster's bits equal `train --local`'s.
 */
export function relaxedSimdSupported(): boolean {
  const file = join(buildDir(), "kernels-relaxed.wasm");
  if (!existsSync(file)) return false;
  const bytes = readFileSync(file);
  if (WebAssembly.validate(bytes)) return true;
  setFlagsFromString("--experimental-wasm-relaxed-simd");
  return WebAssembly.validate(bytes);
}

export async function createWasmKernels(opts: { relaxed?: boolean | "auto" } = {}): Promise<DecoderKernels> {
  const dir = buildDir();
  const plain = join(dir, "kernels.wasm");
  if (!existsSync(plain)) throw new Error(`${plain} is missing: run \`npm run build:wasm\`.`);
  const wantRelaxed = opts.relaxed ?? "auto";
  const relaxed = wantRelaxed === true || (wantRelaxed === "auto" && relaxedSimdSupported());
  if (wantRelaxed === true && !relaxedSimdSupported())
    throw new Error("this engine does not support relaxed SIMD (Node 20: run with --experimental-wasm-relaxed-simd)");
  const bytes = readFileSync(relaxed ? join(dir, "kernels-relaxed.wasm") : plain);
  const { instance } = await WebAssembly.instantiate(bytes, {
    env: {
      abort: () => {
        throw new Error("WebAssembly kernel aborted");
      },
    },
  });
  const w = instance.exports as unknown as Exports;

  const arena: Arena = {
    f32: new Float32Array(w.memory.buffer),
    i32: new Int32Array(w.memory.buffer),
    grow(elements) {
      const bytesNeeded = elements * 4;
      if (bytesNeeded > MAX_BYTES)
        throw new Error(
          `WebAssembly memory cannot hold ${(bytesNeeded / 1024 ** 3).toFixed(2)} GiB: the limit is 4 GiB; use a smaller batch or model on this backend.`,
        );
      const have = w.memory.buffer.byteLength;
      if (bytesNeeded > have) w.memory.grow(Math.ceil((Math.max(bytesNeeded, Math.min(MAX_BYTES, have * 2)) - have) / PAGE));
      arena.f32 = new Float32Array(w.memory.buffer);
      arena.i32 = new Int32Array(w.memory.buffer);
    },
  };
  const ptr = (b: Buf) => b * 4;
  // Attention as batched matmuls over heads (B·H of them): S = scale·Q·Kᵀ, P = softmax(S)
  // over the real keys, O = drop(P)·V. `saved` keeps P, undropped; backward recomputes the
  // dropout mask, which is the dropout kernel's with counter = P's flat index.
  const attentionMatmul = (
    out: Buf,
    a: Buf,
    bb: Buf,
    heads: number,
    m: number,
    n: number,
    kk: number,
    trans: { transA?: boolean; transB?: boolean },
    alpha = 1,
  ) => k.matmul({ out, a, b: bb, m, n, k: kk, batch: heads, strideA: m * kk, strideB: kk * n, strideOut: m * n, alpha, ...trans });
  const exact = (a: string) => (a === "erf" ? 1 : 0);
  // RoPE's cos and sin per (position, pair), computed once per shape in float64 and kept.
  const ropeTables = new Map<string, Buf>();
  // A decoder's rotary table per (head size, frequencies): one row per position (d/2 cosines,
  // d/2 sines), computed in float64 and grown (doubling) as later positions are asked for.
  const rotaryTables = new Map<string, { table: Buf; positions: number }>();

  const k: DecoderKernels = {
    // The module's own data lives in its first page; buffers start above it, 16-byte aligned.
    ...memoryOps(arena, { firstElement: PAGE / 4, align: 4 }),
    name: relaxed ? "wasm-relaxed" : "wasm",

    matmul({ out, a, b, m, n, k: kk, transA, transB, accumulate, alpha = 1, batch = 1, strideA, strideB, strideOut }: MatmulArgs) {
      const sa = strideA ?? m * kk,
        sb = strideB ?? kk * n,
        so = strideOut ?? m * n;
      // Every layout becomes A (M,K) · B (K,N): transposed operands are copied first.
      const at = transA ? k.alloc(m * kk) : undefined;
      const bt = transB ? k.alloc(kk * n) : undefined;
      const panel = k.alloc(Math.max(8, Math.min(w.NC.value, n)) * kk); // one packed column block of B
      try {
        for (let p = 0; p < batch; p++) {
          const A = (a + p * sa) as Buf;
          const B = (b + p * sb) as Buf;
          if (at) w.transpose(ptr(at), ptr(A), kk, m);
          if (bt) w.transpose(ptr(bt), ptr(B), n, kk);
          w.matmul(ptr((out + p * so) as Buf), ptr(at ?? A), ptr(bt ?? B), m, n, kk, alpha, accumulate ? 1 : 0, ptr(panel));
        }
      } finally {
        k.free(panel);
        if (at) k.free(at);
        if (bt) k.free(bt);
      }
    },
    add: (out, a, b, n) => w.add(ptr(out), ptr(a), ptr(b), n),
    axpy: (y, x, n, alpha) => w.axpy(ptr(y), ptr(x), n, alpha),
    scale: (x, n, s) => w.scale(ptr(x), n, s),
    adamw: (p, g, m, v, n, a) =>
      w.adamw(ptr(p), ptr(g), ptr(m), ptr(v), n, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, 1 - Math.pow(a.beta1, a.step), 1 - Math.pow(a.beta2, a.step)),
    sumSquares(x, n, chunk) {
      const chunks = Math.ceil(n / chunk);
      const out = k.alloc(chunks * 2); // f64 per chunk
      try {
        w.sumSquares(ptr(out), ptr(x), n, chunk);
        return new Float64Array(w.memory.buffer.slice(ptr(out), ptr(out) + chunks * 8));
      } finally {
        k.free(out);
      }
    },
    attentionSavedSize: ({ b, t, h }) => b * h * t * t, // P, per head
    attention(out, saved, qkv, mask, { b, t, h, d }, scale, dropout) {
      const heads = b * h,
        size = heads * t * d;
      const qkvHeads = k.alloc(3 * size),
        outHeads = k.alloc(size);
      const dropped = dropout && dropout.p > 0 ? k.alloc(heads * t * t) : undefined;
      try {
        w.moveHeads(ptr(qkvHeads), ptr(qkv), b, t, 3, h, d, 1);
        const [q, key, v] = [0, 1, 2].map((part) => k.view(qkvHeads, part * size));
        attentionMatmul(saved, q!, key!, heads, t, t, d, { transB: true }, scale);
        w.maskedSoftmax(ptr(saved), ptr(mask), b, h, t);
        if (dropped) k.dropout(dropped, saved, heads * t * t, dropout!.p, dropout!.seed, 0);
        attentionMatmul(outHeads, dropped ?? saved, v!, heads, t, d, t, {});
        w.moveHeads(ptr(out), ptr(outHeads), b, t, 1, h, d, 0);
      } finally {
        for (const x of [qkvHeads, outHeads, dropped]) if (x !== undefined) k.free(x);
      }
    },
    attentionBackward(dQkv, dOut, qkv, _out, saved, _mask, { b, t, h, d }, scale, dropout) {
      const heads = b * h,
        size = heads * t * d;
      const qkvHeads = k.alloc(3 * size),
        dQkvHeads = k.alloc(3 * size),
        dOutHeads = k.alloc(size),
        dS = k.alloc(heads * t * t);
      const dropped = dropout && dropout.p > 0 ? k.alloc(heads * t * t) : undefined;
      try {
        w.moveHeads(ptr(qkvHeads), ptr(qkv), b, t, 3, h, d, 1);
        w.moveHeads(ptr(dOutHeads), ptr(dOut), b, t, 1, h, d, 1);
        const [q, key, v] = [0, 1, 2].map((part) => k.view(qkvHeads, part * size));
        const [dq, dk, dv] = [0, 1, 2].map((part) => k.view(dQkvHeads, part * size));
        if (dropped) k.dropout(dropped, saved, heads * t * t, dropout!.p, dropout!.seed, 0);
        attentionMatmul(dv!, dropped ?? saved, dOutHeads, heads, t, d, t, { transA: true }); // dV = drop(P)ᵀ·dO
        attentionMatmul(dS, dOutHeads, v!, heads, t, t, d, { transB: true }); // d drop(P) = dO·Vᵀ
        if (dropped) k.dropout(dS, dS, heads * t * t, dropout!.p, dropout!.seed, 0); // dP
        w.softmaxBackward(ptr(dS), ptr(saved), ptr(dS), heads * t, t, scale); // dS·scale
        attentionMatmul(dq!, dS, key!, heads, t, d, t, {}); // dQ = dS·K
        attentionMatmul(dk!, dS, q!, heads, t, d, t, { transA: true }); // dK = dSᵀ·Q
        w.moveHeads(ptr(dQkv), ptr(dQkvHeads), b, t, 3, h, d, 0);
      } finally {
        for (const x of [qkvHeads, dQkvHeads, dOutHeads, dS, dropped]) if (x !== undefined) k.free(x);
      }
    },
    gelu: (out, inp, n, a) => w.gelu(ptr(out), ptr(inp), n, exact(a)),
    geluBackward: (dInp, inp, dOut, n, a) => w.geluBackward(ptr(dInp), ptr(inp), ptr(dOut), n, exact(a)),
    tanh: (out, inp, n) => w.tanh(ptr(out), ptr(inp), n),
    tanhBackward: (dInp, out, dOut, n) => w.tanhBackward(ptr(dInp), ptr(out), ptr(dOut), n),
    swiglu: (out, inp, rows, hidden) => w.swiglu(ptr(out), ptr(inp), rows, hidden),
    swigluBackward: (dInp, inp, dOut, rows, hidden) => w.swigluBackward(ptr(dInp), ptr(inp), ptr(dOut), rows, hidden),
    addBias: (x, bias, rows, cols) => w.addBias(ptr(x), ptr(bias), rows, cols),
    biasBackward: (dBias, dOut, rows, cols, accumulate) => w.biasBackward(ptr(dBias), ptr(dOut), rows, cols, accumulate ? 1 : 0),
    // seed and counter are uint32 in the hash: >>> 0 keeps them so across the boundary.
    dropout: (out, inp, n, p, seed, counter) => (p === 0 ? k.copy(out, inp, n) : w.dropout(ptr(out), ptr(inp), n, p, seed >>> 0, counter >>> 0)),
    dropoutBackward: (dInp, dOut, n, p, seed, counter) => k.dropout(dInp, dOut, n, p, seed, counter),
    layerNorm: (out, mean, rstd, inp, weight, bias, rows, cols, eps) =>
      w.layerNorm(ptr(out), ptr(mean), ptr(rstd), ptr(inp), ptr(weight), bias === null ? 0 : ptr(bias), rows, cols, eps),
    layerNormBackward: (dInp, dWeight, dBias, dOut, inp, weight, mean, rstd, rows, cols) =>
      w.layerNormBackward(ptr(dInp), ptr(dWeight), dBias === null ? 0 : ptr(dBias), ptr(dOut), ptr(inp), ptr(weight), ptr(mean), ptr(rstd), rows, cols),
    rmsNorm: (out, rstd, inp, weight, rows, cols, eps) => w.rmsNorm(ptr(out), ptr(rstd), ptr(inp), ptr(weight), rows, cols, eps),
    rmsNormBackward: (dInp, dWeight, dOut, inp, weight, rstd, rows, cols) =>
      w.rmsNormBackward(ptr(dInp), ptr(dWeight), ptr(dOut), ptr(inp), ptr(weight), ptr(rstd), rows, cols),
    rope(qkv, { b, t, h, d }, base, inverse) {
      const key = `${t}:${d}:${base}`;
      let table = ropeTables.get(key);
      if (table === undefined) {
        const half = d / 2;
        const values = new Float32Array(2 * t * half);
        for (let pos = 0; pos < t; pos++)
          for (let i = 0; i < half; i++) {
            const angle = pos * Math.pow(base, (-2 * i) / d);
            values[pos * half + i] = Math.cos(angle);
            values[t * half + pos * half + i] = Math.sin(angle);
          }
        table = k.alloc(values.length);
        k.upload(table, values);
        ropeTables.set(key, table);
      }
      w.rope(ptr(qkv), b, t, h, d, ptr(table), inverse ? 1 : 0);
    },

    // ---- decoder ----------------------------------------------------------------------------
    rotary(x, { rows, stride, heads, d, seqLen, start }, rope, inverse) {
      if (rows === 0) return;
      const needed = start + Math.min(seqLen, rows);
      const key = `${d}:${JSON.stringify(rope)}`;
      let entry = rotaryTables.get(key);
      if (entry === undefined || entry.positions < needed) {
        const positions = Math.max(needed, 2 * (entry?.positions ?? 0), 64);
        const inv = ropeInverseFrequencies(d, rope);
        const half = d / 2;
        const values = new Float32Array(positions * d);
        for (let pos = 0; pos < positions; pos++)
          for (let i = 0; i < half; i++) {
            values[pos * d + i] = Math.cos(pos * inv[i]!);
            values[pos * d + half + i] = Math.sin(pos * inv[i]!);
          }
        if (entry) k.free(entry.table);
        entry = { table: k.alloc(values.length), positions };
        k.upload(entry.table, values);
        rotaryTables.set(key, entry);
      }
      w.rotary(ptr(x), rows, stride, heads, d, seqLen, start, ptr(entry.table), inverse ? 1 : 0);
    },
    // Causal grouped-query attention as batched matmuls. In the head-major layout (B, H+2KV,
    // T, D) the g = H/KV query heads of a group are one (g·T, D) matrix, so per sequence each
    // group is one product with its key head: S = scale·Q_group·K_jᵀ is (g·T, T), the rows
    // of P (B, H, T, T) in the reference's order. The whole T×T is computed and the causal
    // softmax zeroes what lies after each query.
    causalAttentionSavedSize: ({ b, t, h }) => b * h * t * t,
    causalAttention(out, saved, qkv, { b, t, h, kvHeads, d }, scale) {
      const heads = h + 2 * kvHeads,
        g = h / kvHeads,
        block = t * d;
      const qkvHeads = k.alloc(b * heads * block),
        outHeads = k.alloc(b * h * block);
      const group = { batch: kvHeads, strideA: g * block, strideB: block };
      try {
        w.moveHeads(ptr(qkvHeads), ptr(qkv), b, t, 1, heads, d, 1);
        for (let bi = 0; bi < b; bi++) {
          const base = bi * heads * block;
          const [q, key] = [k.view(qkvHeads, base), k.view(qkvHeads, base + h * block)];
          k.matmul({ out: k.view(saved, bi * h * t * t), a: q, b: key, m: g * t, n: t, k: d, transB: true, alpha: scale, ...group, strideOut: g * t * t });
        }
        w.causalSoftmax(ptr(saved), b * h * t, t, t, 0);
        for (let bi = 0; bi < b; bi++) {
          const v = k.view(qkvHeads, bi * heads * block + (h + kvHeads) * block);
          const p = k.view(saved, bi * h * t * t);
          k.matmul({
            out: k.view(outHeads, bi * h * block),
            a: p,
            b: v,
            m: g * t,
            n: d,
            k: t,
            batch: kvHeads,
            strideA: g * t * t,
            strideB: block,
            strideOut: g * block,
          });
        }
        w.moveHeads(ptr(out), ptr(outHeads), b, t, 1, h, d, 0);
      } finally {
        k.free(qkvHeads);
        k.free(outHeads);
      }
    },
    causalAttentionBackward(dQkv, dOut, qkv, saved, { b, t, h, kvHeads, d }, scale) {
      const heads = h + 2 * kvHeads,
        g = h / kvHeads,
        block = t * d,
        tt = t * t;
      const qkvHeads = k.alloc(b * heads * block),
        dQkvHeads = k.alloc(b * heads * block),
        dOutHeads = k.alloc(b * h * block),
        dS = k.alloc(b * h * tt);
      try {
        w.moveHeads(ptr(qkvHeads), ptr(qkv), b, t, 1, heads, d, 1);
        w.moveHeads(ptr(dOutHeads), ptr(dOut), b, t, 1, h, d, 1);
        const at = (buf: Buf, bi: number, head: number) => k.view(buf, (bi * heads + head) * block);
        // dV_j and dK_j: per key/value head j, (group's P or dS)ᵀ (T, g·T) · (the group's dO or Q) (g·T, D).
        const groupTransposed = (out: Buf, a: Buf, x: Buf) =>
          k.matmul({ out, a, b: x, m: t, n: d, k: g * t, transA: true, batch: kvHeads, strideA: g * tt, strideB: g * block, strideOut: block });
        for (let bi = 0; bi < b; bi++) {
          const p = k.view(saved, bi * h * tt),
            dO = k.view(dOutHeads, bi * h * block);
          // dV_j = Σ over the group of Pᵀ·dO = P_groupᵀ (T, g·T) · dO_group (g·T, D)
          groupTransposed(at(dQkvHeads, bi, h + kvHeads), p, dO);
          // dP_group = dO_group · V_jᵀ
          k.matmul({
            out: k.view(dS, bi * h * tt),
            a: dO,
            b: at(qkvHeads, bi, h + kvHeads),
            m: g * t,
            n: t,
            k: d,
            transB: true,
            batch: kvHeads,
            strideA: g * block,
            strideB: block,
            strideOut: g * tt,
          });
        }
        w.softmaxBackward(ptr(dS), ptr(saved), ptr(dS), b * h * t, t, scale); // dS·scale; 0 after each query, where P is 0
        for (let bi = 0; bi < b; bi++) {
          const ds = k.view(dS, bi * h * tt);
          // dQ_group = dS_group · K_j, dK_j = dS_groupᵀ · Q_group
          k.matmul({
            out: at(dQkvHeads, bi, 0),
            a: ds,
            b: at(qkvHeads, bi, h),
            m: g * t,
            n: d,
            k: t,
            batch: kvHeads,
            strideA: g * tt,
            strideB: block,
            strideOut: g * block,
          });
          groupTransposed(at(dQkvHeads, bi, h), ds, at(qkvHeads, bi, 0));
        }
        w.moveHeads(ptr(dQkv), ptr(dQkvHeads), b, t, 1, heads, d, 0);
      } finally {
        for (const x of [qkvHeads, dQkvHeads, dOutHeads, dS]) k.free(x);
      }
    },
    linear: (out, x, weight, rows, outFeatures, inFeatures) => w.linearRows(ptr(out), ptr(x), ptr(weight), rows, outFeatures, inFeatures),
    // One query per sequence: each group's g query heads are consecutive in the new token's
    // qkv row, so S_group (g, length) = scale·Q_group·K_jᵀ over the filled part of the cache.
    cachedAttention(out, qkv, keys, values, { b, h, kvHeads, d, length, capacity }, scale) {
      const g = h / kvHeads;
      const scores = k.alloc(b * h * length);
      try {
        for (let bi = 0; bi < b; bi++) {
          const cache = bi * kvHeads * capacity * d;
          k.matmul({
            out: k.view(scores, bi * h * length),
            a: k.view(qkv, bi * (h + 2 * kvHeads) * d),
            b: k.view(keys, cache),
            m: g,
            n: length,
            k: d,
            transB: true,
            alpha: scale,
            batch: kvHeads,
            strideA: g * d,
            strideB: capacity * d,
            strideOut: g * length,
          });
        }
        w.causalSoftmax(ptr(scores), b * h, length, 1, length - 1); // the new token sees every cached key
        for (let bi = 0; bi < b; bi++)
          k.matmul({
            out: k.view(out, bi * h * d),
            a: k.view(scores, bi * h * length),
            b: k.view(values, bi * kvHeads * capacity * d),
            m: g,
            n: d,
            k: length,
            batch: kvHeads,
            strideA: g * length,
            strideB: capacity * d,
            strideOut: g * d,
          });
      } finally {
        k.free(scores);
      }
    },
    embedding: (out, table, ids, n, dim, accumulate) => w.embedding(ptr(out), ptr(table), ptr(ids), n, dim, accumulate ? 1 : 0),
    embeddingBackward: (dTable, dOut, ids, n, dim) => w.embeddingBackward(ptr(dTable), ptr(dOut), ptr(ids), n, dim),
    crossEntropy: (losses, dLogits, logits, labels, rows, vocab, gradScale) =>
      w.crossEntropy(ptr(losses), ptr(dLogits), ptr(logits), ptr(labels), rows, vocab, gradScale),
  };
  return k;
}
