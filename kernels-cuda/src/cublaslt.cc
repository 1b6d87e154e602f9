// cuBLASLt at run time: see cublaslt.h for what this file owns and never does.
//
// Row-major to cuBLAS's column-major: a row-major (R,C) buffer is a column-major (C,R)
// matrix, so out (M,N) = op(A)·op(B) is computed as outᵀ (N,M) = op(B)ᵀ·op(A)ᵀ, i.e. cuBLAS's
// "A" is our B and its "B" is our A, with the same transpose flags.
#include "cublaslt.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

namespace aze {
namespace {

// ---- the declarations we use, with the values of cublasLt.h (CUDA 12 and 13) ----------------
using Status = int;  // cublasStatus_t; 0 = success
using Handle = void*;
using Desc = void*;
using Layout = void*;
using Pref = void*;
struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
constexpr int CUDA_R_32F = 0;
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
constexpr int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
constexpr int DESC_TRANSA = 3, DESC_TRANSB = 4;
constexpr int LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6;
constexpr int PREF_MAX_WORKSPACE_BYTES = 1, PREF_REDUCTION_SCHEME_MASK = 3;
constexpr int PREF_MIN_ALIGNMENT_A = 5, PREF_MIN_ALIGNMENT_B = 6, PREF_MIN_ALIGNMENT_C = 7, PREF_MIN_ALIGNMENT_D = 8;
constexpr int ALGO_CONFIG_SPLITK_NUM = 2;
constexpr uint32_t REDUCTION_SCHEME_NONE = 0;

struct Api {
  Status (*create)(Handle*);
  size_t (*getVersion)();
  Status (*descCreate)(Desc*, int compute, int scale);
  Status (*descSet)(Desc, int attr, const void*, size_t);
  Status (*layoutCreate)(Layout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layoutSet)(Layout, int attr, const void*, size_t);
  Status (*prefCreate)(Pref*);
  Status (*prefSet)(Pref, int attr, const void*, size_t);
  Status (*heuristic)(Handle, Desc, Layout, Layout, Layout, Layout, Pref, int, HeuristicResult*, int*);
  Status (*matmul)(Handle, Desc, const void* alpha, const void* A, Layout, const void* B, Layout, const void* beta, const void* C, Layout, void* D, Layout,
                   const Algo*, void* workspace, size_t workspaceBytes, cudaStream_t);
  Status (*algoConfigGet)(const Algo*, int attr, void*, size_t, size_t*);
} api;

// Everything cuBLASLt needs for one shape, built once: the descriptors and the chosen algorithm.
struct Plan {
  Desc desc;
  Layout a, b, c;
  Algo algo;
};
using Key = std::tuple<int, int, int, bool, bool, int, int64_t, int64_t, int64_t, int, int, int, int>;
std::map<Key, Plan> plans;

// The largest power of two (up to 256) dividing the address: cuBLASLt's default assumes 256
// and would pick kernels that misread a view that starts a few elements into a buffer.
int alignmentOf(const void* p) {
  int a = 256;
  while (a > 4 && (reinterpret_cast<uintptr_t>(p) % a) != 0) a /= 2;
  return a;
}

template <class F>
bool sym(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

std::vector<std::string> candidates() {
  std::vector<std::string> list;
  if (const char* env = std::getenv("AZE_CUBLASLT"); env && *env) {
    std::string p = env;
    if (p.size() > 3 && p.compare(p.size() - 3, 3, ".so") != 0 && p.find(".so.") == std::string::npos) {
      list.push_back(p + "/libcublasLt.so.13");  // a folder
      list.push_back(p + "/libcublasLt.so.12");
    } else {
      list.push_back(p);
    }
  }
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12"}) list.push_back(name);
  // The toolkit, then Python wheels (nvidia-cublas: nvidia/cublas/lib; CUDA 13 wheels may use
  // nvidia/cu13/lib) in the usual site-packages folders.
  const char* patterns[] = {
      "/usr/local/cuda/lib64/libcublasLt.so.1[23]",
      "/usr/local/lib/python3*/*-packages/nvidia/*/lib/libcublasLt.so.1[23]",
      "/usr/lib/python3*/*-packages/nvidia/*/lib/libcublasLt.so.1[23]",
      "/opt/conda/lib/python3*/site-packages/nvidia/*/lib/libcublasLt.so.1[23]",
  };
  std::vector<std::string> globs(std::begin(patterns), std::end(patterns));
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* root = std::getenv(var); root && *root) globs.push_back(std::string(root) + "/lib/python3*/site-packages/nvidia/*/lib/libcublasLt.so.1[23]");
  if (const char* home = std::getenv("HOME"); home && *home) globs.push_back(std::string(home) + "/.local/lib/python3*/site-packages/nvidia/*/lib/libcublasLt.so.1[23]");
  for (const auto& pattern : globs) {
    glob_t g{};
    if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = g.gl_pathc; i-- > 0;) list.push_back(g.gl_pathv[i]);  // .so.13 sorts after .so.12: newest first
    globfree(&g);
  }
  return list;
}

}  // namespace

bool CublasLt::load(std::string& why) {
  if (handle_) return true;
  std::string tried;
  for (const auto& candidate : candidates()) {
    lib_ = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib_) {
      path_ = candidate;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + candidate;
  }
  if (!lib_) {
    why = "cuBLASLt not found (tried " + tried + "; set AZE_CUBLASLT to its path)";
    return false;
  }
  const bool ok = sym(lib_, "cublasLtCreate", api.create) && sym(lib_, "cublasLtGetVersion", api.getVersion) &&
                  sym(lib_, "cublasLtMatmulDescCreate", api.descCreate) && sym(lib_, "cublasLtMatmulDescSetAttribute", api.descSet) &&
                  sym(lib_, "cublasLtMatrixLayoutCreate", api.layoutCreate) && sym(lib_, "cublasLtMatrixLayoutSetAttribute", api.layoutSet) &&
                  sym(lib_, "cublasLtMatmulPreferenceCreate", api.prefCreate) && sym(lib_, "cublasLtMatmulPreferenceSetAttribute", api.prefSet) &&
                  sym(lib_, "cublasLtMatmulAlgoGetHeuristic", api.heuristic) && sym(lib_, "cublasLtMatmul", api.matmul) &&
                  sym(lib_, "cublasLtMatmulAlgoConfigGetAttribute", api.algoConfigGet);
  if (!ok) {
    why = path_ + " lacks a cuBLASLt function we need";
    return false;
  }
  Handle h = nullptr;
  if (Status st = api.create(&h); st != 0) {
    why = path_ + ": cublasLtCreate failed with status " + std::to_string(st);
    return false;
  }
  handle_ = h;
  version_ = api.getVersion();
  return true;
}

bool CublasLt::matmul(const GemmArgs& g, MatmulPrecision precision, void* workspace, cudaStream_t s, std::string& why) {
  const int compute = precision == MatmulPrecision::Tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const int alignA = alignmentOf(g.a), alignB = alignmentOf(g.b), alignC = alignmentOf(g.out);
  const Key key{g.m, g.n, g.k, g.transA, g.transB, g.batch, g.strideA, g.strideB, g.strideOut, compute, alignA, alignB, alignC};
  auto found = plans.find(key);
  if (found == plans.end()) {
    Plan p{};
    // cuBLAS's A := our B, as (N,K) after its op; cuBLAS's B := our A, as (K,M) after its op.
    const int opA = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, opB = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    bool ok = api.descCreate(&p.desc, compute, CUDA_R_32F) == 0 && api.descSet(p.desc, DESC_TRANSA, &opA, sizeof opA) == 0 &&
              api.descSet(p.desc, DESC_TRANSB, &opB, sizeof opB) == 0;
    // Stored shapes, column-major: our B is (N,K) col-major with ld N, or (K,N) with ld K when transposed.
    ok = ok && (g.transB ? api.layoutCreate(&p.a, CUDA_R_32F, g.k, g.n, g.k) : api.layoutCreate(&p.a, CUDA_R_32F, g.n, g.k, g.n)) == 0;
    ok = ok && (g.transA ? api.layoutCreate(&p.b, CUDA_R_32F, g.m, g.k, g.m) : api.layoutCreate(&p.b, CUDA_R_32F, g.k, g.m, g.k)) == 0;
    ok = ok && api.layoutCreate(&p.c, CUDA_R_32F, g.n, g.m, g.n) == 0;
    if (ok && g.batch > 1) {
      const int32_t count = g.batch;
      const int64_t strides[3] = {g.strideB, g.strideA, g.strideOut};
      Layout layouts[3] = {p.a, p.b, p.c};
      for (int i = 0; i < 3 && ok; i++)
        ok = api.layoutSet(layouts[i], LAYOUT_BATCH_COUNT, &count, sizeof count) == 0 &&
             api.layoutSet(layouts[i], LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]) == 0;
    }
    Pref pref = nullptr;
    ok = ok && api.prefCreate(&pref) == 0;
    const uint64_t maxWorkspace = kWorkspaceBytes;
    const uint32_t scheme = REDUCTION_SCHEME_NONE;  // no split-K reduction: one summation order
    const uint32_t aligns[4] = {(uint32_t)alignB, (uint32_t)alignA, (uint32_t)alignC, (uint32_t)alignC};
    ok = ok && api.prefSet(pref, PREF_MAX_WORKSPACE_BYTES, &maxWorkspace, sizeof maxWorkspace) == 0 &&
         api.prefSet(pref, PREF_REDUCTION_SCHEME_MASK, &scheme, sizeof scheme) == 0 &&
         api.prefSet(pref, PREF_MIN_ALIGNMENT_A, &aligns[0], 4) == 0 && api.prefSet(pref, PREF_MIN_ALIGNMENT_B, &aligns[1], 4) == 0 &&
         api.prefSet(pref, PREF_MIN_ALIGNMENT_C, &aligns[2], 4) == 0 && api.prefSet(pref, PREF_MIN_ALIGNMENT_D, &aligns[3], 4) == 0;
    if (!ok) {
      why = "cuBLASLt refused the descriptors of a " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) + " matmul";
      return false;
    }
    HeuristicResult results[8];
    int count = 0;
    api.heuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 8, results, &count);
    // The first (best predicted) algorithm that does not split K, whatever the mask allowed.
    int chosen = -1;
    for (int i = 0; i < count && chosen < 0; i++) {
      int32_t splits = 1;
      size_t written = 0;
      api.algoConfigGet(&results[i].algo, ALGO_CONFIG_SPLITK_NUM, &splits, sizeof splits, &written);
      if (results[i].state == 0 && splits <= 1) chosen = i;
    }
    if (chosen < 0) {
      why = "cuBLASLt has no algorithm without split-K for " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k);
      return false;
    }
    p.algo = results[chosen].algo;
    found = plans.emplace(key, p).first;
  }
  const Plan& p = found->second;
  const float beta = g.accumulate ? 1.f : 0.f;
  const Status st = api.matmul(handle_, p.desc, &g.alpha, g.b, p.a, g.a, p.b, &beta, g.out, p.c, g.out, p.c, &p.algo, workspace, kWorkspaceBytes, s);
  if (st != 0) {
    why = "cublasLtMatmul failed with status " + std::to_string(st);
    return false;
  }
  return true;
}

}  // namespace aze
