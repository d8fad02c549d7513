// Per-anchor group arithmetic shared by the CPU loop and the CUDA kernel that build label groups.
#pragma once
#include "common/macros.h"

namespace fx {

// First position in the ascending array sorted[0..n) whose value is >= key.
FX_HD int64_t lower_bound_index(const int64_t* sorted, int64_t n, int64_t key) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (sorted[mid] < key) lo = mid + 1; else hi = mid;
  }
  return lo;
}

struct AnchorCounts {
  int64_t positives;  // size of the anchor's group in the reference set, minus itself when exclude_self
  bool lonely;        // has positives but every reference element shares its label: no negative
};

FX_HD AnchorCounts anchor_counts(bool found, int64_t group_size, int64_t N, bool exclude_self) {
  const int64_t positives = !found ? 0 : (exclude_self ? group_size - 1 : group_size);
  return {positives, positives > 0 && group_size == N};
}

}  // namespace fx
