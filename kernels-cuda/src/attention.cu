// Fused attention (flash-style: no T×T matrix is ever stored) and rotary position embedding.
//
// Owns: attention forward and backward with a key padding mask (or, where the mask numbers
// the documents of a packed sequence, a block-diagonal one: see visible()), and RoPE. Forward keeps a
// running max and sum per query row and saves only the row's log-sum-exp (B,H,T); backward
// recomputes the probabilities tile by tile from it.
// Never: uses atomics. Backward runs one pass over query rows (dQ) and one over key rows
// (dK, dV), each row owned by one group of threads, so every sum has one fixed order.
//
// Dropout on the probabilities (model/kernels.ts's AttentionDropout) is recomputed from the
// counter ((b*H + h)*T + i)*T + j wherever a probability is used: forward multiplies the
// kept ones by 1/(1-p) into the output but sums the undropped ones into the normaliser;
// backward's delta = dO·O still equals sum_j p_ij dP_ij, since O already holds the dropout.
//
// Work split: a row (a query, or a key) belongs to a group of G = DPAD/16 threads, each
// holding 16 of its dimensions in registers; dot products are finished by a butterfly over
// the group (the same bits in every lane). Keys (or queries) stream through shared memory
// in tiles of kTile rows.
#include "device.cuh"

namespace aze {
namespace {

constexpr int kAttnThreads = 128;
constexpr int kTile = 32;
constexpr int kDimsPerThread = 16;

// Index of dimension dd of row j in a shared tile: each thread's 16 dimensions padded by one
// word, so the G threads of a group read different banks.
template <int DPAD>
__device__ __forceinline__ int tileIndex(int j, int dd) {
  constexpr int G = DPAD / kDimsPerThread;
  return j * G * (kDimsPerThread + 1) + (dd / kDimsPerThread) * (kDimsPerThread + 1) + dd % kDimsPerThread;
}
template <int DPAD>
__host__ __device__ constexpr int tileFloats() {
  return kTile * (DPAD / kDimsPerThread) * (kDimsPerThread + 1);
}

template <int G>
__device__ __forceinline__ float groupSum(float v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Whether a query whose mask value is `query` sees a key whose value is `key`: never a
// padding key (0); a numbered document's query sees its own document only; a padding query
// sees every real key. With 0/1 masks this is the plain key padding mask.
__device__ __forceinline__ bool visible(int query, int key) { return key != 0 && (query == 0 || key == query); }

// Pointer to (token, part, head) of qkv (B,T,3,H,D); token = b*T + position.
__device__ __forceinline__ const float* qkvRow(const float* qkv, int64_t token, int part, int H, int d, int h) {
  return qkv + ((token * 3 + part) * H + h) * (int64_t)d;
}

// Loads rows [first, first+kTile) of one part of qkv (or of a (B,T,H,D) tensor when part < 0)
// into a padded shared tile; rows past T and dimensions past d are zero.
template <int DPAD>
__device__ void loadTile(float* tile, const float* src, int part, int b, int first, int T, int H, int d, int h) {
  for (int idx = threadIdx.x; idx < kTile * DPAD; idx += kAttnThreads) {
    const int j = idx / DPAD, dd = idx % DPAD;
    const int pos = first + j;
    float v = 0.f;
    if (pos < T && dd < d) {
      const int64_t token = (int64_t)b * T + pos;
      v = part >= 0 ? qkvRow(src, token, part, H, d, h)[dd] : src[(token * H + h) * d + dd];
    }
    tile[tileIndex<DPAD>(j, dd)] = v;
  }
}

// out (B,T,H,D), lse (B,H,T). Grid: (ceil(T / rows per block), B*H).
template <int DPAD>
__global__ void __launch_bounds__(kAttnThreads) attentionForwardKernel(float* out, float* lse, const float* qkv, const int32_t* mask, int T, int H, int d, float scale, double threshold, float keepScale, uint32_t seed) {
  constexpr int G = DPAD / kDimsPerThread;
  constexpr int ROWS = kAttnThreads / G;
  __shared__ float Ks[tileFloats<DPAD>()];
  __shared__ float Vs[tileFloats<DPAD>()];
  __shared__ int Ms[kTile];
  const int b = blockIdx.y / H, h = blockIdx.y % H;
  const int g = threadIdx.x % G;
  const int i = blockIdx.x * ROWS + threadIdx.x / G;
  const bool live = i < T;
  const int document = live ? mask[(int64_t)b * T + i] : 0;
  float q[kDimsPerThread], acc[kDimsPerThread];
  {
    const float* qp = live ? qkvRow(qkv, (int64_t)b * T + i, 0, H, d, h) : nullptr;
#pragma unroll
    for (int t = 0; t < kDimsPerThread; t++) {
      const int dd = g * kDimsPerThread + t;
      q[t] = live && dd < d ? qp[dd] : 0.f;
      acc[t] = 0.f;
    }
  }
  float m = -INFINITY, l = 0.f;
  for (int first = 0; first < T; first += kTile) {
    loadTile<DPAD>(Ks, qkv, 1, b, first, T, H, d, h);
    loadTile<DPAD>(Vs, qkv, 2, b, first, T, H, d, h);
    if (threadIdx.x < kTile) Ms[threadIdx.x] = first + threadIdx.x < T ? mask[(int64_t)b * T + first + threadIdx.x] : 0;
    __syncthreads();
    float s[kTile];
    float tileMax = -INFINITY;
#pragma unroll
    for (int j = 0; j < kTile; j++) {
      float partial = 0.f;
#pragma unroll
      for (int t = 0; t < kDimsPerThread; t++) partial += q[t] * Ks[tileIndex<DPAD>(j, g * kDimsPerThread + t)];
      const float full = groupSum<G>(partial) * scale;
      s[j] = visible(document, Ms[j]) ? full : -INFINITY;
      tileMax = fmaxf(tileMax, s[j]);
    }
    const float newMax = fmaxf(m, tileMax);
    if (newMax != -INFINITY) {
      const float correction = expf(m - newMax);  // 0 while m is still -inf
      l *= correction;
#pragma unroll
      for (int t = 0; t < kDimsPerThread; t++) acc[t] *= correction;
#pragma unroll
      for (int j = 0; j < kTile; j++) {
        const float p = expf(s[j] - newMax);  // 0 for masked keys
        l += p;
        const float pv = threshold == 0.0 ? p : dropoutKeeps(seed, ((uint32_t)blockIdx.y * T + i) * T + first + j, threshold) ? p * keepScale : 0.f;
#pragma unroll
        for (int t = 0; t < kDimsPerThread; t++) acc[t] += pv * Vs[tileIndex<DPAD>(j, g * kDimsPerThread + t)];
      }
      m = newMax;
    }
    __syncthreads();
  }
  if (!live) return;
  float* op = out + (((int64_t)b * T + i) * H + h) * d;
  // A row whose keys are all padding attends to nothing: output 0, and an infinite
  // log-sum-exp tells backward that every probability of the row is 0.
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int t = 0; t < kDimsPerThread; t++) {
    const int dd = g * kDimsPerThread + t;
    if (dd < d) op[dd] = acc[t] * inv;
  }
  if (g == 0) lse[((int64_t)b * H + h) * T + i] = l > 0.f ? m + logf(l) : INFINITY;
}

// delta[b,h,i] = dOut[b,i,h,:] · out[b,i,h,:] (the row sums of P ∘ dP).
__global__ void attentionDeltaKernel(float* delta, const float* dOut, const float* out, int B, int T, int H, int d) {
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // over (b, h, i)
  if (idx >= (int64_t)B * H * T) return;
  const int i = idx % T;
  const int64_t bh = idx / T;
  const int h = bh % H, b = bh / H;
  const int64_t at = (((int64_t)b * T + i) * H + h) * d;
  float s = 0.f;
  for (int dd = 0; dd < d; dd++) s += dOut[at + dd] * out[at + dd];
  delta[idx] = s;
}

// dQ rows: dq_i = scale * sum_j p_ij (dp_ij - delta_i) k_j. Grid as forward.
template <int DPAD>
__global__ void __launch_bounds__(kAttnThreads) attentionBackwardQueryKernel(float* dQkv, const float* dOut, const float* qkv, const float* lse, const float* delta, const int32_t* mask, int T, int H, int d, float scale, double threshold, float keepScale, uint32_t seed) {
  constexpr int G = DPAD / kDimsPerThread;
  constexpr int ROWS = kAttnThreads / G;
  __shared__ float Ks[tileFloats<DPAD>()];
  __shared__ float Vs[tileFloats<DPAD>()];
  __shared__ int Ms[kTile];
  const int b = blockIdx.y / H, h = blockIdx.y % H;
  const int g = threadIdx.x % G;
  const int i = blockIdx.x * ROWS + threadIdx.x / G;
  const bool live = i < T;
  float q[kDimsPerThread], dO[kDimsPerThread], dq[kDimsPerThread];
  const int64_t token = (int64_t)b * T + i;
  const int document = live ? mask[token] : 0;
#pragma unroll
  for (int t = 0; t < kDimsPerThread; t++) {
    const int dd = g * kDimsPerThread + t;
    q[t] = live && dd < d ? qkvRow(qkv, token, 0, H, d, h)[dd] : 0.f;
    dO[t] = live && dd < d ? dOut[(token * H + h) * d + dd] : 0.f;
    dq[t] = 0.f;
  }
  const float rowLse = live ? lse[((int64_t)b * H + h) * T + i] : INFINITY;
  const float rowDelta = live ? delta[((int64_t)b * H + h) * T + i] : 0.f;
  for (int first = 0; first < T; first += kTile) {
    loadTile<DPAD>(Ks, qkv, 1, b, first, T, H, d, h);
    loadTile<DPAD>(Vs, qkv, 2, b, first, T, H, d, h);
    if (threadIdx.x < kTile) Ms[threadIdx.x] = first + threadIdx.x < T ? mask[(int64_t)b * T + first + threadIdx.x] : 0;
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < kTile; j++) {
      float ps = 0.f, pd = 0.f;
#pragma unroll
      for (int t = 0; t < kDimsPerThread; t++) {
        const int at = tileIndex<DPAD>(j, g * kDimsPerThread + t);
        ps += q[t] * Ks[at];
        pd += dO[t] * Vs[at];
      }
      const float sc = groupSum<G>(ps) * scale;
      const float dp = groupSum<G>(pd);
      const float p = visible(document, Ms[j]) ? expf(sc - rowLse) : 0.f;
      const float factor = threshold == 0.0 ? 1.f : dropoutKeeps(seed, ((uint32_t)blockIdx.y * T + i) * T + first + j, threshold) ? keepScale : 0.f;
      const float ds = p * (dp * factor - rowDelta);
#pragma unroll
      for (int t = 0; t < kDimsPerThread; t++) dq[t] += ds * Ks[tileIndex<DPAD>(j, g * kDimsPerThread + t)];
    }
    __syncthreads();
  }
  if (!live) return;
  float* dqp = dQkv + ((token * 3 + 0) * H + h) * (int64_t)d;
#pragma unroll
  for (int t = 0; t < kDimsPerThread; t++) {
    const int dd = g * kDimsPerThread + t;
    if (dd < d) dqp[dd] = dq[t] * scale;
  }
}

// dK, dV rows: dv_j = sum_i p_ij dO_i; dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i.
template <int DPAD>
__global__ void __launch_bounds__(kAttnThreads) attentionBackwardKeyKernel(float* dQkv, const float* dOut, const float* qkv, const float* lse, const float* delta, const int32_t* mask, int T, int H, int d, float scale, double threshold, float keepScale, uint32_t seed) {
  constexpr int G = DPAD / kDimsPerThread;
  constexpr int ROWS = kAttnThreads / G;
  __shared__ float Qs[tileFloats<DPAD>()];
  __shared__ float dOs[tileFloats<DPAD>()];
  __shared__ float Ls[kTile];
  __shared__ float Ds[kTile];
  __shared__ int Qm[kTile];
  const int b = blockIdx.y / H, h = blockIdx.y % H;
  const int g = threadIdx.x % G;
  const int j = blockIdx.x * ROWS + threadIdx.x / G;
  const bool live = j < T;
  const int64_t token = (int64_t)b * T + j;
  const int key = live ? mask[token] : 0;
  float k[kDimsPerThread], v[kDimsPerThread], dk[kDimsPerThread], dv[kDimsPerThread];
#pragma unroll
  for (int t = 0; t < kDimsPerThread; t++) {
    const int dd = g * kDimsPerThread + t;
    k[t] = live && dd < d ? qkvRow(qkv, token, 1, H, d, h)[dd] : 0.f;
    v[t] = live && dd < d ? qkvRow(qkv, token, 2, H, d, h)[dd] : 0.f;
    dk[t] = 0.f;
    dv[t] = 0.f;
  }
  const int64_t rowBase = ((int64_t)b * H + h) * T;
  for (int first = 0; first < T; first += kTile) {
    loadTile<DPAD>(Qs, qkv, 0, b, first, T, H, d, h);
    loadTile<DPAD>(dOs, dOut, -1, b, first, T, H, d, h);
    if (threadIdx.x < kTile) {
      const int i = first + threadIdx.x;
      Ls[threadIdx.x] = i < T ? lse[rowBase + i] : INFINITY;  // rows past T: probability 0
      Ds[threadIdx.x] = i < T ? delta[rowBase + i] : 0.f;
      Qm[threadIdx.x] = i < T ? mask[(int64_t)b * T + i] : 0;
    }
    __syncthreads();
#pragma unroll 4
    for (int i = 0; i < kTile; i++) {
      float ps = 0.f, pd = 0.f;
#pragma unroll
      for (int t = 0; t < kDimsPerThread; t++) {
        const int at = tileIndex<DPAD>(i, g * kDimsPerThread + t);
        ps += Qs[at] * k[t];
        pd += dOs[at] * v[t];
      }
      const float sc = groupSum<G>(ps) * scale;
      const float dp = groupSum<G>(pd);
      const float p = visible(Qm[i], key) ? expf(sc - Ls[i]) : 0.f;
      const float factor = threshold == 0.0 ? 1.f : dropoutKeeps(seed, ((uint32_t)blockIdx.y * T + first + i) * T + j, threshold) ? keepScale : 0.f;
      const float ds = p * (dp * factor - Ds[i]);
      const float pv = p * factor;
#pragma unroll
      for (int t = 0; t < kDimsPerThread; t++) {
        const int at = tileIndex<DPAD>(i, g * kDimsPerThread + t);
        dv[t] += pv * dOs[at];
        dk[t] += ds * Qs[at];
      }
    }
    __syncthreads();
  }
  if (!live) return;
  float* dkp = dQkv + ((token * 3 + 1) * H + h) * (int64_t)d;
  float* dvp = dQkv + ((token * 3 + 2) * H + h) * (int64_t)d;
#pragma unroll
  for (int t = 0; t < kDimsPerThread; t++) {
    const int dd = g * kDimsPerThread + t;
    if (dd < d) {
      dkp[dd] = dk[t] * scale;
      dvp[dd] = dv[t];
    }
  }
}

// table is (T, D/2, 2): cos and sin of pos * base^(-2i/D), computed in double.
__global__ void ropeTableKernel(float* table, int T, int d, double base, bool inverse) {
  const int half = d / 2;
  const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (idx >= (int64_t)T * half) return;
  const int pos = idx / half, i = idx % half;
  const double angle = (inverse ? -pos : pos) * pow(base, (-2.0 * i) / d);
  table[2 * idx] = (float)cos(angle);
  table[2 * idx + 1] = (float)sin(angle);
}
// Pairs (i, i + D/2) of the q and k parts of every head rotate; v is untouched.
__global__ void ropeKernel(float* qkv, const float* table, int B, int T, int H, int d) {
  const int half = d / 2;
  const int64_t total = (int64_t)B * T * 2 * H * half;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total; idx += (int64_t)gridDim.x * blockDim.x) {
    const int i = idx % half;
    int64_t rest = idx / half;
    const int h = rest % H;
    rest /= H;
    const int part = rest % 2;
    const int64_t token = rest / 2;
    const int pos = token % T;
    float* x = qkv + ((token * 3 + part) * H + h) * (int64_t)d;
    const float c = table[2 * ((int64_t)pos * half + i)], s = table[2 * ((int64_t)pos * half + i) + 1];
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c - x2 * s;
    x[i + half] = x1 * s + x2 * c;
  }
}

// The dropout arguments of the kernels: threshold = p * 2^32 and keepScale = 1/(1-p); a
// keepScale of exactly 1 (p = 0) skips the hash.
struct Drop {
  double threshold;
  float keepScale;
  uint32_t seed;
};
inline Drop dropFor(double p, uint32_t seed) { return p > 0 ? Drop{p * 4294967296.0, (float)(1.0 / (1.0 - p)), seed} : Drop{0.0, 1.f, seed}; }

template <int DPAD>
cudaError_t launchForward(float* out, float* lse, const float* qkv, const int32_t* mask, int b, int t, int h, int d, float scale, Drop dr, cudaStream_t s) {
  constexpr int ROWS = kAttnThreads / (DPAD / kDimsPerThread);
  return LAUNCH(attentionForwardKernel<DPAD>, dim3((t + ROWS - 1) / ROWS, b * h), kAttnThreads, s, out, lse, qkv, mask, t, h, d, scale, dr.threshold, dr.keepScale, dr.seed);
}
template <int DPAD>
cudaError_t launchBackward(float* dQkv, const float* dOut, const float* qkv, const float* lse, const float* delta, const int32_t* mask, int b, int t, int h, int d, float scale, Drop dr, cudaStream_t s) {
  constexpr int ROWS = kAttnThreads / (DPAD / kDimsPerThread);
  const dim3 grid((t + ROWS - 1) / ROWS, b * h);
  if (cudaError_t e = LAUNCH(attentionBackwardQueryKernel<DPAD>, grid, kAttnThreads, s, dQkv, dOut, qkv, lse, delta, mask, t, h, d, scale, dr.threshold, dr.keepScale, dr.seed)) return e;
  return LAUNCH(attentionBackwardKeyKernel<DPAD>, grid, kAttnThreads, s, dQkv, dOut, qkv, lse, delta, mask, t, h, d, scale, dr.threshold, dr.keepScale, dr.seed);
}

}  // namespace

cudaError_t rope(float* qkv, int b, int t, int h, int d, double base, bool inverse, float* table, cudaStream_t s) {
  const int64_t pairs = (int64_t)t * (d / 2);
  if (pairs <= 0 || b <= 0 || h <= 0) return cudaSuccess;
  if (cudaError_t e = LAUNCH(ropeTableKernel, (unsigned)((pairs + 255) / 256), 256, s, table, t, d, base, inverse)) return e;
  const int64_t total = (int64_t)b * 2 * h * pairs;
  int64_t blocks = (total + 255) / 256;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  return LAUNCH(ropeKernel, (unsigned)blocks, 256, s, qkv, table, b, t, h, d);
}

cudaError_t attention(float* out, float* lse, const float* qkv, const int32_t* mask, int b, int t, int h, int d, float scale, double dropP, uint32_t seed, cudaStream_t s) {
  if (b <= 0 || t <= 0 || h <= 0 || d <= 0) return cudaSuccess;
  const Drop dr = dropFor(dropP, seed);
  if (d <= 16) return launchForward<16>(out, lse, qkv, mask, b, t, h, d, scale, dr, s);
  if (d <= 32) return launchForward<32>(out, lse, qkv, mask, b, t, h, d, scale, dr, s);
  if (d <= 64) return launchForward<64>(out, lse, qkv, mask, b, t, h, d, scale, dr, s);
  if (d <= kMaxHeadDim) return launchForward<128>(out, lse, qkv, mask, b, t, h, d, scale, dr, s);
  return cudaErrorInvalidValue;
}

cudaError_t attentionBackward(float* dQkv, const float* dOut, const float* qkv, const float* out, const float* lse, const int32_t* mask, int b, int t, int h, int d, float scale, double dropP, uint32_t seed, float* delta, cudaStream_t s) {
  if (b <= 0 || t <= 0 || h <= 0 || d <= 0) return cudaSuccess;
  if (d > kMaxHeadDim) return cudaErrorInvalidValue;
  const Drop dr = dropFor(dropP, seed);
  const int64_t rows = (int64_t)b * h * t;
  if (cudaError_t e = LAUNCH(attentionDeltaKernel, (unsigned)((rows + 255) / 256), 256, s, delta, dOut, out, b, t, h, d)) return e;
  if (d <= 16) return launchBackward<16>(dQkv, dOut, qkv, lse, delta, mask, b, t, h, d, scale, dr, s);
  if (d <= 32) return launchBackward<32>(dQkv, dOut, qkv, lse, delta, mask, b, t, h, d, scale, dr, s);
  if (d <= 64) return launchBackward<64>(dQkv, dOut, qkv, lse, delta, mask, b, t, h, d, scale, dr, s);
  return launchBackward<128>(dQkv, dOut, qkv, lse, delta, mask, b, t, h, d, scale, dr, s);
}

}  // namespace aze
