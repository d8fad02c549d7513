// Shared-memory keys that order (distance, index) pairs for atomicMin.
//
// For float distances the pair packs into one 64-bit word: the distance's bits (a non-negative float
// orders like its unsigned bits) above the index, so a single atomicMin finds the closest candidate
// with ties to the smaller index, in one pass, in any thread order. Distances here are >= 0 by
// construction (the epilogue clamps to +0; adding +0.0f also turns a stray -0 into +0).
#pragma once
#include <cstdint>

namespace fx::cuda {

using key64 = unsigned long long;
constexpr key64 kEmptyMinKey = ~0ull;

__device__ __forceinline__ key64 min_key(float d, int32_t j) {
  return (key64(__float_as_uint(d + 0.0f)) << 32) | key64(uint32_t(j));
}
__device__ __forceinline__ float key_dist(key64 k) { return __uint_as_float(uint32_t(k >> 32)); }
__device__ __forceinline__ int32_t min_key_index(key64 k) { return k == kEmptyMinKey ? -1 : int32_t(uint32_t(k)); }

}  // namespace fx::cuda
