// Elementwise kernels, row reductions (norms, cross-entropy), embeddings and AdamW.
//
// Owns: every kernel of the Kernels interface except attention, RoPE and the matmul.
// Never: reduces with atomics or in an order that depends on scheduling. Rows are reduced
// by one warp or one block in a fixed tree; columns (bias and norm-weight gradients) by
// fixed parts of kColumnPartRows rows, then the parts in order.
#include "device.cuh"

namespace aze {
namespace {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never more than n needs.
unsigned blocksFor(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// Sum over a block of kThreads in a fixed tree; every thread gets the result.
__device__ float blockSum(float v, float* shared) {
  v = warpSum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < kThreads / 32 ? shared[lane] : 0.f;
  return warpSum(total);
}
__device__ float blockMax(float v, float* shared) {
  v = warpMax(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < kThreads / 32 ? shared[lane] : -INFINITY;
  return warpMax(total);
}

// ---- elementwise ---------------------------------------------------------------------

__global__ void fillKernel(float* x, int64_t n, float value) { GRID_STRIDE(i, n) x[i] = value; }
__global__ void scaleKernel(float* x, int64_t n, float k) { GRID_STRIDE(i, n) x[i] *= k; }
__global__ void addKernel(float* out, const float* a, const float* b, int64_t n) { GRID_STRIDE(i, n) out[i] = a[i] + b[i]; }
// Written as y + alpha*x with the multiply rounded first (no fused multiply-add), as the
// reference computes it, so a slice and the whole vector agree and the CPU agrees closely.
__global__ void axpyKernel(float* y, const float* x, int64_t n, float alpha) { GRID_STRIDE(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i])); }

// x is (n), out is (chunks): one block per chunk, doubles, a fixed tree.
__global__ void sumSquaresKernel(double* out, const float* x, int64_t n, int64_t chunk) {
  __shared__ double part[kThreads];
  const int64_t start = blockIdx.x * chunk;
  const int64_t end = start + chunk < n ? start + chunk : n;
  double s = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += kThreads) {
    const double v = x[i];
    s += v * v;
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// ---- bias and activations ---------------------------------------------------------------

__global__ void addBiasKernel(float* x, const float* bias, int64_t n, int cols) { GRID_STRIDE(i, n) x[i] += bias[i % cols]; }

// partial[p, c] = sum of rows [p*R, (p+1)*R) of column c, rows in order.
__global__ void columnPartsKernel(float* partial, const float* x, int64_t rows, int cols) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = (int64_t)blockIdx.y * kColumnPartRows;
  const int64_t r1 = r0 + kColumnPartRows < rows ? r0 + kColumnPartRows : rows;
  float s = 0.f;
  for (int64_t r = r0; r < r1; r++) s += x[r * cols + c];
  partial[(int64_t)blockIdx.y * cols + c] = s;
}
// out[c] (+)= sum over parts of partial[p, c], parts in order.
__global__ void columnFinishKernel(float* out, const float* partial, int64_t parts, int cols, bool accumulate) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float s = 0.f;
  for (int64_t p = 0; p < parts; p++) s += partial[p * cols + c];
  out[c] = accumulate ? out[c] + s : s;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ __forceinline__ float geluValue(float x, int erf) {
  if (erf) return 0.5f * x * (1.f + erff(x * kInvSqrt2));
  return 0.5f * x * (1.f + tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
}
__device__ __forceinline__ float geluGrad(float x, int erf) {
  if (erf) return 0.5f * (1.f + erff(x * kInvSqrt2)) + x * expf(-0.5f * x * x) * kInvSqrt2Pi;
  const float t = tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
}
__global__ void geluKernel(float* out, const float* inp, int64_t n, int erf) { GRID_STRIDE(i, n) out[i] = geluValue(inp[i], erf); }
__global__ void geluBackwardKernel(float* dInp, const float* inp, const float* dOut, int64_t n, int erf) { GRID_STRIDE(i, n) dInp[i] = geluGrad(inp[i], erf) * dOut[i]; }

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
__global__ void swigluKernel(float* out, const float* inp, int64_t rows, int hidden) {
  GRID_STRIDE(i, rows * hidden) {
    const int64_t r = i / hidden, j = i % hidden;
    const float g = inp[r * 2 * hidden + j], u = inp[r * 2 * hidden + hidden + j];
    out[i] = g * sigmoid(g) * u;
  }
}
__global__ void swigluBackwardKernel(float* dInp, const float* inp, const float* dOut, int64_t rows, int hidden) {
  GRID_STRIDE(i, rows * hidden) {
    const int64_t r = i / hidden, j = i % hidden;
    const float g = inp[r * 2 * hidden + j], u = inp[r * 2 * hidden + hidden + j];
    const float sg = sigmoid(g), d = dOut[i];
    dInp[r * 2 * hidden + j] = d * u * sg * (1.f + g * (1.f - sg));
    dInp[r * 2 * hidden + hidden + j] = d * g * sg;
  }
}
__global__ void tanhKernel(float* out, const float* inp, int64_t n) { GRID_STRIDE(i, n) out[i] = tanhf(inp[i]); }
__global__ void tanhBackwardKernel(float* dInp, const float* out, const float* dOut, int64_t n) {
  GRID_STRIDE(i, n) {
    const float y = out[i];
    dInp[i] = (1.f - y * y) * dOut[i];
  }
}

// The division is done in double and rounded once, as the reference does.
__global__ void dropoutKernel(float* out, const float* inp, int64_t n, double p, double threshold, uint32_t seed, uint32_t counter) {
  GRID_STRIDE(i, n) {
    const float x = inp[i];
    if (p == 0.0) out[i] = x;
    else out[i] = dropoutKeeps(seed, counter + (uint32_t)i, threshold) ? (float)((double)x / (1.0 - p)) : 0.f;
  }
}

// ---- normalisation: one warp per row -------------------------------------------------------

constexpr int kRowsPerBlock = kThreads / 32;

__global__ void layerNormKernel(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t rows, int cols, float eps) {
  const int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* x = inp + r * cols;
  float s = 0.f;
  for (int c = lane; c < cols; c += 32) s += x[c];
  const float mu = warpSum(s) / cols;
  float v = 0.f;
  for (int c = lane; c < cols; c += 32) {
    const float d = x[c] - mu;
    v += d * d;
  }
  const float rs = 1.f / sqrtf(warpSum(v) / cols + eps);
  if (lane == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
  float* y = out + r * cols;
  for (int c = lane; c < cols; c += 32) y[c] = (x[c] - mu) * rs * weight[c] + (bias ? bias[c] : 0.f);
}

// dInp = rstd * (dOut*w - mean(dOut*w) - xhat * mean(dOut*w*xhat)); dInp may alias dOut.
__global__ void layerNormBackwardKernel(float* dInp, const float* dOut, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t rows, int cols) {
  const int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float mu = mean[r], rs = rstd[r];
  const float* x = inp + r * cols;
  const float* dy = dOut + r * cols;
  float sd = 0.f, sdx = 0.f;
  for (int c = lane; c < cols; c += 32) {
    const float d = dy[c] * weight[c];
    sd += d;
    sdx += d * (x[c] - mu) * rs;
  }
  const float meanD = warpSum(sd) / cols, meanDX = warpSum(sdx) / cols;
  float* dx = dInp + r * cols;
  for (int c = lane; c < cols; c += 32) {
    const float xhat = (x[c] - mu) * rs;
    dx[c] = rs * (dy[c] * weight[c] - meanD - xhat * meanDX);
  }
}
// partial[p, c] = sum over the part's rows of dOut*xhat; partial[parts + p, c] = of dOut.
__global__ void layerNormWeightPartsKernel(float* partial, const float* dOut, const float* inp, const float* mean, const float* rstd, int64_t rows, int cols, int64_t parts) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = (int64_t)blockIdx.y * kColumnPartRows;
  const int64_t r1 = r0 + kColumnPartRows < rows ? r0 + kColumnPartRows : rows;
  float sw = 0.f, sb = 0.f;
  for (int64_t r = r0; r < r1; r++) {
    const float d = dOut[r * cols + c];
    sw += d * (inp[r * cols + c] - mean[r]) * rstd[r];
    sb += d;
  }
  partial[(int64_t)blockIdx.y * cols + c] = sw;
  partial[(parts + blockIdx.y) * cols + c] = sb;
}

__global__ void rmsNormKernel(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int cols, float eps) {
  const int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* x = inp + r * cols;
  float s = 0.f;
  for (int c = lane; c < cols; c += 32) s += x[c] * x[c];
  const float rs = 1.f / sqrtf(warpSum(s) / cols + eps);
  if (lane == 0) rstd[r] = rs;
  float* y = out + r * cols;
  for (int c = lane; c < cols; c += 32) y[c] = x[c] * rs * weight[c];
}
// dInp = rstd * (dOut*w - x * rstd^2 * mean(dOut*w*x)); dInp may alias dOut.
__global__ void rmsNormBackwardKernel(float* dInp, const float* dOut, const float* inp, const float* weight, const float* rstd, int64_t rows, int cols) {
  const int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float rs = rstd[r];
  const float* x = inp + r * cols;
  const float* dy = dOut + r * cols;
  float dot = 0.f;
  for (int c = lane; c < cols; c += 32) dot += dy[c] * weight[c] * x[c];
  const float k = rs * rs * warpSum(dot) / cols;
  float* dx = dInp + r * cols;
  for (int c = lane; c < cols; c += 32) dx[c] = rs * (dy[c] * weight[c] - x[c] * k);
}
__global__ void rmsNormWeightPartsKernel(float* partial, const float* dOut, const float* inp, const float* rstd, int64_t rows, int cols) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = (int64_t)blockIdx.y * kColumnPartRows;
  const int64_t r1 = r0 + kColumnPartRows < rows ? r0 + kColumnPartRows : rows;
  float sw = 0.f;
  for (int64_t r = r0; r < r1; r++) sw += dOut[r * cols + c] * inp[r * cols + c] * rstd[r];
  partial[(int64_t)blockIdx.y * cols + c] = sw;
}

// ---- embeddings --------------------------------------------------------------------------

__global__ void embeddingKernel(float* out, const float* table, const int32_t* ids, int64_t n, int dim, bool accumulate) {
  GRID_STRIDE(i, n * dim) {
    const int64_t row = i / dim, c = i % dim;
    const float v = table[(int64_t)ids[row] * dim + c];
    out[i] = accumulate ? out[i] + v : v;
  }
}
// keys[i] = (id << 32) | i; padding past n sorts last.
__global__ void embeddingKeysKernel(uint64_t* keys, const int32_t* ids, int64_t n, int64_t size) {
  GRID_STRIDE(i, size) keys[i] = i < n ? ((uint64_t)(uint32_t)ids[i] << 32) | (uint64_t)i : ~0ull;
}
// One compare-exchange step (j, k) of a bitonic sort over `size` keys (a power of two).
__global__ void bitonicStepKernel(uint64_t* keys, int64_t size, int64_t j, int64_t k) {
  GRID_STRIDE(t, size / 2) {
    const int64_t i = 2 * t - (t & (j - 1));
    const int64_t partner = i + j;
    const bool ascending = (i & k) == 0;
    const uint64_t a = keys[i], b = keys[partner];
    if ((a > b) == ascending) {
      keys[i] = b;
      keys[partner] = a;
    }
  }
}
// Keys per shared-memory tile of the sort (8 KiB), sorted by kSortTile/2 threads.
constexpr int kSortTile = 1024;
// Every step (j from j0 down to 1) of stage k that stays inside a tile of 2*blockDim keys.
__global__ void bitonicTileKernel(uint64_t* keys, int64_t j0, int64_t k) {
  __shared__ uint64_t tile[kSortTile];
  const int64_t span = 2 * (int64_t)blockDim.x;
  const int64_t base = blockIdx.x * span;
  tile[threadIdx.x] = keys[base + threadIdx.x];
  tile[threadIdx.x + blockDim.x] = keys[base + threadIdx.x + blockDim.x];
  __syncthreads();
  for (int64_t j = j0; j > 0; j >>= 1) {
    const int64_t t = threadIdx.x;
    const int64_t i = 2 * t - (t & (j - 1));
    const bool ascending = ((base + i) & k) == 0;
    const uint64_t a = tile[i], b = tile[i + j];
    if ((a > b) == ascending) {
      tile[i] = b;
      tile[i + j] = a;
    }
    __syncthreads();
  }
  keys[base + threadIdx.x] = tile[threadIdx.x];
  keys[base + threadIdx.x + blockDim.x] = tile[threadIdx.x + blockDim.x];
}
// One block per sorted position; the block at the first key of a vocabulary row adds the
// row's gradients in the order of their token index: the same sums as a sequential loop.
__global__ void embeddingSegmentsKernel(float* dTable, const float* dOut, const uint64_t* keys, int64_t n, int dim) {
  const int64_t s = blockIdx.x;
  const uint32_t id = (uint32_t)(keys[s] >> 32);
  if (s > 0 && (uint32_t)(keys[s - 1] >> 32) == id) return;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) {
    float acc = dTable[(int64_t)id * dim + c];
    for (int64_t r = s; r < n && (uint32_t)(keys[r] >> 32) == id; r++) acc += dOut[(int64_t)(uint32_t)keys[r] * dim + c];
    dTable[(int64_t)id * dim + c] = acc;
  }
}

// ---- cross-entropy: one block per row ------------------------------------------------------

__global__ void crossEntropyKernel(float* losses, float* dLogits, const float* logits, const int32_t* labels, int vocab, float gradScale) {
  __shared__ float shared[kThreads / 32];
  const int64_t r = blockIdx.x;
  const int label = labels[r];
  const float* x = logits + r * vocab;
  float* dx = dLogits + r * vocab;
  if (label == -100) {
    for (int c = threadIdx.x; c < vocab; c += kThreads) dx[c] = 0.f;
    if (threadIdx.x == 0) losses[r] = 0.f;
    return;
  }
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < vocab; c += kThreads) mx = fmaxf(mx, x[c]);
  mx = blockMax(mx, shared);
  float s = 0.f;
  for (int c = threadIdx.x; c < vocab; c += kThreads) s += expf(x[c] - mx);
  const float lse = mx + logf(blockSum(s, shared));
  const float target = x[label];
  __syncthreads();  // every thread has read x[label] before any writes dLogits (they may alias)
  if (threadIdx.x == 0) losses[r] = lse - target;
  for (int c = threadIdx.x; c < vocab; c += kThreads) dx[c] = (expf(x[c] - lse) - (c == label ? 1.f : 0.f)) * gradScale;
}

// ---- AdamW --------------------------------------------------------------------------------

// The same operations for every element, so a slice's update equals the whole vector's.
__global__ void adamwKernel(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weightDecay, float c1, float c2) {
  GRID_STRIDE(i, n) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = param[i];
    param[i] = p - lr * (mi / c1 / (sqrtf(vi / c2) + eps) + weightDecay * p);
  }
}

}  // namespace

// ---- launches ------------------------------------------------------------------------------

cudaError_t fill(float* x, int64_t n, float value, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(fillKernel, blocksFor(n), kThreads, s, x, n, value);
}
cudaError_t scale(float* x, int64_t n, float k, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(scaleKernel, blocksFor(n), kThreads, s, x, n, k);
}
cudaError_t add(float* out, const float* a, const float* b, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(addKernel, blocksFor(n), kThreads, s, out, a, b, n);
}
cudaError_t axpy(float* y, const float* x, int64_t n, float alpha, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(axpyKernel, blocksFor(n), kThreads, s, y, x, n, alpha);
}
cudaError_t sumSquares(double* out, const float* x, int64_t n, int64_t chunk, cudaStream_t s) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks <= 0) return cudaSuccess;
  return LAUNCH(sumSquaresKernel, (unsigned)chunks, kThreads, s, out, x, n, chunk);
}

cudaError_t addBias(float* x, const float* bias, int64_t rows, int cols, cudaStream_t s) {
  if (rows * cols <= 0) return cudaSuccess;
  return LAUNCH(addBiasKernel, blocksFor(rows * cols), kThreads, s, x, bias, rows * cols, cols);
}
cudaError_t biasBackward(float* dBias, const float* dOut, int64_t rows, int cols, bool accumulate, float* partial, cudaStream_t s) {
  if (cols <= 0) return cudaSuccess;
  const int64_t parts = columnParts(rows);
  const unsigned colBlocks = (cols + kThreads - 1) / kThreads;
  if (parts > 0) {
    if (cudaError_t e = LAUNCH(columnPartsKernel, dim3(colBlocks, (unsigned)parts), kThreads, s, partial, dOut, rows, cols)) return e;
  }
  return LAUNCH(columnFinishKernel, colBlocks, kThreads, s, dBias, partial, parts, cols, accumulate);
}
cudaError_t gelu(float* out, const float* inp, int64_t n, int erf, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(geluKernel, blocksFor(n), kThreads, s, out, inp, n, erf);
}
cudaError_t geluBackward(float* dInp, const float* inp, const float* dOut, int64_t n, int erf, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(geluBackwardKernel, blocksFor(n), kThreads, s, dInp, inp, dOut, n, erf);
}
cudaError_t swiglu(float* out, const float* inp, int64_t rows, int hidden, cudaStream_t s) {
  if (rows * hidden <= 0) return cudaSuccess;
  return LAUNCH(swigluKernel, blocksFor(rows * hidden), kThreads, s, out, inp, rows, hidden);
}
cudaError_t swigluBackward(float* dInp, const float* inp, const float* dOut, int64_t rows, int hidden, cudaStream_t s) {
  if (rows * hidden <= 0) return cudaSuccess;
  return LAUNCH(swigluBackwardKernel, blocksFor(rows * hidden), kThreads, s, dInp, inp, dOut, rows, hidden);
}
cudaError_t tanhForward(float* out, const float* inp, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(tanhKernel, blocksFor(n), kThreads, s, out, inp, n);
}
cudaError_t tanhBackward(float* dInp, const float* out, const float* dOut, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(tanhBackwardKernel, blocksFor(n), kThreads, s, dInp, out, dOut, n);
}
cudaError_t dropout(float* out, const float* inp, int64_t n, double p, uint32_t seed, uint32_t counter, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(dropoutKernel, blocksFor(n), kThreads, s, out, inp, n, p, p * 4294967296.0, seed, counter);
}

cudaError_t layerNorm(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t rows, int cols, float eps, cudaStream_t s) {
  if (rows <= 0) return cudaSuccess;
  return LAUNCH(layerNormKernel, (unsigned)((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, s, out, mean, rstd, inp, weight, bias, rows, cols, eps);
}
cudaError_t layerNormBackward(float* dInp, float* dWeight, float* dBias, const float* dOut, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t rows, int cols, float* partial, cudaStream_t s) {
  if (rows <= 0) return cudaSuccess;
  const int64_t parts = columnParts(rows);
  const unsigned colBlocks = (cols + kThreads - 1) / kThreads;
  // The weight gradients read dOut first: dInp may alias it.
  if (cudaError_t e = LAUNCH(layerNormWeightPartsKernel, dim3(colBlocks, (unsigned)parts), kThreads, s, partial, dOut, inp, mean, rstd, rows, cols, parts)) return e;
  if (cudaError_t e = LAUNCH(columnFinishKernel, colBlocks, kThreads, s, dWeight, partial, parts, cols, true)) return e;
  if (dBias) {
    if (cudaError_t e = LAUNCH(columnFinishKernel, colBlocks, kThreads, s, dBias, partial + parts * cols, parts, cols, true)) return e;
  }
  return LAUNCH(layerNormBackwardKernel, (unsigned)((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, s, dInp, dOut, inp, weight, mean, rstd, rows, cols);
}
cudaError_t rmsNorm(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int cols, float eps, cudaStream_t s) {
  if (rows <= 0) return cudaSuccess;
  return LAUNCH(rmsNormKernel, (unsigned)((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, s, out, rstd, inp, weight, rows, cols, eps);
}
cudaError_t rmsNormBackward(float* dInp, float* dWeight, const float* dOut, const float* inp, const float* weight, const float* rstd, int64_t rows, int cols, float* partial, cudaStream_t s) {
  if (rows <= 0) return cudaSuccess;
  const int64_t parts = columnParts(rows);
  const unsigned colBlocks = (cols + kThreads - 1) / kThreads;
  if (cudaError_t e = LAUNCH(rmsNormWeightPartsKernel, dim3(colBlocks, (unsigned)parts), kThreads, s, partial, dOut, inp, rstd, rows, cols)) return e;
  if (cudaError_t e = LAUNCH(columnFinishKernel, colBlocks, kThreads, s, dWeight, partial, parts, cols, true)) return e;
  return LAUNCH(rmsNormBackwardKernel, (unsigned)((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, s, dInp, dOut, inp, weight, rstd, rows, cols);
}

cudaError_t embedding(float* out, const float* table, const int32_t* ids, int64_t n, int dim, bool accumulate, cudaStream_t s) {
  if (n * dim <= 0) return cudaSuccess;
  return LAUNCH(embeddingKernel, blocksFor(n * dim), kThreads, s, out, table, ids, n, dim, accumulate);
}
int64_t embeddingSortSize(int64_t n) {
  int64_t size = 2;
  while (size < n) size *= 2;
  return size;
}
cudaError_t embeddingBackward(float* dTable, const float* dOut, const int32_t* ids, int64_t n, int dim, uint64_t* keys, cudaStream_t s) {
  if (n <= 0 || dim <= 0) return cudaSuccess;
  const int64_t size = embeddingSortSize(n);
  if (cudaError_t e = LAUNCH(embeddingKeysKernel, blocksFor(size), kThreads, s, keys, ids, n, size)) return e;
  // Bitonic sort of the (id, index) keys: the keys are distinct, so the order is unique
  // whatever the schedule. Steps within a tile of 1024 keys run in shared memory.
  const int64_t tile = size < kSortTile ? size : kSortTile;
  const unsigned tileThreads = (unsigned)(tile / 2);
  const unsigned tiles = (unsigned)(size / tile);
  for (int64_t k = 2; k <= size; k *= 2) {
    int64_t j = k / 2;
    for (; j >= tile; j /= 2) {
      if (cudaError_t e = LAUNCH(bitonicStepKernel, blocksFor(size / 2), kThreads, s, keys, size, j, k)) return e;
    }
    if (cudaError_t e = LAUNCH(bitonicTileKernel, tiles, tileThreads, s, keys, j, k)) return e;
  }
  return LAUNCH(embeddingSegmentsKernel, (unsigned)n, kThreads, s, dTable, dOut, keys, n, dim);
}
cudaError_t crossEntropy(float* losses, float* dLogits, const float* logits, const int32_t* labels, int64_t rows, int vocab, float gradScale, cudaStream_t s) {
  if (rows <= 0) return cudaSuccess;
  return LAUNCH(crossEntropyKernel, (unsigned)rows, kThreads, s, losses, dLogits, logits, labels, vocab, gradScale);
}
cudaError_t adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weightDecay, float c1, float c2, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  return LAUNCH(adamwKernel, blocksFor(n), kThreads, s, param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, c1, c2);
}

}  // namespace aze
