// Shared-memory keys that order (distance, index) pairs for atomicMin.
//
// For float the key packs (ordered distance bits, index) into one 64-bit word (rules/ordered_bits.h:
// the bits order like the distances, negative ones included), so a single atomicMin finds the closest
// candidate with ties to the smaller index, in one pass, in any thread order. For double the 64 ordered
// bits fill a key of their own (the index then takes a second pass).
#pragma once
#include <cstdint>

#include "rules/ordered_bits.h"

namespace fx::cuda {

using key64 = unsigned long long;
constexpr key64 kEmptyMinKey = ~0ull;  // above every finite distance's key (it decodes to a NaN)

__device__ __forceinline__ key64 min_key(float d, int32_t j) {
  return (key64(ordered_bits(d)) << 32) | key64(uint32_t(j));
}
__device__ __forceinline__ float key_dist(key64 k) { return from_ordered_bits<float>(uint32_t(k >> 32)); }
__device__ __forceinline__ int32_t min_key_index(key64 k) { return k == kEmptyMinKey ? -1 : int32_t(uint32_t(k)); }

}  // namespace fx::cuda
