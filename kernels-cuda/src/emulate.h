// CPU emulation of the CUDA C++ that kernels-cuda/src/*.cu use, so that the same sources
// compile with g++ and run on a machine without a GPU.
//
// Owns: the keywords (__global__, __device__, __shared__, ...), the thread coordinates
// (blockIdx, threadIdx, blockDim, gridDim), kernel launches, __syncthreads, __syncwarp and
// the warp shuffles, plus the few runtime calls the addon makes (cudaMalloc as aligned
// malloc, copies as memmove, one "device" that is the CPU).
// Never: emulates timing, the memory model (host threads see each other's writes through
// the barriers' mutexes, stronger than a GPU guarantees), tensor cores, inline PTX, atomics
// or the real warp scheduler. A kernel that passes here computes the right values with a
// correct use of barriers and shuffles; it proves nothing about speed.
//
// How a launch runs: `launch(grid, block, body)` hands one host thread (std::thread, from a
// pool started once) to each CUDA thread of a block, and the threads walk the blocks of the
// grid one after another, in order, all of them together. Within a block, __syncthreads is a
// barrier over the block's threads; a warp is 32 consecutive threads, and a shuffle writes
// each lane's value into the warp's slots, waits for the warp and reads the partner's slot
// (two sets of slots, used in turn, so that no lane overwrites a value another has yet to
// read). A thread that returns early leaves the barriers (as an exited thread does on a
// GPU), so a kernel whose bounds check returns before a barrier behaves the same here.
// Launches run one at a time (the addon has one stream).
//
// `__shared__` becomes `static`: a static local is one object for every host thread, which
// is what shared memory is for the threads of a block, and blocks run one at a time.
#pragma once

#include <math.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// ---- the runtime subset the addon calls -----------------------------------------------------

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorNoDevice = 100 };
typedef struct EmulatedStream* cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated CUDA error"; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  // 256-byte aligned like cudaMalloc, so alignment-dependent paths see what a GPU gives.
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) {
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// Arithmetic intrinsics: round-to-nearest float operations, which is what plain C++ float
// arithmetic is on x86-64 (the addon is built with -ffp-contract=off: no fused multiply-add).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }

namespace aze_emu {

// A barrier whose party can shrink: `drop` is a thread leaving for good (it returned from
// the kernel), and releases the others if they were only waiting for it.
class Barrier {
 public:
  void reset(unsigned parties) {
    expected_ = parties;
    arrived_ = 0;
  }
  void arriveAndWait() {
    arriveAndWait([] {});
  }
  // `last` runs in the thread that arrives last, before anyone is released.
  template <class F>
  void arriveAndWait(F last) {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t generation = generation_;
    if (++arrived_ >= expected_) {
      last();
      return release();
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }
  void drop() {
    std::unique_lock<std::mutex> lock(mutex_);
    expected_--;
    if (arrived_ > 0 && arrived_ >= expected_) release();
  }

 private:
  void release() {
    arrived_ = 0;
    generation_++;
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  unsigned expected_ = 0, arrived_ = 0;
  uint64_t generation_ = 0;
};

struct Warp {
  Barrier barrier;
  uint64_t slots[2][32];
};

// The state of the launch a host thread works for.
struct Launch {
  Barrier block;                    // __syncthreads
  Barrier blockDone;                // every thread finished the block; never dropped
  std::vector<std::unique_ptr<Warp>> warps;
  unsigned threads = 0;
  void resetBlock() {
    block.reset(threads);
    for (size_t w = 0; w < warps.size(); w++) warps[w]->barrier.reset(w + 1 < warps.size() ? 32 : threads - 32 * (unsigned)w);
  }
};

inline thread_local Launch* current = nullptr;
inline thread_local unsigned linearThread = 0;

inline Warp& myWarp() { return *current->warps[linearThread / 32]; }

}  // namespace aze_emu

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

inline void __syncthreads() { aze_emu::current->block.arriveAndWait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { aze_emu::myWarp().barrier.arriveAndWait(); }

namespace aze_emu {
// Every lane publishes its value in this round's slots, the warp waits once, and each lane
// reads its source lane. Rounds alternate between two sets of slots: a lane can only write a
// set again two rounds later, after the barrier of the round in between, which every lane
// reaches only once it has read. A source outside the warp segment returns the lane's own
// value, as on a GPU.
inline thread_local unsigned shuffleRound = 0;
template <class T>
T exchange(T value, int source) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes here");
  Warp& w = myWarp();
  const unsigned lane = linearThread % 32;
  uint64_t* slots = w.slots[shuffleRound++ % 2];
  std::memcpy(&slots[lane], &value, sizeof(T));
  w.barrier.arriveAndWait();
  T out = value;
  if (source >= 0) std::memcpy(&out, &slots[source], sizeof(T));
  return out;
}
}  // namespace aze_emu

template <class T>
T __shfl_xor_sync(unsigned, T value, int laneMask, int width = 32) {
  const int lane = aze_emu::linearThread % 32;
  const int source = lane ^ laneMask;
  return aze_emu::exchange(value, source / width == lane / width ? source : -1);
}
template <class T>
T __shfl_down_sync(unsigned, T value, unsigned delta, int width = 32) {
  const int lane = aze_emu::linearThread % 32;
  const int source = lane + (int)delta;
  return aze_emu::exchange(value, source / width == lane / width ? source : -1);
}
template <class T>
T __shfl_sync(unsigned, T value, int srcLane, int width = 32) {
  const int lane = aze_emu::linearThread % 32;
  return aze_emu::exchange(value, (lane / width) * width + srcLane % width);
}

namespace aze_emu {

// The host threads that play CUDA threads, started once and reused by every launch: starting
// hundreds of threads per launch costs more than the kernels themselves. Worker t plays
// thread t of every block. The pool is never destroyed (its threads are detached and sleep
// until the process exits).
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool;
    return *pool;
  }
  // Runs job(t) on workers 0..threads-1 and waits for all of them.
  void run(unsigned threads, const std::function<void(unsigned)>& job) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (started_ < threads) std::thread([this, t = started_++] { work(t); }).detach();
    job_ = &job;
    active_ = threads;
    running_ = threads;
    generation_++;
    wake_.notify_all();
    finished_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }

 private:
  void work(unsigned t) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen && t < active_; });
      seen = generation_;
      const auto* job = job_;
      lock.unlock();
      (*job)(t);
      lock.lock();
      if (--running_ == 0) finished_.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned started_ = 0, active_ = 0, running_ = 0;
  uint64_t generation_ = 0;
};

// Runs `body` (the kernel call with its arguments bound) for every block of `grid`, blocks in
// order (x fastest, then y, then z), with one host thread per thread of `block`. Launches
// are serialised: one stream, one launch at a time, as the addon uses them.
template <class Body>
cudaError_t launch(dim3 grid, dim3 block, Body body) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaErrorInvalidValue;
  static std::mutex oneAtATime;
  std::lock_guard<std::mutex> serial(oneAtATime);
  Launch state;
  state.threads = threads;
  for (unsigned w = 0; w < (threads + 31) / 32; w++) state.warps.push_back(std::make_unique<Warp>());
  state.resetBlock();
  state.blockDone.reset(threads);
  const std::function<void(unsigned)> job = [&](unsigned t) {
    current = &state;
    linearThread = t;
    threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; z++)
      for (unsigned y = 0; y < grid.y; y++)
        for (unsigned x = 0; x < grid.x; x++) {
          blockIdx = {x, y, z};
          shuffleRound = 0;
          body();
          // This thread is done with the block: it no longer counts at the block's barriers.
          state.block.drop();
          myWarp().barrier.drop();
          // The last thread to finish the block rearms the barriers for the next one.
          state.blockDone.arriveAndWait([&] { state.resetBlock(); });
        }
    current = nullptr;
  };
  Pool::get().run(threads, job);
  return cudaSuccess;
}

}  // namespace aze_emu

// `LAUNCH(kernel, grid, block, stream, args...)`: `kernel<<<grid, block, 0, stream>>>(args...)`
// under nvcc, a host-thread launch here. Its value is the launch's cudaError_t.
#define LAUNCH(kernel, grid, block, stream, ...) (aze_emu::launch(dim3(grid), dim3(block), [=] { kernel(__VA_ARGS__); }))
