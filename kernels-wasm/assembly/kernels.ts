// AssemblyScript kernels, compiled to WebAssembly with 128-bit SIMD.
//
// Owns: the hot loops of the CPU backend: the matmul micro-kernel, transposes (so every
// layout reduces to one packed product), the elementwise updates (add, axpy, scale, AdamW)
// and the chunked sum of squares. Pointers are byte offsets into this module's memory;
// lengths are in elements. Every loop sums in a fixed order: same inputs, same bits.
// Never: allocates; the TypeScript loader owns the memory (kernels-wasm/index.ts).
//
// `madd(a, b, c)` is a·b + c. This file builds as-is for plain SIMD; the relaxed-SIMD
// build replaces its body with f32x4.relaxed_madd (scripts/build-wasm.mjs).

@inline function madd(a: v128, b: v128, c: v128): v128 {
  return f32x4.add(f32x4.mul(a, b), c);
}

// ---- matmul --------------------------------------------------------------------------------

/** Rows of A per block: 48 rows of a K = 1024 matrix (192 KB) stay in L2 across a column block. */
const MC = 48;
/** Columns of B per block: its packed panel (K × 256) is what the row blocks walk. */
export const NC = 256;

/**
 * out (M,N) = alpha · A (M,K) · B (K,N) (+ out when accumulate); all row-major, contiguous.
 * Register tile: 4 rows × 8 columns (8 v128 accumulators), k innermost, A's values
 * broadcast straight from memory (v128.load32_splat: one instruction, not load + shuffle).
 * Blocking, as in GotoBLAS without packing A: columns in blocks of NC, whose strips of 8
 * are packed into `panel` (K × 8 each, contiguous, so the inner loop reads B sequentially);
 * rows in blocks of MC, so a row block stays in L2 while it meets every strip of the panel.
 * Each output element sums its K products in order q = 0..K-1 whatever the blocking.
 * `panel` must hold min(NC, N) · K floats.
 */
export function matmul(out: usize, a: usize, b: usize, m: i32, n: i32, k: i32, alpha: f32, accumulate: i32, panel: usize): void {
  const va = f32x4.splat(alpha);
  const n8 = n & ~7;
  for (let jc = 0; jc < n8; jc += NC) {
    const jEnd = min(n8, jc + NC);
    for (let j = jc; j < jEnd; j += 8) {
      const strip = panel + (<usize>((j - jc) * k) << 2);
      for (let q = 0; q < k; q++) {
        const src = b + (<usize>(q * n + j) << 2);
        const dst = strip + (<usize>q << 5);
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
      }
    }
    for (let ic = 0; ic < m; ic += MC) {
      const iEnd = min(m, ic + MC);
      for (let j = jc; j < jEnd; j += 8) {
        const strip = panel + (<usize>((j - jc) * k) << 2);
        let i = ic;
        for (; i + 4 <= iEnd; i += 4) {
          let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
          let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
          const a0 = a + (<usize>(i * k) << 2), a1 = a0 + (<usize>k << 2), a2 = a1 + (<usize>k << 2), a3 = a2 + (<usize>k << 2);
          let bp = strip;
          for (let q = 0; q < k; q++) {
            const b0 = v128.load(bp), b1 = v128.load(bp, 16);
            const o = <usize>q << 2;
            const x0 = v128.load32_splat(a0 + o);
            const x1 = v128.load32_splat(a1 + o);
            const x2 = v128.load32_splat(a2 + o);
            const x3 = v128.load32_splat(a3 + o);
            c00 = madd(x0, b0, c00); c01 = madd(x0, b1, c01);
            c10 = madd(x1, b0, c10); c11 = madd(x1, b1, c11);
            c20 = madd(x2, b0, c20); c21 = madd(x2, b1, c21);
            c30 = madd(x3, b0, c30); c31 = madd(x3, b1, c31);
            bp += 32;
          }
          storeTile(out + (<usize>(i * n + j) << 2), c00, c01, va, accumulate);
          storeTile(out + (<usize>((i + 1) * n + j) << 2), c10, c11, va, accumulate);
          storeTile(out + (<usize>((i + 2) * n + j) << 2), c20, c21, va, accumulate);
          storeTile(out + (<usize>((i + 3) * n + j) << 2), c30, c31, va, accumulate);
        }
        for (; i < iEnd; i++) {
          let c0 = f32x4.splat(0), c1 = f32x4.splat(0);
          const ar = a + (<usize>(i * k) << 2);
          let bp = strip;
          for (let q = 0; q < k; q++) {
            const x = v128.load32_splat(ar + (<usize>q << 2));
            c0 = madd(x, v128.load(bp), c0);
            c1 = madd(x, v128.load(bp, 16), c1);
            bp += 32;
          }
          storeTile(out + (<usize>(i * n + j) << 2), c0, c1, va, accumulate);
        }
      }
    }
  }
  // The last n % 8 columns, one at a time.
  for (let j = n8; j < n; j++)
    for (let i = 0; i < m; i++) {
      let s: f32 = 0;
      for (let q = 0; q < k; q++) s += load<f32>(a + (<usize>(i * k + q) << 2)) * load<f32>(b + (<usize>(q * n + j) << 2));
      const at = out + (<usize>(i * n + j) << 2);
      store<f32>(at, (accumulate ? load<f32>(at) : 0) + alpha * s);
    }
}

@inline function storeTile(at: usize, c0: v128, c1: v128, alpha: v128, accumulate: i32): void {
  let r0 = f32x4.mul(c0, alpha), r1 = f32x4.mul(c1, alpha);
  if (accumulate) {
    r0 = f32x4.add(v128.load(at), r0);
    r1 = f32x4.add(v128.load(at, 16), r1);
  }
  v128.store(at, r0);
  v128.store(at, r1, 16);
}

/** dst (C,R) = transpose of src (R,C). */
export function transpose(dst: usize, src: usize, rows: i32, cols: i32): void {
  const tile = 32;
  for (let r0 = 0; r0 < rows; r0 += tile)
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const rEnd = min(rows, r0 + tile), cEnd = min(cols, c0 + tile);
      for (let r = r0; r < rEnd; r++)
        for (let c = c0; c < cEnd; c++) store<f32>(dst + (<usize>(c * rows + r) << 2), load<f32>(src + (<usize>(r * cols + c) << 2)));
    }
}

// ---- elementwise ---------------------------------------------------------------------------
// Each element is computed by the same IEEE operations in the SIMD body and the scalar
// tail, so a vector's bits do not depend on where a slice of it starts.

export function add(out: usize, a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

export function axpy(y: usize, x: usize, n: i32, alpha: f32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(va, v128.load(x + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + alpha * load<f32>(x + o));
  }
}

export function scale(x: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(x + (<usize>i << 2), f32x4.mul(v128.load(x + (<usize>i << 2)), vs));
  for (; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * s);
}

/**
 * AdamW over n parameters. c1, c2 are the bias corrections 1 - beta^step (computed once by
 * the caller). p -= lr · (m̂ / (√v̂ + eps) + weightDecay · p).
 */
export function adamw(p: usize, g: usize, m: usize, v: usize, n: i32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, c1: f32, c2: f32): void {
  const b1 = f32x4.splat(beta1), b2 = f32x4.splat(beta2), ob1 = f32x4.splat(1 - beta1), ob2 = f32x4.splat(1 - beta2);
  const vlr = f32x4.splat(lr), veps = f32x4.splat(eps), vwd = f32x4.splat(weightDecay), vc1 = f32x4.splat(c1), vc2 = f32x4.splat(c2);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const gi = v128.load(g + o);
    const mi = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(ob1, gi));
    const vi = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(f32x4.mul(ob2, gi), gi));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    const pi = v128.load(p + o);
    const upd = f32x4.add(f32x4.div(f32x4.div(mi, vc1), f32x4.add(f32x4.sqrt(f32x4.div(vi, vc2)), veps)), f32x4.mul(vwd, pi));
    v128.store(p + o, f32x4.sub(pi, f32x4.mul(vlr, upd)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const gi = load<f32>(g + o);
    const mi = beta1 * load<f32>(m + o) + (1 - beta1) * gi;
    const vi = beta2 * load<f32>(v + o) + (1 - beta2) * gi * gi;
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const pi = load<f32>(p + o);
    store<f32>(p + o, pi - lr * (mi / c1 / (Mathf.sqrt(vi / c2) + eps) + weightDecay * pi));
  }
}

/**
 * Sum of squares of each chunk of `chunk` elements, in float64, written to out (f64 per
 * chunk). Four lanes accumulate in f32x4 within blocks of 1024, then lanes are added to the
 * f64 total in lane order: fixed, so the same chunk always gives the same bits.
 */
export function sumSquares(out: usize, x: usize, n: i32, chunk: i32): void {
  const chunks = (n + chunk - 1) / chunk;
  for (let c = 0; c < chunks; c++) {
    const start = c * chunk;
    const end = min(n, start + chunk);
    let total: f64 = 0;
    let i = start;
    const vecEnd = start + ((end - start) & ~3);
    while (i < vecEnd) {
      const blockEnd = min(vecEnd, i + 1024);
      let acc = f32x4.splat(0);
      for (; i < blockEnd; i += 4) {
        const xv = v128.load(x + (<usize>i << 2));
        acc = f32x4.add(acc, f32x4.mul(xv, xv));
      }
      total += <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
    }
    for (; i < end; i++) {
      const xi = <f64>load<f32>(x + (<usize>i << 2));
      total += xi * xi;
    }
    store<f64>(out + (<usize>c << 3), total);
  }
}

// ---- attention -------------------------------------------------------------------------------

@inline function dot(a: usize, b: usize, d: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= d; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < d; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

@inline function axpyRow(y: usize, x: usize, d: i32, alpha: f32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= d; i += 4) v128.store(y + (<usize>i << 2), f32x4.add(v128.load(y + (<usize>i << 2)), f32x4.mul(va, v128.load(x + (<usize>i << 2)))));
  for (; i < d; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) + alpha * load<f32>(x + (<usize>i << 2)));
}

/**
 * qkv is (B,T,3,H,D), mask i32 (B,T), out (B,T,H,D), probs (B,H,T,T) saved for backward.
 * Keys at padding get probability 0.
 */
export function attention(out: usize, probs: usize, qkv: usize, mask: usize, b: i32, t: i32, h: i32, d: i32, scale: f32): void {
  const rowStride = 3 * h * d;
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let i = 0; i < t; i++) {
        const q = qkv + (<usize>((bi * t + i) * rowStride + hi * d) << 2);
        const p = probs + (<usize>(((bi * h + hi) * t + i) * t) << 2);
        let max: f32 = -Infinity;
        for (let j = 0; j < t; j++) {
          let s: f32 = -Infinity;
          if (load<i32>(mask + (<usize>(bi * t + j) << 2))) s = dot(q, qkv + (<usize>((bi * t + j) * rowStride + h * d + hi * d) << 2), d) * scale;
          store<f32>(p + (<usize>j << 2), s);
          if (s > max) max = s;
        }
        let sum: f32 = 0;
        for (let j = 0; j < t; j++) {
          const s = load<f32>(p + (<usize>j << 2));
          const e: f32 = s == -Infinity ? 0 : Mathf.exp(s - max);
          store<f32>(p + (<usize>j << 2), e);
          sum += e;
        }
        const inv: f32 = sum > 0 ? 1 / sum : 0;
        const o = out + (<usize>(((bi * t + i) * h + hi) * d) << 2);
        memory.fill(o, 0, <usize>d << 2);
        for (let j = 0; j < t; j++) {
          const pj = load<f32>(p + (<usize>j << 2)) * inv;
          store<f32>(p + (<usize>j << 2), pj);
          if (pj != 0) axpyRow(o, qkv + (<usize>((bi * t + j) * rowStride + 2 * h * d + hi * d) << 2), d, pj);
        }
      }
}

/** dQkv (B,T,3,H,D) is overwritten; scratch holds T floats. */
export function attentionBackward(dqkv: usize, dout: usize, qkv: usize, probs: usize, b: i32, t: i32, h: i32, d: i32, scale: f32, scratch: usize): void {
  const rowStride = 3 * h * d;
  memory.fill(dqkv, 0, <usize>(b * t * rowStride) << 2);
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let i = 0; i < t; i++) {
        const p = probs + (<usize>(((bi * h + hi) * t + i) * t) << 2);
        const dO = dout + (<usize>(((bi * t + i) * h + hi) * d) << 2);
        let rowDot: f32 = 0;
        for (let j = 0; j < t; j++) {
          const pj = load<f32>(p + (<usize>j << 2));
          const vj = qkv + (<usize>((bi * t + j) * rowStride + 2 * h * d + hi * d) << 2);
          const dp = dot(dO, vj, d);
          store<f32>(scratch + (<usize>j << 2), dp);
          rowDot += pj * dp;
          if (pj != 0) axpyRow(dqkv + (<usize>((bi * t + j) * rowStride + 2 * h * d + hi * d) << 2), dO, d, pj);
        }
        const qi = qkv + (<usize>((bi * t + i) * rowStride + hi * d) << 2);
        const dqi = dqkv + (<usize>((bi * t + i) * rowStride + hi * d) << 2);
        for (let j = 0; j < t; j++) {
          const ds = load<f32>(p + (<usize>j << 2)) * (load<f32>(scratch + (<usize>j << 2)) - rowDot) * scale;
          if (ds == 0) continue;
          axpyRow(dqi, qkv + (<usize>((bi * t + j) * rowStride + h * d + hi * d) << 2), d, ds);
          axpyRow(dqkv + (<usize>((bi * t + j) * rowStride + h * d + hi * d) << 2), qi, d, ds);
        }
      }
}
