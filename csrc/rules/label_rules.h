// Per-anchor group arithmetic shared by the CPU loop and the CUDA kernel that build label groups.
#pragma once
#include "rules/macros.h"

namespace fx {

// First position in the ascending array sorted[0..n) whose value is >= key.
FX_HD int64_t lower_bound_index(const int64_t* sorted, int64_t n, int64_t key) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (sorted[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Pair slots of one anchor: its positives (its group in the reference set, minus itself when
// exclude_self), or 0 when every reference element shares its label. An anchor with no negative forms
// no triplet, so it gets no slot and costs no work: a one-identity batch mines nothing, in O(B).
FX_HD int64_t anchor_slots(bool found, int64_t group_size, int64_t N, bool exclude_self) {
  const int64_t positives = !found ? 0 : (exclude_self ? group_size - 1 : group_size);
  return group_size == N ? 0 : positives;
}

// Position of anchor `a` among the sorted members[begin..end) of its own group (the lower bound of a):
// the kernels that enumerate an anchor's positives by rank skip this one position.
template <typename Index>
FX_HD int32_t self_position(const Index* members, int32_t begin, int32_t end, int64_t a) {
  int32_t lo = begin, hi = end;
  while (lo < hi) {
    const int32_t mid = (lo + hi) >> 1;
    if (members[mid] < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - begin;
}

}  // namespace fx
