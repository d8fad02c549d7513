// The fused all-semi-hard triplet loss on the GPU: one block per anchor, no triplet list.
//
// Pass 1, a thread per negative n: how many of the anchor's positives hold n in their window
// 0 < D_an - D_ap <= margin, and how many of those triplets are active (D_an - D_ap < margin). Pass 2, a
// warp per positive p: the same counts over the negatives. The counts weight each pair's distance in the
// loss and give its coefficient C[a, j] (python/facenet_ext/ops.py turns C into the gradient). Per-anchor
// sums are reduced with cub::BlockReduce (fixed order: deterministic) and summed over anchors by ATen.
// O(K N) tests per anchor instead of the CPU's sort and binary searches: on a GPU the plain loop is the
// faster one at FaceNet's K, and both evaluate the same per-pair tests from rules/mining_rules.h.
#pragma once
#include <cub/block/block_reduce.cuh>

#include <cstdint>

#include "rules/label_rules.h"
#include "rules/mining_rules.h"
#include "rules/pairwise_rules.h"
#include "rules/triplet_rules.h"
#include "cuda/geometry.h"

namespace fx::cuda {

template <typename T>
struct AllSemiHardLossArgs {
  const T* dist;  // [B, B] Gram squared distances, row-major
  const T* x;     // [B, D] packed embeddings in T
  const T* norm;  // [B] squared norms
  int64_t B, D;
  const int32_t *anchor_gid, *ref_gid, *members, *group_start;
  const int64_t* pair_offset;
  T margin;
  bool squared;
  T* coef;                 // [B, B] zero-filled, or null when no gradient is wanted
  double* anchor_sums;     // [B, 3] zero-filled: loss over active triplets, sum of D_ap, sum of D_an
  int64_t* anchor_counts;  // [B, 2] zero-filled: triplets, active triplets
};

struct LossPartial {
  double loss, d_ap, d_an;
  long long triplets, active;
};

struct AddPartials {
  __device__ LossPartial operator()(const LossPartial& u, const LossPartial& v) const {
    return {u.loss + v.loss, u.d_ap + v.d_ap, u.d_an + v.d_an, u.triplets + v.triplets, u.active + v.active};
  }
};

template <typename T>
__device__ T loss_distance(const AllSemiHardLossArgs<T>& args, int64_t a, int64_t j) {
  const T sq = refined_sq_dist(args.dist[a * args.B + j], args.x + a * args.D, args.x + j * args.D, args.norm[a],
                               args.norm[j], args.D);
  return to_metric(sq, args.squared);
}

template <typename T>
__global__ void __launch_bounds__(kAllSemiHardLossThreads) all_semi_hard_loss_kernel(AllSemiHardLossArgs<T> args) {
  const int64_t a = blockIdx.x;
  const int K = static_cast<int>(args.pair_offset[a + 1] - args.pair_offset[a]);
  if (K == 0) return;  // no positive or no negative: no triplet (the sums stay 0)
  const int32_t gid = args.anchor_gid[a];
  const int32_t gs = args.group_start[gid];
  const T* row = args.dist + a * args.B;
  const T m = args.margin;
  // The anchor's own position among its group's members (sorted by index), skipped as a positive.
  const int32_t self_pos = self_position(args.members, gs, args.group_start[gid + 1], a);
  auto positive = [&](int q) { return args.members[gs + q + (q >= self_pos ? 1 : 0)]; };

  LossPartial part{0, 0, 0, 0, 0};
  for (int64_t n = threadIdx.x; n < args.B; n += kAllSemiHardLossThreads) {  // pass 1: negatives
    if (args.ref_gid[n] == gid) continue;
    const T an = to_metric(row[n], args.squared);
    long long all = 0, active = 0;
    for (int q = 0; q < K; ++q) {
      const T ap = to_metric(row[positive(q)], args.squared);
      if (in_semi_hard_window(ap, an, m)) {
        ++all;
        active += semi_hard_active(ap, an, m);
      }
    }
    if (all == 0) continue;
    const T d = loss_distance(args, a, n);
    part.triplets += all;
    part.active += active;
    part.d_an += double(all) * double(d);
    part.loss -= double(active) * double(d);
    if (args.coef) args.coef[a * args.B + n] = -T(active) * distance_grad_scale(d, args.squared);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int kWarps = kAllSemiHardLossThreads / 32;
  for (int q = warp; q < K; q += kWarps) {  // pass 2: positives, a warp each
    const int32_t p = positive(q);
    const T ap = to_metric(row[p], args.squared);
    long long all = 0, active = 0;
    for (int64_t n = lane; n < args.B; n += 32) {
      if (args.ref_gid[n] == gid) continue;
      const T an = to_metric(row[n], args.squared);
      if (in_semi_hard_window(ap, an, m)) {
        ++all;
        active += semi_hard_active(ap, an, m);
      }
    }
    for (int off = 16; off > 0; off >>= 1) {
      all += __shfl_down_sync(0xFFFFFFFFu, all, off);
      active += __shfl_down_sync(0xFFFFFFFFu, active, off);
    }
    if (lane == 0 && all > 0) {
      const T d = loss_distance(args, a, p);
      part.d_ap += double(all) * double(d);
      part.loss += double(active) * (double(d) + double(m));
      if (args.coef) args.coef[a * args.B + p] = T(active) * distance_grad_scale(d, args.squared);
    }
  }
  using Reduce = cub::BlockReduce<LossPartial, kAllSemiHardLossThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const LossPartial total = Reduce(storage).Reduce(part, AddPartials{});
  if (threadIdx.x == 0) {
    args.anchor_sums[a * 3 + 0] = total.loss;
    args.anchor_sums[a * 3 + 1] = total.d_ap;
    args.anchor_sums[a * 3 + 2] = total.d_an;
    args.anchor_counts[a * 2 + 0] = total.triplets;
    args.anchor_counts[a * 2 + 1] = total.active;
  }
}

}  // namespace fx::cuda
