// AssemblyScript kernels, compiled to WebAssembly with 128-bit SIMD.
//
// Owns: the hot loops of the CPU backend: the matmul micro-kernel, transposes (so every
// layout reduces to one packed product), the elementwise updates (add, axpy, scale, AdamW),
// the chunked sum of squares, activations, bias, dropout, LayerNorm and RMSNorm, RoPE,
// embeddings, the fused cross-entropy, and attention's head layouts and masked softmax
// (its products are matmuls); for decoders, RoPE at given positions, the causal softmax and
// the few-row product of a generation step. Pointers are byte offsets into this module's memory; lengths
// are in elements. Every loop sums in a fixed order: same inputs, same bits.
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

/**
 * out (M,N) = A (M,K) · Bᵀ with B (N,K) row-major (a linear layer's weight), for few rows of A
 * (generation's one token per sequence): each output is a dot product of two rows read in
 * place, in four lanes then the lanes in order and the tail, with no transpose and no
 * packing, so each weight is read once per row of A. Its sums run in another order than
 * matmul's, so the two give different bits.
 */
export function linearRows(out: usize, a: usize, b: usize, m: i32, n: i32, k: i32): void {
  const k4 = k & ~3;
  for (let j = 0; j < n; j++) {
    const bRow = b + (<usize>(j * k) << 2);
    for (let i = 0; i < m; i++) {
      const aRow = a + (<usize>(i * k) << 2);
      let acc = f32x4.splat(0);
      for (let q = 0; q < k4; q += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(aRow + (<usize>q << 2)), v128.load(bRow + (<usize>q << 2))));
      let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
      for (let q = k4; q < k; q++) s += load<f32>(aRow + (<usize>q << 2)) * load<f32>(bRow + (<usize>q << 2));
      store<f32>(out + (<usize>(i * n + j) << 2), s);
    }
  }
}

/**
 * dst (C,R) = transpose of src (R,C): 32×32 tiles (both sides stay in L1), each made of
 * 4×4 blocks turned with eight shuffles; ragged edges one element at a time.
 */
export function transpose(dst: usize, src: usize, rows: i32, cols: i32): void {
  const tile = 32;
  const rows4 = rows & ~3, cols4 = cols & ~3;
  for (let r0 = 0; r0 < rows4; r0 += tile)
    for (let c0 = 0; c0 < cols4; c0 += tile) {
      const rEnd = min(rows4, r0 + tile), cEnd = min(cols4, c0 + tile);
      for (let r = r0; r < rEnd; r += 4)
        for (let c = c0; c < cEnd; c += 4) {
          const from = src + (<usize>(r * cols + c) << 2), stride = <usize>cols << 2;
          const x0 = v128.load(from), x1 = v128.load(from + stride), x2 = v128.load(from + 2 * stride), x3 = v128.load(from + 3 * stride);
          const t0 = v128.shuffle<f32>(x0, x1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(x0, x1, 2, 6, 3, 7);
          const t2 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(x2, x3, 2, 6, 3, 7);
          const to = dst + (<usize>(c * rows + r) << 2), back = <usize>rows << 2;
          v128.store(to, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
          v128.store(to + back, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
          v128.store(to + 2 * back, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
          v128.store(to + 3 * back, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
        }
    }
  // The last rows % 4 rows and cols % 4 columns.
  for (let r = 0; r < rows; r++)
    for (let c = r < rows4 ? cols4 : 0; c < cols; c++) store<f32>(dst + (<usize>(c * rows + r) << 2), load<f32>(src + (<usize>(r * cols + c) << 2)));
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

// ---- activations, bias, dropout ------------------------------------------------------------
// Elementwise maths uses mul and add, never madd, so both builds give the same bits here.
// exp is computed in f32x4 lanes (expv); tanh, sigmoid and erf are built on it.

const LOG2E: f32 = 1.4426950408889634;
const LN2_HI: f32 = 0.693359375; // ln 2 split in two, so n·ln2 is subtracted exactly
const LN2_LO: f32 = -2.12194440e-4;

@inline function splat(x: f32): v128 {
  return f32x4.splat(x);
}

/**
 * e^x in each lane, relative error below 2e-7: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its
 * degree-6 Taylor polynomial, 2^n added to the exponent bits. Inputs are clamped to
 * [-87, 88], where e^x stays a normal float.
 */
@inline function expv(x: v128): v128 {
  x = f32x4.min(f32x4.max(x, splat(-87)), splat(88));
  const n = f32x4.nearest(f32x4.mul(x, splat(LOG2E)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, splat(LN2_HI))), f32x4.mul(n, splat(LN2_LO)));
  let p = splat(1.0 / 720);
  p = f32x4.add(f32x4.mul(p, r), splat(1.0 / 120));
  p = f32x4.add(f32x4.mul(p, r), splat(1.0 / 24));
  p = f32x4.add(f32x4.mul(p, r), splat(1.0 / 6));
  p = f32x4.add(f32x4.mul(p, r), splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), splat(1));
  p = f32x4.add(f32x4.mul(p, r), splat(1));
  return i32x4.add(p, i32x4.shl(i32x4.trunc_sat_f32x4_s(n), 23));
}

/** tanh(x) = 1 - 2 / (e^2x + 1): exact at both ends, absolute error below 3e-7. */
@inline function tanhv(x: v128): v128 {
  return f32x4.sub(splat(1), f32x4.div(splat(2), f32x4.add(expv(f32x4.add(x, x)), splat(1))));
}

@inline function sigmoidv(x: v128): v128 {
  return f32x4.div(splat(1), f32x4.add(splat(1), expv(f32x4.neg(x))));
}

/** erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), odd in x. */
@inline function erfv(x: v128): v128 {
  const ax = f32x4.abs(x);
  const t = f32x4.div(splat(1), f32x4.add(splat(1), f32x4.mul(splat(0.3275911), ax)));
  let p = splat(1.061405429);
  p = f32x4.add(f32x4.mul(p, t), splat(-1.453152027));
  p = f32x4.add(f32x4.mul(p, t), splat(1.421413741));
  p = f32x4.add(f32x4.mul(p, t), splat(-0.284496736));
  p = f32x4.add(f32x4.mul(p, t), splat(0.254829592));
  const y = f32x4.sub(splat(1), f32x4.mul(f32x4.mul(p, t), expv(f32x4.neg(f32x4.mul(ax, ax)))));
  return v128.bitselect(f32x4.neg(y), y, f32x4.lt(x, splat(0)));
}

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;
const INV_SQRT2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

/** Lanes of x past the first `count` are zero: the tail of a loop reuses the vector code. */
@inline function loadTail(p: usize, count: i32): v128 {
  let v = f32x4.splat(0);
  if (count > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (count > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (count > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

@inline function storeTail(p: usize, v: v128, count: i32): void {
  if (count > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (count > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (count > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** `count` (1 to 4) floats at p: a whole vector, or a tail. */
@inline function loadN(p: usize, count: i32): v128 {
  return count == 4 ? v128.load(p) : loadTail(p, count);
}

@inline function storeN(p: usize, v: v128, count: i32): void {
  if (count == 4) v128.store(p, v);
  else storeTail(p, v, count);
}

@inline function geluv(x: v128, exact: i32): v128 {
  const half = f32x4.mul(splat(0.5), x);
  if (exact) return f32x4.add(half, f32x4.mul(half, erfv(f32x4.mul(x, splat(INV_SQRT2)))));
  const u = f32x4.mul(splat(SQRT_2_OVER_PI), f32x4.add(x, f32x4.mul(splat(GELU_C), f32x4.mul(x, f32x4.mul(x, x)))));
  return f32x4.add(half, f32x4.mul(half, tanhv(u)));
}

@inline function geluGradv(x: v128, exact: i32): v128 {
  if (exact) {
    const cdf = f32x4.mul(splat(0.5), f32x4.add(splat(1), erfv(f32x4.mul(x, splat(INV_SQRT2)))));
    const pdf = f32x4.mul(splat(INV_SQRT_2PI), expv(f32x4.mul(splat(-0.5), f32x4.mul(x, x))));
    return f32x4.add(cdf, f32x4.mul(x, pdf));
  }
  const x2 = f32x4.mul(x, x);
  const t = tanhv(f32x4.mul(splat(SQRT_2_OVER_PI), f32x4.add(x, f32x4.mul(splat(GELU_C), f32x4.mul(x, x2)))));
  const du = f32x4.mul(splat(SQRT_2_OVER_PI), f32x4.add(splat(1), f32x4.mul(splat(3 * GELU_C), x2)));
  const left = f32x4.mul(splat(0.5), f32x4.add(splat(1), t));
  return f32x4.add(left, f32x4.mul(f32x4.mul(f32x4.mul(splat(0.5), x), f32x4.sub(splat(1), f32x4.mul(t, t))), du));
}

/** out (n) = gelu(inp), tanh approximation or exact (erf); out may alias inp. */
export function gelu(out: usize, inp: usize, n: i32, exact: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + (<usize>i << 2), geluv(v128.load(inp + (<usize>i << 2)), exact));
  if (i < n) storeTail(out + (<usize>i << 2), geluv(loadTail(inp + (<usize>i << 2), n - i), exact), n - i);
}

/** dInp (n) = gelu'(inp) · dOut; dInp may alias dOut. */
export function geluBackward(dInp: usize, inp: usize, dOut: usize, n: i32, exact: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dInp + o, f32x4.mul(geluGradv(v128.load(inp + o), exact), v128.load(dOut + o)));
  }
  if (i < n) {
    const o = <usize>i << 2;
    storeTail(dInp + o, f32x4.mul(geluGradv(loadTail(inp + o, n - i), exact), loadTail(dOut + o, n - i)), n - i);
  }
}

/** out (n) = tanh(inp). */
export function tanh(out: usize, inp: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + (<usize>i << 2), tanhv(v128.load(inp + (<usize>i << 2))));
  if (i < n) storeTail(out + (<usize>i << 2), tanhv(loadTail(inp + (<usize>i << 2), n - i)), n - i);
}

/** dInp (n) = (1 - out²) · dOut, out = tanh(inp). */
export function tanhBackward(dInp: usize, out: usize, dOut: usize, n: i32): void {
  let i = 0;
  for (; i < n; i += 4) {
    const o = <usize>i << 2;
    const count = min(4, n - i);
    const y = loadN(out + o, count);
    const d = loadN(dOut + o, count);
    const r = f32x4.mul(f32x4.sub(splat(1), f32x4.mul(y, y)), d);
    storeN(dInp + o, r, count);
  }
}

/** inp (rows, 2H) = [gate | up]; out (rows, H) = silu(gate) · up. */
export function swiglu(out: usize, inp: usize, rows: i32, hidden: i32): void {
  for (let r = 0; r < rows; r++) {
    const gate = inp + (<usize>(r * 2 * hidden) << 2), up = gate + (<usize>hidden << 2), o = out + (<usize>(r * hidden) << 2);
    for (let j = 0; j < hidden; j += 4) {
      const count = min(4, hidden - j), at = <usize>j << 2;
      const g = loadN(gate + at, count);
      const u = loadN(up + at, count);
      const y = f32x4.mul(f32x4.mul(g, sigmoidv(g)), u);
      storeN(o + at, y, count);
    }
  }
}

/** dInp (rows, 2H), dOut (rows, H): d gate = d·u·s·(1 + g·(1 - s)), d up = d·g·s, s = σ(g). */
export function swigluBackward(dInp: usize, inp: usize, dOut: usize, rows: i32, hidden: i32): void {
  for (let r = 0; r < rows; r++) {
    const gate = inp + (<usize>(r * 2 * hidden) << 2), up = gate + (<usize>hidden << 2);
    const dGate = dInp + (<usize>(r * 2 * hidden) << 2), dUp = dGate + (<usize>hidden << 2), d = dOut + (<usize>(r * hidden) << 2);
    for (let j = 0; j < hidden; j += 4) {
      const count = min(4, hidden - j), at = <usize>j << 2;
      const g = loadN(gate + at, count);
      const u = loadN(up + at, count);
      const dy = loadN(d + at, count);
      const s = sigmoidv(g);
      const dg = f32x4.mul(f32x4.mul(f32x4.mul(dy, u), s), f32x4.add(splat(1), f32x4.mul(g, f32x4.sub(splat(1), s))));
      const du = f32x4.mul(f32x4.mul(dy, g), s);
      storeN(dGate + at, dg, count);
      storeN(dUp + at, du, count);
    }
  }
}

/** x (rows, cols) += bias (cols), per row. */
export function addBias(x: usize, bias: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) add(x + (<usize>(r * cols) << 2), x + (<usize>(r * cols) << 2), bias, cols);
}

/** dBias (cols) (+)= the sum over rows of dOut (rows, cols), rows added in order. */
export function biasBackward(dBias: usize, dOut: usize, rows: i32, cols: i32, accumulate: i32): void {
  if (!accumulate) memory.fill(dBias, 0, <usize>cols << 2);
  for (let r = 0; r < rows; r++) add(dBias, dBias, dOut + (<usize>(r * cols) << 2), cols);
}

/** murmur3's finaliser over a Weyl step: model/counter-hash.ts's counterHash, bit for bit. */
@inline function counterHash(seed: u32, counter: u32): u32 {
  let h = seed ^ (counter * 0x9e3779b9);
  h = (h ^ (h >>> 16)) * 0x85ebca6b;
  h = (h ^ (h >>> 13)) * 0xc2b2ae35;
  return h ^ (h >>> 16);
}

/** out (n) = inp / (1 - p) where hash(seed, counter + i) ≥ p·2³², else 0 (inverted dropout). */
export function dropout(out: usize, inp: usize, n: i32, p: f64, seed: u32, counter: u32): void {
  const threshold = p * 4294967296.0;
  const keep = 1 - p;
  for (let i = 0; i < n; i++) {
    const at = <usize>i << 2;
    const kept = <f64>counterHash(seed, counter + <u32>i) >= threshold;
    store<f32>(out + at, kept ? <f32>(<f64>load<f32>(inp + at) / keep) : 0);
  }
}

// ---- normalisation -------------------------------------------------------------------------

/** The sum of a row's `cols` floats: four lane sums in order, then the lanes, then the tail. */
@inline function rowSum(x: usize, cols: i32): f32 {
  let acc = splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) acc = f32x4.add(acc, v128.load(x + (<usize>c << 2)));
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; c < cols; c++) s += load<f32>(x + (<usize>c << 2));
  return s;
}

/** Σ (x - mu)² over a row, in the order of rowSum. */
@inline function rowSquares(x: usize, cols: i32, mu: f32): f32 {
  const m = splat(mu);
  let acc = splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) {
    const d = f32x4.sub(v128.load(x + (<usize>c << 2)), m);
    acc = f32x4.add(acc, f32x4.mul(d, d));
  }
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; c < cols; c++) {
    const d = load<f32>(x + (<usize>c << 2)) - mu;
    s += d * d;
  }
  return s;
}

/** Σ a·b·x over a row (the backward passes' row dot products), in the order of rowSum. */
@inline function rowDot3(a: usize, b: usize, x: usize, cols: i32): f32 {
  let acc = splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) {
    const o = <usize>c << 2;
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(v128.load(a + o), v128.load(b + o)), v128.load(x + o)));
  }
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; c < cols; c++) {
    const o = <usize>c << 2;
    s += load<f32>(a + o) * load<f32>(b + o) * load<f32>(x + o);
  }
  return s;
}

/**
 * inp, out (rows, cols); weight, bias (cols), bias 0 for none; mean, rstd (rows) saved for
 * backward. out = (inp - mean) · rstd · weight + bias, rstd = 1/√(var + eps).
 */
export function layerNorm(out: usize, mean: usize, rstd: usize, inp: usize, weight: usize, bias: usize, rows: i32, cols: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const x = inp + (<usize>(r * cols) << 2), y = out + (<usize>(r * cols) << 2);
    const mu = rowSum(x, cols) / <f32>cols;
    const rs: f32 = 1 / Mathf.sqrt(rowSquares(x, cols, mu) / <f32>cols + eps);
    store<f32>(mean + (<usize>r << 2), mu);
    store<f32>(rstd + (<usize>r << 2), rs);
    const vm = splat(mu), vr = splat(rs);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const o = <usize>c << 2;
      let v = f32x4.mul(f32x4.mul(f32x4.sub(v128.load(x + o), vm), vr), v128.load(weight + o));
      if (bias) v = f32x4.add(v, v128.load(bias + o));
      v128.store(y + o, v);
    }
    for (; c < cols; c++) {
      const o = <usize>c << 2;
      store<f32>(y + o, (load<f32>(x + o) - mu) * rs * load<f32>(weight + o) + (bias ? load<f32>(bias + o) : 0));
    }
  }
}

/**
 * dInp (rows, cols) written; dWeight, dBias (cols) accumulated (dBias 0 for none).
 * dInp = rstd · (d - mean(d) - x̂ · mean(d · x̂)), d = dOut · weight, x̂ = (inp - mean) · rstd.
 */
export function layerNormBackward(dInp: usize, dWeight: usize, dBias: usize, dOut: usize, inp: usize, weight: usize, mean: usize, rstd: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const x = inp + (<usize>(r * cols) << 2), dy = dOut + (<usize>(r * cols) << 2), dx = dInp + (<usize>(r * cols) << 2);
    const mu = load<f32>(mean + (<usize>r << 2)), rs = load<f32>(rstd + (<usize>r << 2));
    const vm = splat(mu), vr = splat(rs);
    let sumD = splat(0), sumDX = splat(0);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const o = <usize>c << 2;
      const xhat = f32x4.mul(f32x4.sub(v128.load(x + o), vm), vr);
      const g = v128.load(dy + o);
      const d = f32x4.mul(g, v128.load(weight + o));
      sumD = f32x4.add(sumD, d);
      sumDX = f32x4.add(sumDX, f32x4.mul(d, xhat));
      v128.store(dWeight + o, f32x4.add(v128.load(dWeight + o), f32x4.mul(g, xhat)));
      if (dBias) v128.store(dBias + o, f32x4.add(v128.load(dBias + o), g));
    }
    let meanD = f32x4.extract_lane(sumD, 0) + f32x4.extract_lane(sumD, 1) + f32x4.extract_lane(sumD, 2) + f32x4.extract_lane(sumD, 3);
    let meanDX = f32x4.extract_lane(sumDX, 0) + f32x4.extract_lane(sumDX, 1) + f32x4.extract_lane(sumDX, 2) + f32x4.extract_lane(sumDX, 3);
    for (let t = c; t < cols; t++) {
      const o = <usize>t << 2;
      const xhat = (load<f32>(x + o) - mu) * rs;
      const g = load<f32>(dy + o);
      const d = g * load<f32>(weight + o);
      meanD += d;
      meanDX += d * xhat;
      store<f32>(dWeight + o, load<f32>(dWeight + o) + g * xhat);
      if (dBias) store<f32>(dBias + o, load<f32>(dBias + o) + g);
    }
    meanD /= <f32>cols;
    meanDX /= <f32>cols;
    const vmd = splat(meanD), vmdx = splat(meanDX);
    c = 0;
    for (; c + 4 <= cols; c += 4) {
      const o = <usize>c << 2;
      const xhat = f32x4.mul(f32x4.sub(v128.load(x + o), vm), vr);
      const d = f32x4.mul(v128.load(dy + o), v128.load(weight + o));
      v128.store(dx + o, f32x4.mul(vr, f32x4.sub(f32x4.sub(d, vmd), f32x4.mul(xhat, vmdx))));
    }
    for (; c < cols; c++) {
      const o = <usize>c << 2;
      const xhat = (load<f32>(x + o) - mu) * rs;
      const d = load<f32>(dy + o) * load<f32>(weight + o);
      store<f32>(dx + o, rs * (d - meanD - xhat * meanDX));
    }
  }
}

/** out (rows, cols) = inp · rstd · weight, rstd (rows) = 1/√(mean(inp²) + eps). */
export function rmsNorm(out: usize, rstd: usize, inp: usize, weight: usize, rows: i32, cols: i32, eps: f32): void {
  for (let r = 0; r < rows; r++) {
    const x = inp + (<usize>(r * cols) << 2), y = out + (<usize>(r * cols) << 2);
    const rs: f32 = 1 / Mathf.sqrt(rowSquares(x, cols, 0) / <f32>cols + eps);
    store<f32>(rstd + (<usize>r << 2), rs);
    const vr = splat(rs);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const o = <usize>c << 2;
      v128.store(y + o, f32x4.mul(f32x4.mul(v128.load(x + o), vr), v128.load(weight + o)));
    }
    for (; c < cols; c++) {
      const o = <usize>c << 2;
      store<f32>(y + o, load<f32>(x + o) * rs * load<f32>(weight + o));
    }
  }
}

/** dInp written, dWeight accumulated: dInp = rstd · (dOut · weight - x · rstd² · Σ(dOut · weight · x) / cols). */
export function rmsNormBackward(dInp: usize, dWeight: usize, dOut: usize, inp: usize, weight: usize, rstd: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const x = inp + (<usize>(r * cols) << 2), dy = dOut + (<usize>(r * cols) << 2), dx = dInp + (<usize>(r * cols) << 2);
    const rs = load<f32>(rstd + (<usize>r << 2));
    const k = rs * rs * rowDot3(dy, weight, x, cols) / <f32>cols;
    const vr = splat(rs), vk = splat(k);
    let c = 0;
    for (; c + 4 <= cols; c += 4) {
      const o = <usize>c << 2;
      const xv = v128.load(x + o), g = v128.load(dy + o);
      v128.store(dWeight + o, f32x4.add(v128.load(dWeight + o), f32x4.mul(f32x4.mul(g, xv), vr)));
      v128.store(dx + o, f32x4.mul(vr, f32x4.sub(f32x4.mul(g, v128.load(weight + o)), f32x4.mul(xv, vk))));
    }
    for (; c < cols; c++) {
      const o = <usize>c << 2;
      const xv = load<f32>(x + o), g = load<f32>(dy + o);
      store<f32>(dWeight + o, load<f32>(dWeight + o) + g * xv * rs);
      store<f32>(dx + o, rs * (g * load<f32>(weight + o) - xv * k));
    }
  }
}

// ---- rotary embedding, embeddings, loss ----------------------------------------------------

/**
 * RoPE in place on the q and k parts of qkv (B, T, 3, H, D): pairs (i, i + D/2) rotate by
 * the angle whose cos and sin sit in `table` (T, D/2 cosines then T, D/2 sines), negated
 * when `inverse`.
 */
export function rope(qkv: usize, b: i32, t: i32, h: i32, d: i32, table: usize, inverse: i32): void {
  const half = d >> 1;
  const sines = table + (<usize>(t * half) << 2);
  const sign = splat(inverse ? -1 : 1);
  for (let bi = 0; bi < b; bi++)
    for (let pos = 0; pos < t; pos++)
      for (let part = 0; part < 2; part++)
        for (let hi = 0; hi < h; hi++) {
          const at = qkv + (<usize>((((bi * t + pos) * 3 + part) * h + hi) * d) << 2);
          const cosRow = table + (<usize>(pos * half) << 2), sinRow = sines + (<usize>(pos * half) << 2);
          for (let i = 0; i < half; i += 4) {
            const count = min(4, half - i), o = <usize>i << 2, o2 = <usize>(i + half) << 2;
            const x1 = loadN(at + o, count);
            const x2 = loadN(at + o2, count);
            const cs = loadN(cosRow + o, count);
            const sn = f32x4.mul(sign, loadN(sinRow + o, count));
            const y1 = f32x4.sub(f32x4.mul(x1, cs), f32x4.mul(x2, sn));
            const y2 = f32x4.add(f32x4.mul(x1, sn), f32x4.mul(x2, cs));
            storeN(at + o, y1, count);
            storeN(at + o2, y2, count);
          }
        }
}

/**
 * A decoder's RoPE in place: in each of `rows` rows of x (`stride` floats apart), the first
 * `heads` heads of size d turn pairs (i, i + d/2) by the angle of position start + r % seqLen,
 * negated when `inverse`. `table` holds one row of d floats per position: d/2 cosines, then
 * d/2 sines.
 */
export function rotary(x: usize, rows: i32, stride: i32, heads: i32, d: i32, seqLen: i32, start: i32, table: usize, inverse: i32): void {
  const half = d >> 1;
  const sign = splat(inverse ? -1 : 1);
  for (let r = 0; r < rows; r++) {
    const cosRow = table + (<usize>((start + r % seqLen) * d) << 2), sinRow = cosRow + (<usize>half << 2);
    for (let hi = 0; hi < heads; hi++) {
      const at = x + (<usize>(r * stride + hi * d) << 2);
      for (let i = 0; i < half; i += 4) {
        const count = min(4, half - i), o = <usize>i << 2, o2 = <usize>(i + half) << 2;
        const x1 = loadN(at + o, count);
        const x2 = loadN(at + o2, count);
        const cs = loadN(cosRow + o, count);
        const sn = f32x4.mul(sign, loadN(sinRow + o, count));
        storeN(at + o, f32x4.sub(f32x4.mul(x1, cs), f32x4.mul(x2, sn)), count);
        storeN(at + o2, f32x4.add(f32x4.mul(x1, sn), f32x4.mul(x2, cs)), count);
      }
    }
  }
}

/** table (V, dim), ids i32 (n): out[i, :] (+)= table[ids[i], :]. */
export function embedding(out: usize, table: usize, ids: usize, n: i32, dim: i32, accumulate: i32): void {
  for (let i = 0; i < n; i++) {
    const row = table + (<usize>(load<i32>(ids + (<usize>i << 2)) * dim) << 2), o = out + (<usize>(i * dim) << 2);
    if (accumulate) add(o, o, row, dim);
    else memory.copy(o, row, <usize>dim << 2);
  }
}

/** dTable[ids[i], :] += dOut[i, :], i in order: a deterministic scatter-add. */
export function embeddingBackward(dTable: usize, dOut: usize, ids: usize, n: i32, dim: i32): void {
  for (let i = 0; i < n; i++) {
    const row = dTable + (<usize>(load<i32>(ids + (<usize>i << 2)) * dim) << 2);
    add(row, row, dOut + (<usize>(i * dim) << 2), dim);
  }
}

/**
 * logits, dLogits (rows, V); labels i32 (rows), -100 ignored. losses[r] = logsumexp - logit
 * of the label; dLogits = (softmax - onehot) · gradScale. dLogits may alias logits.
 */
export function crossEntropy(losses: usize, dLogits: usize, logits: usize, labels: usize, rows: i32, vocab: i32, gradScale: f32): void {
  for (let r = 0; r < rows; r++) {
    const x = logits + (<usize>(r * vocab) << 2), g = dLogits + (<usize>(r * vocab) << 2);
    const label = load<i32>(labels + (<usize>r << 2));
    if (label == -100) {
      store<f32>(losses + (<usize>r << 2), 0);
      memory.fill(g, 0, <usize>vocab << 2);
      continue;
    }
    let vmax = splat(-Infinity);
    let c = 0;
    for (; c + 4 <= vocab; c += 4) vmax = f32x4.max(vmax, v128.load(x + (<usize>c << 2)));
    let mx = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
    for (; c < vocab; c++) mx = max(mx, load<f32>(x + (<usize>c << 2)));
    const vm = splat(mx);
    let vsum = splat(0);
    c = 0;
    for (; c + 4 <= vocab; c += 4) vsum = f32x4.add(vsum, expv(f32x4.sub(v128.load(x + (<usize>c << 2)), vm)));
    let sum = f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1) + f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3);
    if (c < vocab) {
      const tail = expv(f32x4.sub(loadTail(x + (<usize>c << 2), vocab - c), vm));
      sum += f32x4.extract_lane(tail, 0);
      if (vocab - c > 1) sum += f32x4.extract_lane(tail, 1);
      if (vocab - c > 2) sum += f32x4.extract_lane(tail, 2);
    }
    const lse = mx + Mathf.log(sum);
    store<f32>(losses + (<usize>r << 2), lse - load<f32>(x + (<usize>label << 2)));
    const vl = splat(lse), vs = splat(gradScale);
    c = 0;
    for (; c + 4 <= vocab; c += 4) {
      const o = <usize>c << 2;
      v128.store(g + o, f32x4.mul(expv(f32x4.sub(v128.load(x + o), vl)), vs));
    }
    if (c < vocab) storeTail(g + (<usize>c << 2), f32x4.mul(expv(f32x4.sub(loadTail(x + (<usize>c << 2), vocab - c), vl)), vs), vocab - c);
    const at = g + (<usize>label << 2);
    store<f32>(at, load<f32>(at) - gradScale);
  }
}

// ---- attention as matmuls ------------------------------------------------------------------
// The loader (index.ts) runs attention as batched matmuls over heads laid out one after
// another: these kernels move heads in and out of that layout and do the softmax between.

/**
 * Between the token-major layout (B, T, parts, H, D) and the head-major one (parts, B, H,
 * T, D), where every head of every part is a contiguous (T, D) block: `toHeads` 1 copies
 * token-major src into head-major dst, 0 the other way.
 */
export function moveHeads(dst: usize, src: usize, b: i32, t: i32, parts: i32, h: i32, d: i32, toHeads: i32): void {
  const row = <usize>d << 2;
  for (let bi = 0; bi < b; bi++)
    for (let ti = 0; ti < t; ti++)
      for (let part = 0; part < parts; part++)
        for (let hi = 0; hi < h; hi++) {
          const tokenMajor = <usize>((((bi * t + ti) * parts + part) * h + hi) * d) << 2;
          const headMajor = <usize>((((part * b + bi) * h + hi) * t + ti) * d) << 2;
          if (toHeads) memory.copy(dst + headMajor, src + tokenMajor, row);
          else memory.copy(dst + tokenMajor, src + headMajor, row);
        }
}

/**
 * scores (B, H, T, T) → probabilities in place: each row's softmax over the keys whose
 * mask (B, T) is not 0 and, where the row's own token has a mask m ≠ 0, equals m (the
 * documents of a packed sequence, numbered 1, 2, …; with 0/1 masks, the padding mask);
 * keys left out get exactly 0 (a row with no key at all is all 0).
 */
export function maskedSoftmax(scores: usize, mask: usize, b: i32, h: i32, t: i32): void {
  const minusInf = splat(-Infinity);
  for (let bi = 0; bi < b; bi++) {
    const m = mask + (<usize>(bi * t) << 2);
    for (let r = 0; r < h * t; r++) {
      const s = scores + (<usize>((bi * h * t + r) * t) << 2);
      const document = load<i32>(m + (<usize>(r % t) << 2));
      // Masked keys become -∞ first, so the max and the sum see only real keys.
      let vmax = minusInf;
      for (let j = 0; j < t; j += 4) {
        const count = min(4, t - j), o = <usize>j << 2;
        const keys = loadN(m + o, count);
        const padding = document == 0 ? i32x4.eq(keys, i32x4.splat(0)) : i32x4.ne(keys, i32x4.splat(document));
        const x = v128.bitselect(minusInf, loadN(s + o, count), padding);
        storeN(s + o, x, count);
        vmax = f32x4.max(vmax, count == 4 ? x : v128.bitselect(x, minusInf, tailLanes(count)));
      }
      const mx = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
      if (mx == -Infinity) {
        memory.fill(s, 0, <usize>t << 2);
        continue;
      }
      const vm = splat(mx);
      let vsum = splat(0);
      for (let j = 0; j < t; j += 4) {
        const count = min(4, t - j), o = <usize>j << 2;
        const x = loadN(s + o, count);
        const e = v128.andnot(expv(f32x4.sub(x, vm)), f32x4.eq(x, minusInf));
        storeN(s + o, e, count);
        vsum = f32x4.add(vsum, count == 4 ? e : v128.and(e, tailLanes(count)));
      }
      const inv = splat(1 / (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1) + f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3)));
      for (let j = 0; j < t; j += 4) {
        const count = min(4, t - j), o = <usize>j << 2;
        storeN(s + o, f32x4.mul(loadN(s + o, count), inv), count);
      }
    }
  }
}

/**
 * scores (rows, t) → probabilities in place, causally: row r is the query at position
 * offset + r % qLen and sees keys 0..that position only; later keys get exactly 0.
 */
export function causalSoftmax(scores: usize, rows: i32, t: i32, qLen: i32, offset: i32): void {
  const minusInf = splat(-Infinity);
  for (let r = 0; r < rows; r++) {
    const s = scores + (<usize>(r * t) << 2);
    const seen = min(t, offset + r % qLen + 1);
    let vmax = minusInf;
    for (let j = 0; j < seen; j += 4) {
      const count = min(4, seen - j);
      const x = loadN(s + (<usize>j << 2), count);
      vmax = f32x4.max(vmax, count == 4 ? x : v128.bitselect(x, minusInf, tailLanes(count)));
    }
    const mx = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
    const vm = splat(mx);
    let vsum = splat(0);
    for (let j = 0; j < seen; j += 4) {
      const count = min(4, seen - j), o = <usize>j << 2;
      const e = expv(f32x4.sub(loadN(s + o, count), vm));
      storeN(s + o, e, count);
      vsum = f32x4.add(vsum, count == 4 ? e : v128.and(e, tailLanes(count)));
    }
    const inv = splat(1 / (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1) + f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3)));
    for (let j = 0; j < seen; j += 4) {
      const count = min(4, seen - j), o = <usize>j << 2;
      storeN(s + o, f32x4.mul(loadN(s + o, count), inv), count);
    }
    if (seen < t) memory.fill(s + (<usize>seen << 2), 0, <usize>(t - seen) << 2);
  }
}

/** All ones in the first `count` lanes (1 to 3), zeros after. */
@inline function tailLanes(count: i32): v128 {
  return i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(count));
}

/** rows × T: ds = p · (dp - Σ p·dp) · scale, row by row; ds may alias dp. */
export function softmaxBackward(ds: usize, p: usize, dp: usize, rows: i32, t: i32, scale: f32): void {
  for (let r = 0; r < rows; r++) {
    const pr = p + (<usize>(r * t) << 2), dr = dp + (<usize>(r * t) << 2), out = ds + (<usize>(r * t) << 2);
    let vdot = splat(0);
    for (let j = 0; j < t; j += 4) {
      const count = min(4, t - j), o = <usize>j << 2;
      vdot = f32x4.add(vdot, f32x4.mul(loadN(pr + o, count), loadN(dr + o, count)));
    }
    const rowDot = splat(f32x4.extract_lane(vdot, 0) + f32x4.extract_lane(vdot, 1) + f32x4.extract_lane(vdot, 2) + f32x4.extract_lane(vdot, 3));
    const vs = splat(scale);
    for (let j = 0; j < t; j += 4) {
      const count = min(4, t - j), o = <usize>j << 2;
      storeN(out + o, f32x4.mul(f32x4.mul(loadN(pr + o, count), f32x4.sub(loadN(dr + o, count), rowDot)), vs), count);
    }
  }
}
