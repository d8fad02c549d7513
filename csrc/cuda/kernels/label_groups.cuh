// Label groups on the GPU in ONE single-block launch (after the stable sort of the reference labels):
// a block-wide scan over the sorted labels numbers the groups, a second over the anchors lays out the
// pair slots, and the same block writes the summary the launcher reads back with a single copy.
// Anchors with no positive or no negative get no slot (rules/label_rules.h).
// One block is enough: the work is O(B + N) and a batch holds at most a few hundred thousand labels.
#pragma once
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "rules/label_rules.h"
#include "cuda/error_bits.h"
#include "cuda/geometry.h"

namespace fx::cuda {

struct MaxOp {
  __device__ int64_t operator()(int64_t a, int64_t b) const { return a > b ? a : b; }
};

// kNonFinite and kKept are not written by the kernel: launchers copy a device-side NaN/Inf flag and a
// kept-triplet count there, so one read-back carries them too.
enum SummarySlot { kNumPairs = 0, kMaxPositives, kNoPairs, kNonFinite, kKept, kSummarySize };

struct GroupArgs {
  const int64_t *sorted, *order, *labels;
  int64_t B, N;
  bool exclude_self;
  int32_t *anchor_gid, *ref_gid, *members, *group_start;
  int64_t *pair_offset, *summary;
  // Optional (both null: skipped), for the fused miners: the embeddings' squared norms, [B] float or
  // double. A norm that is NaN/Inf or above norm_limit (a distance could overflow) flags the batch in
  // summary[kNonFinite] or, with error_word set (capacity=: nothing is read back), as kErrorNonFinite
  // there. Checked here rather than by a chain of ATen reductions: this launch happens anyway.
  const float* norms_f = nullptr;
  const double* norms_d = nullptr;
  double norm_limit = 0;
  int32_t* error_word = nullptr;
};

__global__ void __launch_bounds__(kGroupThreads) label_groups_kernel(GroupArgs g) {
  using Scan = cub::BlockScan<int64_t, kGroupThreads>;
  using Reduce = cub::BlockReduce<int64_t, kGroupThreads>;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Reduce::TempStorage reduce;
  } tmp;
  const int tid = threadIdx.x;

  // Groups: runs of equal sorted labels, numbered by an inclusive scan of the run starts.
  int64_t groups = 0;
  for (int64_t base = 0; base < g.N; base += kGroupThreads) {
    const int64_t i = base + tid;
    const int64_t starts = (i < g.N && (i == 0 || g.sorted[i] != g.sorted[i - 1])) ? 1 : 0;
    int64_t inclusive, tile_total;
    Scan(tmp.scan).InclusiveSum(starts, inclusive, tile_total);
    if (i < g.N) {
      const int32_t gid = static_cast<int32_t>(groups + inclusive - 1);
      g.members[i] = static_cast<int32_t>(g.order[i]);
      g.ref_gid[g.order[i]] = gid;
      if (starts) g.group_start[gid] = static_cast<int32_t>(i);
    }
    groups += tile_total;
    __syncthreads();  // scan storage reuse
  }
  if (tid == 0) g.group_start[groups] = static_cast<int32_t>(g.N);
  __syncthreads();  // group_start / ref_gid written above are read below by other threads

  // Anchors: their group, positives count, and slot offsets by an exclusive scan.
  int64_t slots = 0, max_pos = 0, no_pairs = 0, unsafe = 0;
  for (int64_t base = 0; base < g.B; base += kGroupThreads) {
    const int64_t a = base + tid;
    int64_t mine = 0;
    if (a < g.B) {
      int32_t gid = -1;
      if (g.exclude_self) {
        gid = g.ref_gid[a];
      } else if (g.N > 0) {
        const int64_t pos = lower_bound_index(g.sorted, g.N, g.labels[a]);
        if (pos < g.N && g.sorted[pos] == g.labels[a]) gid = g.ref_gid[g.order[pos]];
      }
      const int64_t size = gid >= 0 ? g.group_start[gid + 1] - g.group_start[gid] : 0;
      mine = anchor_slots(gid >= 0, size, g.N, g.exclude_self);
      g.anchor_gid[a] = gid;
      max_pos = mine > max_pos ? mine : max_pos;
      no_pairs += mine == 0;
      // `<=` is false for NaN, so NaN and +Inf norms are unsafe too.
      if (g.norms_f) unsafe |= !(static_cast<double>(g.norms_f[a]) <= g.norm_limit);
      if (g.norms_d) unsafe |= !(g.norms_d[a] <= g.norm_limit);
    }
    int64_t exclusive, tile_total;
    Scan(tmp.scan).ExclusiveSum(mine, exclusive, tile_total);
    if (a < g.B) g.pair_offset[a] = slots + exclusive;
    slots += tile_total;
    __syncthreads();
  }

  const int64_t max_all = Reduce(tmp.reduce).Reduce(max_pos, MaxOp{});
  __syncthreads();
  const int64_t no_pairs_all = Reduce(tmp.reduce).Sum(no_pairs);
  __syncthreads();
  const int64_t unsafe_all = Reduce(tmp.reduce).Sum(unsafe);
  if (tid == 0) {
    g.pair_offset[g.B] = slots;
    g.summary[kNumPairs] = slots;
    g.summary[kMaxPositives] = max_all;
    g.summary[kNoPairs] = no_pairs_all;
    if (g.norms_f || g.norms_d) {
      if (g.error_word) {
        if (unsafe_all) atomicOr(g.error_word, kErrorNonFinite);
      } else {
        g.summary[kNonFinite] = unsafe_all != 0;
      }
    }
  }
}

}  // namespace fx::cuda
