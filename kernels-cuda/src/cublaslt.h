// cuBLASLt, loaded at run time with dlopen: the fast matmul of the CUDA backend.
//
// Owns: finding the library (AZE_CUBLASLT, then the usual sonames, then the CUDA toolkit and
// the Python wheel's folder site-packages/nvidia/.../lib), the few declarations we call (the
// toolkit here ships no cublasLt.h, and a header would pin one version), and one fixed
// algorithm per matmul shape, chosen once by the heuristic among algorithms without a split-K
// reduction, so the same shape always runs the same code and gives the same bits.
// Never: links against cuBLAS (the addon loads without it and falls back to the own GEMM),
// allows split-K or atomics, or picks an algorithm by timing (timing varies run to run).
#pragma once
#include <cstdint>
#include <string>

#include "kernels.cuh"

namespace aze {

enum class MatmulPrecision { Tf32, Fp32 };

class CublasLt {
 public:
  // Loads the library and creates a handle; false with `why` set when it cannot.
  bool load(std::string& why);
  bool loaded() const { return handle_ != nullptr; }
  const std::string& path() const { return path_; }
  size_t version() const { return version_; }
  // g.out = alpha * op(a) op(b) (+ out), row-major as model/kernels.ts; `workspace` holds
  // kWorkspaceBytes. Returns false (with `why`) when no algorithm fits; the caller then
  // runs the own GEMM.
  bool matmul(const GemmArgs& g, MatmulPrecision precision, void* workspace, cudaStream_t s, std::string& why);
  static constexpr size_t kWorkspaceBytes = 32u << 20;

 private:
  void* lib_ = nullptr;
  void* handle_ = nullptr;
  std::string path_;
  size_t version_ = 0;
};

}  // namespace aze
