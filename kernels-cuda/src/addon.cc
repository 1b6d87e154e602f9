// The Node addon of the CUDA backend: every Kernels operation over device buffers.
//
// Owns: the device (the first one), one stream on which everything runs in order, the caching
// arena over cudaMalloc, the scratch memory kernels need, and the matmul choice (cuBLASLt
// when it loads, else the own tiled GEMM). kernels-cuda/index.ts turns these functions into
// the Kernels interface. The same file is built twice: with the CUDA runtime for a GPU
// (binding.gyp), and with AZE_EMULATE against emulate.h for the CPU (emulated/binding.gyp),
// where "device" memory is host memory and the kernels run on host threads.
// Never: uses managed memory, copies a buffer to the host except in download and sumSquares,
// or synchronises anywhere else: the host never waits for a kernel it does not read.
//
// Addresses cross to JavaScript as numbers (bytes): device pointers are below 2^53.
#include <napi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels.cuh"
#if !defined(AZE_EMULATE)
#include "cublaslt.h"
#endif

namespace aze {
namespace {

cudaStream_t stream = nullptr;
bool initialised = false;

[[noreturn]] void fail(Napi::Env env, const std::string& message) { throw Napi::Error::New(env, "cuda: " + message); }
void check(Napi::Env env, cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(env, std::string(what) + ": " + cudaGetErrorString(e));
}

// ---- the arena -----------------------------------------------------------------------------
// A freed buffer is kept for the next request of the same rounded size instead of going back
// to cudaFree (which synchronises the device). Reuse is safe without events because one
// stream runs everything in order: a kernel that used the old buffer finishes before any
// kernel that uses the new one starts. When cudaMalloc fails, the cache is released and the
// request retried once.
class Arena {
 public:
  void* alloc(Napi::Env env, size_t bytes) {
    const size_t size = round(bytes);
    void* p = nullptr;
    auto& cached = free_[size];
    if (!cached.empty()) {
      p = cached.back();
      cached.pop_back();
    } else {
      if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky-free error before retrying
        releaseCache();
        if (cudaMalloc(&p, size) != cudaSuccess)
          fail(env, "out of device memory: " + std::to_string(size) + " bytes asked, " + std::to_string(reserved_) + " in use");
      }
      reserved_ += size;
    }
    sizes_[p] = size;
    inUse_ += size;
    return p;
  }
  void release(Napi::Env env, void* p) {
    auto it = sizes_.find(p);
    if (it == sizes_.end()) fail(env, "free of an address that is not an allocated buffer");
    inUse_ -= it->second;
    free_[it->second].push_back(p);
    sizes_.erase(it);
  }
  size_t reserved() const { return reserved_; }
  size_t inUse() const { return inUse_; }

 private:
  // 512-byte steps below 1 MiB, 64 KiB steps above: a few size classes, little waste.
  static size_t round(size_t bytes) {
    const size_t step = bytes < (1u << 20) ? 512 : (64u << 10);
    return (bytes + step - 1) / step * step + (bytes == 0 ? step : 0);
  }
  void releaseCache() {
    for (auto& [size, list] : free_)
      for (void* p : list) {
        cudaFree(p);
        reserved_ -= size;
      }
    free_.clear();
  }
  std::map<void*, size_t> sizes_;
  std::map<size_t, std::vector<void*>> free_;
  size_t reserved_ = 0, inUse_ = 0;
} arena;

// Scratch memory for one operation, returned to the arena at the end of the call (safe: see Arena).
struct Scratch {
  Napi::Env env;
  std::vector<void*> held;
  explicit Scratch(Napi::Env e) : env(e) {}
  template <class T>
  T* get(int64_t count) {
    held.push_back(arena.alloc(env, (size_t)(count > 0 ? count : 1) * sizeof(T)));
    return static_cast<T*>(held.back());
  }
  ~Scratch() {
    for (void* p : held) arena.release(env, p);
  }
};

// ---- arguments -------------------------------------------------------------------------------
struct Args {
  const Napi::CallbackInfo& info;
  double num(size_t i) const { return info[i].As<Napi::Number>().DoubleValue(); }
  int64_t n(size_t i) const { return (int64_t)num(i); }
  int i(size_t k) const { return (int)num(k); }
  float f(size_t i) const { return (float)num(i); }
  bool b(size_t i) const { return info[i].ToBoolean().Value(); }
  uint32_t u32(size_t i) const { return info[i].As<Napi::Number>().Uint32Value(); }  // wraps mod 2^32, as >>> 0
  void* ptr(size_t i) const { return reinterpret_cast<void*>((uintptr_t)num(i)); }
  float* fp(size_t i) const { return static_cast<float*>(ptr(i)); }
  int32_t* ip(size_t i) const { return static_cast<int32_t*>(ptr(i)); }
};

// ---- the matmul ----------------------------------------------------------------------------
#if !defined(AZE_EMULATE)
CublasLt cublas;
MatmulPrecision precision = MatmulPrecision::Tf32;
void* workspace = nullptr;
#endif
bool useCublas = false;
std::string matmulNote = "own tiled GEMM (fp32)";

// ---- functions ---------------------------------------------------------------------------------

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  out.Set("count", e == cudaSuccess ? count : 0);
  out.Set("error", e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e)));
#if defined(AZE_EMULATE)
  out.Set("name", "CPU emulation of CUDA");
  out.Set("totalBytes", 0.0);
  out.Set("capability", "emulated");
  out.Set("multiprocessors", 0);
  out.Set("emulated", true);
#else
  if (e == cudaSuccess && count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      out.Set("name", prop.name);
      out.Set("totalBytes", (double)prop.totalGlobalMem);
      out.Set("capability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
      out.Set("multiprocessors", prop.multiProcessorCount);
    }
  }
  out.Set("emulated", false);
#endif
  return out;
}

// init(matmul: "tf32" | "fp32" | "own"): the stream and the matmul path; returns a sentence.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string mode = info.Length() > 0 ? info[0].As<Napi::String>().Utf8Value() : "tf32";
  if (!initialised) {
    check(env, cudaSetDevice(0), "cudaSetDevice");
    check(env, cudaStreamCreate(&stream), "cudaStreamCreate");
    initialised = true;
  }
  useCublas = false;
  matmulNote = "own tiled GEMM (fp32)";
#if !defined(AZE_EMULATE)
  if (mode != "own") {
    std::string why;
    if (cublas.load(why)) {
      precision = mode == "fp32" ? MatmulPrecision::Fp32 : MatmulPrecision::Tf32;
      if (!workspace) workspace = arena.alloc(env, CublasLt::kWorkspaceBytes);
      useCublas = true;
      matmulNote = "cuBLASLt " + std::to_string(cublas.version()) + " (" + (mode == "fp32" ? "fp32" : "TF32") + ", fp32 accumulate) from " + cublas.path();
    } else {
      matmulNote += ": " + why;
    }
  }
#else
  matmulNote += mode == "own" ? "" : ": no cuBLASLt in the emulation";
#endif
  return Napi::String::New(env, matmulNote);
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Args a{info};
  void* p = arena.alloc(info.Env(), (size_t)a.n(0));
  check(info.Env(), cudaMemsetAsync(p, 0, (size_t)a.n(0), stream), "cudaMemsetAsync");
  return Napi::Number::New(info.Env(), (double)(uintptr_t)p);
}
void Free(const Napi::CallbackInfo& info) { arena.release(info.Env(), Args{info}.ptr(0)); }
Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("reservedBytes", (double)arena.reserved());
  out.Set("inUseBytes", (double)arena.inUse());
  return out;
}
// upload(dst, typedArray), download(src, typedArray): the copy waits for the stream, so the
// typed array may be reused as soon as the call returns.
void Upload(const Napi::CallbackInfo& info) {
  Napi::TypedArray t = info[1].As<Napi::TypedArray>();
  const uint8_t* src = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  check(info.Env(), cudaMemcpyAsync(Args{info}.ptr(0), src, t.ByteLength(), cudaMemcpyHostToDevice, stream), "upload");
  check(info.Env(), cudaStreamSynchronize(stream), "upload");
}
void Download(const Napi::CallbackInfo& info) {
  Napi::TypedArray t = info[1].As<Napi::TypedArray>();
  uint8_t* dst = static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  check(info.Env(), cudaMemcpyAsync(dst, Args{info}.ptr(0), t.ByteLength(), cudaMemcpyDeviceToHost, stream), "download");
  check(info.Env(), cudaStreamSynchronize(stream), "download (or a kernel before it)");
}
void Synchronize(const Napi::CallbackInfo& info) { check(info.Env(), cudaStreamSynchronize(stream), "a kernel"); }

// Every launch function returns the launch's error; KERNEL turns it into a JS exception.
#define KERNEL(call) check(info.Env(), (call), #call)

void Fill(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(fill(a.fp(0), a.n(1), a.f(2), stream));
}
void Copy(const Napi::CallbackInfo& info) {
  Args a{info};
  const size_t bytes = (size_t)a.n(2) * 4;
  char* dst = static_cast<char*>(a.ptr(0));
  const char* src = static_cast<const char*>(a.ptr(1));
  if (dst == src || bytes == 0) return;
  if (dst < src + bytes && src < dst + bytes) {  // overlapping: cudaMemcpy's result would be undefined
    Scratch scratch(info.Env());
    char* tmp = scratch.get<char>((int64_t)bytes);
    KERNEL(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, stream));
    KERNEL(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  KERNEL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
}
void Scale(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(scale(a.fp(0), a.n(1), a.f(2), stream));
}
void Add(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(add(a.fp(0), a.fp(1), a.fp(2), a.n(3), stream));
}
void Axpy(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(axpy(a.fp(0), a.fp(1), a.n(2), a.f(3), stream));
}
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a{info};
  const int64_t n = a.n(1), chunk = a.n(2);
  const int64_t chunks = (n + chunk - 1) / chunk;
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), (size_t)chunks);
  if (chunks == 0) return out;
  Scratch scratch(info.Env());
  double* sums = scratch.get<double>(chunks);
  KERNEL(sumSquares(sums, a.fp(0), n, chunk, stream));
  KERNEL(cudaMemcpyAsync(out.Data(), sums, chunks * sizeof(double), cudaMemcpyDeviceToHost, stream));
  KERNEL(cudaStreamSynchronize(stream));
  return out;
}

// matmul(out, a, b, m, n, k, transA, transB, accumulate, alpha, batch, strideA, strideB, strideOut)
void Matmul(const Napi::CallbackInfo& info) {
  Args a{info};
  GemmArgs g{a.fp(0), a.fp(1), a.fp(2), a.i(3), a.i(4), a.i(5), a.b(6), a.b(7), a.b(8), a.f(9), a.i(10), a.n(11), a.n(12), a.n(13)};
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return;
#if !defined(AZE_EMULATE)
  // k = 0 is a scale (or a fill) that cuBLASLt would refuse; the own GEMM does it exactly.
  if (useCublas && g.k > 0) {
    std::string why;
    if (cublas.matmul(g, precision, workspace, stream, why)) return;
    fail(info.Env(), why);
  }
#endif
  KERNEL(gemmTiled(g, stream));
}

void AddBias(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(addBias(a.fp(0), a.fp(1), a.n(2), a.i(3), stream));
}
void BiasBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  Scratch scratch(info.Env());
  KERNEL(biasBackward(a.fp(0), a.fp(1), a.n(2), a.i(3), a.b(4), scratch.get<float>(columnParts(a.n(2)) * a.i(3)), stream));
}
void Gelu(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(gelu(a.fp(0), a.fp(1), a.n(2), a.i(3), stream));
}
void GeluBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(geluBackward(a.fp(0), a.fp(1), a.fp(2), a.n(3), a.i(4), stream));
}
void Swiglu(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(swiglu(a.fp(0), a.fp(1), a.n(2), a.i(3), stream));
}
void SwigluBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(swigluBackward(a.fp(0), a.fp(1), a.fp(2), a.n(3), a.i(4), stream));
}
void Tanh(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(tanhForward(a.fp(0), a.fp(1), a.n(2), stream));
}
void TanhBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(tanhBackward(a.fp(0), a.fp(1), a.fp(2), a.n(3), stream));
}
// dropout(out, inp, n, p, seed, counter)
void Dropout(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(dropout(a.fp(0), a.fp(1), a.n(2), a.num(3), a.u32(4), a.u32(5), stream));
}
// layerNorm(out, mean, rstd, inp, weight, bias | 0, rows, cols, eps)
void LayerNorm(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(layerNorm(a.fp(0), a.fp(1), a.fp(2), a.fp(3), a.fp(4), a.fp(5), a.n(6), a.i(7), a.f(8), stream));
}
// layerNormBackward(dInp, dWeight, dBias | 0, dOut, inp, weight, mean, rstd, rows, cols)
void LayerNormBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  Scratch scratch(info.Env());
  float* partial = scratch.get<float>(2 * columnParts(a.n(8)) * a.i(9));
  KERNEL(layerNormBackward(a.fp(0), a.fp(1), a.fp(2), a.fp(3), a.fp(4), a.fp(5), a.fp(6), a.fp(7), a.n(8), a.i(9), partial, stream));
}
// rmsNorm(out, rstd, inp, weight, rows, cols, eps)
void RmsNorm(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(rmsNorm(a.fp(0), a.fp(1), a.fp(2), a.fp(3), a.n(4), a.i(5), a.f(6), stream));
}
// rmsNormBackward(dInp, dWeight, dOut, inp, weight, rstd, rows, cols)
void RmsNormBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  Scratch scratch(info.Env());
  float* partial = scratch.get<float>(columnParts(a.n(6)) * a.i(7));
  KERNEL(rmsNormBackward(a.fp(0), a.fp(1), a.fp(2), a.fp(3), a.fp(4), a.fp(5), a.n(6), a.i(7), partial, stream));
}
// rope(qkv, b, t, h, d, base, inverse)
void Rope(const Napi::CallbackInfo& info) {
  Args a{info};
  Scratch scratch(info.Env());
  float* table = scratch.get<float>((int64_t)a.i(2) * (a.i(4) / 2) * 2);
  KERNEL(rope(a.fp(0), a.i(1), a.i(2), a.i(3), a.i(4), a.num(5), a.b(6), table, stream));
}
// attention(out, saved, qkv, mask, b, t, h, d, scale, dropP, seed): saved is the (B,H,T) log-sum-exp
void Attention(const Napi::CallbackInfo& info) {
  Args a{info};
  if (a.i(7) > kMaxHeadDim) fail(info.Env(), "attention head size " + std::to_string(a.i(7)) + " is above " + std::to_string(kMaxHeadDim));
  KERNEL(attention(a.fp(0), a.fp(1), a.fp(2), a.ip(3), a.i(4), a.i(5), a.i(6), a.i(7), a.f(8), a.num(9), a.u32(10), stream));
}
// attentionBackward(dQkv, dOut, qkv, out, saved, mask, b, t, h, d, scale, dropP, seed)
void AttentionBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  if (a.i(9) > kMaxHeadDim) fail(info.Env(), "attention head size " + std::to_string(a.i(9)) + " is above " + std::to_string(kMaxHeadDim));
  Scratch scratch(info.Env());
  float* delta = scratch.get<float>((int64_t)a.i(6) * a.i(7) * a.i(8));
  KERNEL(attentionBackward(a.fp(0), a.fp(1), a.fp(2), a.fp(3), a.fp(4), a.ip(5), a.i(6), a.i(7), a.i(8), a.i(9), a.f(10), a.num(11), a.u32(12), delta, stream));
}
// embedding(out, table, ids, n, dim, accumulate)
void Embedding(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(embedding(a.fp(0), a.fp(1), a.ip(2), a.n(3), a.i(4), a.b(5), stream));
}
// embeddingBackward(dTable, dOut, ids, n, dim)
void EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a{info};
  Scratch scratch(info.Env());
  uint64_t* keys = scratch.get<uint64_t>(embeddingSortSize(a.n(3)));
  KERNEL(embeddingBackward(a.fp(0), a.fp(1), a.ip(2), a.n(3), a.i(4), keys, stream));
}
// crossEntropy(losses, dLogits, logits, labels, rows, vocab, gradScale)
void CrossEntropy(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(crossEntropy(a.fp(0), a.fp(1), a.fp(2), a.ip(3), a.n(4), a.i(5), a.f(6), stream));
}
// adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, c1, c2)
void AdamW(const Napi::CallbackInfo& info) {
  Args a{info};
  KERNEL(adamw(a.fp(0), a.fp(1), a.fp(2), a.fp(3), a.n(4), a.f(5), a.f(6), a.f(7), a.f(8), a.f(9), a.f(10), a.f(11), stream));
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> values[] = {
      {"deviceInfo", DeviceInfo}, {"init", Init}, {"alloc", Alloc}, {"memory", Memory}, {"sumSquares", SumSquares},
  };
  for (const auto& [name, fn] : values) exports.Set(name, Napi::Function::New(env, fn, name));
  const std::pair<const char*, Napi::Function::VoidCallback> voids[] = {
      {"free", Free},
      {"upload", Upload},
      {"download", Download},
      {"synchronize", Synchronize},
      {"fill", Fill},
      {"copy", Copy},
      {"scale", Scale},
      {"add", Add},
      {"axpy", Axpy},
      {"matmul", Matmul},
      {"addBias", AddBias},
      {"biasBackward", BiasBackward},
      {"gelu", Gelu},
      {"geluBackward", GeluBackward},
      {"swiglu", Swiglu},
      {"swigluBackward", SwigluBackward},
      {"tanh", Tanh},
      {"tanhBackward", TanhBackward},
      {"dropout", Dropout},
      {"layerNorm", LayerNorm},
      {"layerNormBackward", LayerNormBackward},
      {"rmsNorm", RmsNorm},
      {"rmsNormBackward", RmsNormBackward},
      {"rope", Rope},
      {"attention", Attention},
      {"attentionBackward", AttentionBackward},
      {"embedding", Embedding},
      {"embeddingBackward", EmbeddingBackward},
      {"crossEntropy", CrossEntropy},
      {"adamw", AdamW},
  };
  for (const auto& [name, fn] : voids) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

}  // namespace
}  // namespace aze

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return aze::Register(env, exports); }
NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
