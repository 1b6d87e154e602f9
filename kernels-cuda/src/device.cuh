// Device helpers shared by the .cu files: the dropout hash and warp reductions.
//
// Owns: counterHash (model/counter-hash.ts in 32-bit unsigned arithmetic) and the fixed
// butterfly sums over a warp. Included only by .cu files, never by the addon's host code.
// Never: reduces in an order that depends on scheduling: a butterfly's order is fixed.
#pragma once
#include "kernels.cuh"

namespace aze {

// model/counter-hash.ts: murmur3's finaliser over a Weyl step. Unsigned 32-bit arithmetic
// wraps exactly as Math.imul and >>> 0 do there.
__device__ __forceinline__ uint32_t counterHash(uint32_t seed, uint32_t counter) {
  uint32_t h = seed ^ (counter * 0x9e3779b9u);
  h = (h ^ (h >> 16)) * 0x85ebca6bu;
  h = (h ^ (h >> 13)) * 0xc2b2ae35u;
  return h ^ (h >> 16);
}
// dropoutKeeps: the hash as a fraction of 2^32 is at least p; threshold = p * 2^32, in double
// as the reference compares it.
__device__ __forceinline__ bool dropoutKeeps(uint32_t seed, uint32_t counter, double threshold) {
  return (double)counterHash(seed, counter) >= threshold;
}

// Sum over a warp in a fixed butterfly: every lane ends with the same bits.
__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace aze
