// The CUDA kernels of aze-run, as host-side launch functions on one stream.
//
// Owns: the declarations shared by the .cu files (which define them) and the node-addon-api
// wrapper (which calls them). Every function enqueues work on `s` and returns the launch's
// cudaError_t; none synchronises, none allocates: scratch memory is handed in by the caller.
// Never: uses float atomics or any reduction whose order depends on scheduling, so the same
// inputs give the same bits on the same GPU.
//
// Shapes follow model/kernels.ts: row-major, lengths in elements, `inp is (rows,cols)`.
#pragma once
#include <cstdint>

#if defined(AZE_EMULATE)
// g++ on the CPU: the keywords, launches, barriers and shuffles come from the emulation.
#include "emulate.h"
#else
#include <cuda_runtime.h>
// `LAUNCH(kernel, grid, block, stream, args...)` enqueues the kernel and yields the launch's
// error; emulate.h defines the same macro for the CPU, which is why no source writes <<<>>>.
#define LAUNCH(kernel, grid, block, stream, ...) (kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__), cudaGetLastError())
#endif

namespace aze {

// ---- elementwise (elementwise.cu) ------------------------------------------------------
cudaError_t fill(float* x, int64_t n, float value, cudaStream_t s);
cudaError_t scale(float* x, int64_t n, float k, cudaStream_t s);
// out = a + b (out may alias a or b)
cudaError_t add(float* out, const float* a, const float* b, int64_t n, cudaStream_t s);
// y += alpha * x
cudaError_t axpy(float* y, const float* x, int64_t n, float alpha, cudaStream_t s);
// out is (ceil(n/chunk)) doubles: the sum of squares of each chunk, in a fixed tree.
cudaError_t sumSquares(double* out, const float* x, int64_t n, int64_t chunk, cudaStream_t s);

// ---- bias, activations ------------------------------------------------------------------
// x is (rows,cols), bias is (cols)
cudaError_t addBias(float* x, const float* bias, int64_t rows, int cols, cudaStream_t s);
// dOut is (rows,cols); partial is (columnParts(rows), cols) scratch
cudaError_t biasBackward(float* dBias, const float* dOut, int64_t rows, int cols, bool accumulate, float* partial, cudaStream_t s);
// 0 = tanh approximation, 1 = erf
cudaError_t gelu(float* out, const float* inp, int64_t n, int erf, cudaStream_t s);
cudaError_t geluBackward(float* dInp, const float* inp, const float* dOut, int64_t n, int erf, cudaStream_t s);
// inp is (rows, 2*hidden) = [gate | up], out is (rows, hidden)
cudaError_t swiglu(float* out, const float* inp, int64_t rows, int hidden, cudaStream_t s);
cudaError_t swigluBackward(float* dInp, const float* inp, const float* dOut, int64_t rows, int hidden, cudaStream_t s);
cudaError_t tanhForward(float* out, const float* inp, int64_t n, cudaStream_t s);
cudaError_t tanhBackward(float* dInp, const float* out, const float* dOut, int64_t n, cudaStream_t s);
// keep element i when counterHash(seed, counter + i) >= threshold (= p * 2^32)
cudaError_t dropout(float* out, const float* inp, int64_t n, double p, uint32_t seed, uint32_t counter, cudaStream_t s);

// ---- normalisation ----------------------------------------------------------------------
// Rows per part of the column reductions (bias, norm weights): fixed, so the tree is fixed.
constexpr int kColumnPartRows = 256;
inline int64_t columnParts(int64_t rows) { return (rows + kColumnPartRows - 1) / kColumnPartRows; }
// inp, out are (rows,cols); weight, bias (cols), bias may be null; mean, rstd (rows)
cudaError_t layerNorm(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t rows, int cols, float eps, cudaStream_t s);
// partial is (2 * columnParts(rows), cols) scratch
cudaError_t layerNormBackward(float* dInp, float* dWeight, float* dBias, const float* dOut, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t rows, int cols, float* partial, cudaStream_t s);
cudaError_t rmsNorm(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int cols, float eps, cudaStream_t s);
// partial is (columnParts(rows), cols) scratch
cudaError_t rmsNormBackward(float* dInp, float* dWeight, const float* dOut, const float* inp, const float* weight, const float* rstd, int64_t rows, int cols, float* partial, cudaStream_t s);

// ---- embeddings, loss, optimizer ----------------------------------------------------------
// table is (V,dim), ids (n): out[i,:] (+)= table[ids[i],:]
cudaError_t embedding(float* out, const float* table, const int32_t* ids, int64_t n, int dim, bool accumulate, cudaStream_t s);
// Elements of the sort scratch embeddingBackward needs (64-bit keys): the next power of two >= n.
int64_t embeddingSortSize(int64_t n);
// dTable[ids[i],:] += dOut[i,:], each row summed in the order of i (bit-equal to a loop)
cudaError_t embeddingBackward(float* dTable, const float* dOut, const int32_t* ids, int64_t n, int dim, uint64_t* keys, cudaStream_t s);
// logits, dLogits are (rows,V) (may alias); labels (rows), -100 ignored; losses (rows)
cudaError_t crossEntropy(float* losses, float* dLogits, const float* logits, const int32_t* labels, int64_t rows, int vocab, float gradScale, cudaStream_t s);
// c1, c2 are the bias corrections 1 - beta^step
cudaError_t adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weightDecay, float c1, float c2, cudaStream_t s);

// ---- attention (attention.cu) -------------------------------------------------------------
// qkv is (B,T,3,H,D); rotates q and k in place; table is (T, D/2, 2) scratch for cos/sin
cudaError_t rope(float* qkv, int b, int t, int h, int d, double base, bool inverse, float* table, cudaStream_t s);
// Largest head dimension the attention kernels take.
constexpr int kMaxHeadDim = 128;
// qkv is (B,T,3,H,D), mask (B,T), out (B,T,H,D), lse (B,H,T): the log-sum-exp of each row.
// dropP > 0: probability (b,h,i,j) is kept when counterHash(seed, ((b*H+h)*T+i)*T+j) >= dropP*2^32,
// then scaled by 1/(1-dropP) (model/kernels.ts's AttentionDropout).
cudaError_t attention(float* out, float* lse, const float* qkv, const int32_t* mask, int b, int t, int h, int d, float scale, double dropP, uint32_t seed, cudaStream_t s);
// dQkv is (B,T,3,H,D), written; delta is (B,H,T) scratch; dropP and seed are the forward's
cudaError_t attentionBackward(float* dQkv, const float* dOut, const float* qkv, const float* out, const float* lse, const int32_t* mask, int b, int t, int h, int d, float scale, double dropP, uint32_t seed, float* delta, cudaStream_t s);

// ---- matmul (gemm.cu): the own tiled GEMM, used where cuBLASLt is missing -------------------
struct GemmArgs {
  float* out;
  const float* a;
  const float* b;
  int m, n, k;
  bool transA, transB, accumulate;
  float alpha;
  int batch;
  int64_t strideA, strideB, strideOut;
};
// fp32 throughout; out = alpha*op(a)op(b) (+ out); each output sums its K products in order
cudaError_t gemmTiled(const GemmArgs& g, cudaStream_t s);

}  // namespace aze
