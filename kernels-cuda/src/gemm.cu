// The own tiled matmul, used where cuBLASLt cannot be loaded (and by the CPU emulation,
// which has no cuBLASLt at all).
//
// Owns: out = alpha * op(a) · op(b) (+ out), every layout, batched, in fp32: operands are
// staged in shared memory in tiles and each thread keeps a 4×4 block of outputs in registers.
// Never: splits K across blocks or threads: each output element is one thread's sum of its
// K products in order, so the bits do not depend on the schedule. No tensor cores here (the
// emulation could not check them); cuBLASLt is the fast path.
//
// Tiling: a block of 256 threads (16×16) computes a 64×64 tile of out, stepping K by 16.
// Thread (ty, tx) owns rows ty + 16·i and columns tx + 16·j (i, j < 4): neighbouring threads
// read neighbouring shared-memory words.
#include "kernels.cuh"

namespace aze {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;
constexpr int kGemmThreads = 256;
constexpr int kMaxBatchPerLaunch = 65535;  // gridDim.z's limit

// a is (M,K) or (K,M) when transA; b is (K,N) or (N,K) when transB; out is (M,N).
__global__ void __launch_bounds__(kGemmThreads) gemmKernel(GemmArgs g, int firstBatch) {
  // K-major tiles: As[k][m], Bs[k][n]; the +1 keeps the transposed stores off one bank.
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const int M = g.m, N = g.n, K = g.k;
  const int64_t batch = firstBatch + (int64_t)blockIdx.z;
  const float* A = g.a + batch * g.strideA;
  const float* B = g.b + batch * g.strideB;
  float* C = g.out + batch * g.strideOut;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  float acc[4][4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += BK) {
    // Consecutive threads walk the dimension that is contiguous in memory (coalesced loads).
    for (int idx = threadIdx.x; idx < BM * BK; idx += kGemmThreads) {
      int r, c;  // r along M, c along K
      if (!g.transA) {
        r = idx / BK;
        c = idx % BK;
      } else {
        c = idx / BM;
        r = idx % BM;
      }
      const int gm = m0 + r, gk = k0 + c;
      As[c][r] = gm < M && gk < K ? (g.transA ? A[(int64_t)gk * M + gm] : A[(int64_t)gm * K + gk]) : 0.f;
    }
    for (int idx = threadIdx.x; idx < BK * BN; idx += kGemmThreads) {
      int r, c;  // r along K, c along N
      if (!g.transB) {
        r = idx / BN;
        c = idx % BN;
      } else {
        c = idx / BK;
        r = idx % BK;
      }
      const int gk = k0 + r, gn = n0 + c;
      Bs[r][c] = gk < K && gn < N ? (g.transB ? B[(int64_t)gn * K + gk] : B[(int64_t)gk * N + gn]) : 0.f;
    }
    __syncthreads();
    // Zero-padded tails add exact zeros, so a padded k changes no bits.
    for (int kk = 0; kk < BK; kk++) {
      float a[4], b[4];
      for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      const int gm = m0 + ty + 16 * i, gn = n0 + tx + 16 * j;
      if (gm < M && gn < N) {
        float* o = C + (int64_t)gm * N + gn;
        const float v = g.alpha * acc[i][j];
        *o = g.accumulate ? *o + v : v;
      }
    }
}

}  // namespace

cudaError_t gemmTiled(const GemmArgs& g, cudaStream_t s) {
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return cudaSuccess;
  for (int first = 0; first < g.batch; first += kMaxBatchPerLaunch) {
    const int count = g.batch - first < kMaxBatchPerLaunch ? g.batch - first : kMaxBatchPerLaunch;
    const dim3 grid((g.n + BN - 1) / BN, (g.m + BM - 1) / BM, count);
    if (cudaError_t e = LAUNCH(gemmKernel, grid, kGemmThreads, s, g, first)) return e;
  }
  return cudaSuccess;
}

}  // namespace aze
