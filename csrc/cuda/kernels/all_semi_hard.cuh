// All semi-hard triplets on the GPU, in two launches of the same loop: count per anchor-positive slot,
// then (after an exclusive scan on the host side) fill. One block per anchor, one warp per positive;
// the warp walks the row 32 negatives at a time and ranks its hits with a ballot, so the output comes
// out in (anchor, positive, negative) order with no sorting and no atomics.
#pragma once
#include <cstdint>

#include "rules/label_rules.h"
#include "rules/mining_rules.h"
#include "cuda/geometry.h"

namespace fx::cuda {

struct AllSemiHardArgs {
  int64_t ld, N;
  const int32_t *anchor_gid, *ref_gid, *members, *group_start;
  const int64_t* pair_offset;
  bool exclude_self, squared;
  int64_t* count;             // counting pass: hits per slot
  const int64_t* out_offset;  // filling pass: first output row of each slot
  int64_t *out_a, *out_p, *out_n;
  int* non_finite;  // counting pass: set to 1 when a distance read is NaN/Inf; null: inputs were checked
};

template <typename T, bool kFill>
__global__ void __launch_bounds__(kAllSemiHardWarps * 32)
    all_semi_hard_kernel(const T* __restrict__ dist, T margin, AllSemiHardArgs args) {
  const int64_t a = blockIdx.x;
  const int64_t slot0 = args.pair_offset[a];
  const int K = static_cast<int>(args.pair_offset[a + 1] - slot0);
  if (K == 0) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t gid = args.anchor_gid[a];
  const int32_t gs = args.group_start[gid];
  const T* row = dist + a * args.ld;
  // The anchor's position among its group's members, skipped.
  const int32_t self_pos =
      args.exclude_self ? self_position(args.members, gs, args.group_start[gid + 1], a) : INT32_MAX;
  const unsigned below = (1u << lane) - 1u;
  bool bad = false;
  for (int q = warp; q < K; q += kAllSemiHardWarps) {
    const int32_t p = args.members[gs + q + (q >= self_pos ? 1 : 0)];
    const T ap = to_metric(row[p], args.squared);
    const int64_t slot = slot0 + q;
    int64_t written = 0;
    int64_t out = kFill ? args.out_offset[slot] : 0;
    for (int64_t j0 = 0; j0 < args.N; j0 += 32) {
      const int64_t j = j0 + lane;
      bool hit = false;
      if (j < args.N) {
        if (!kFill) bad |= !isfinite(row[j]);
        if (args.ref_gid[j] != gid) hit = in_semi_hard_window(ap, to_metric(row[j], args.squared), margin);
      }
      const unsigned mask = __ballot_sync(0xFFFFFFFFu, hit);
      if constexpr (kFill) {
        if (hit) {
          const int64_t o = out + __popc(mask & below);
          args.out_a[o] = a;
          args.out_p[o] = p;
          args.out_n[o] = j;
        }
        out += __popc(mask);
      } else {
        written += __popc(mask);
      }
    }
    if (!kFill && lane == 0) args.count[slot] = written;
  }
  if (!kFill && bad && args.non_finite) *args.non_finite = 1;
}

}  // namespace fx::cuda
