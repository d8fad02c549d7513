// all_semi_hard_loss on CPU: triplet_loss(mining="all_semihard") without its triplet list.
//
// The loss over every triplet with 0 < D_an - D_ap <= margin is a sum over pairs: a positive pair
// (a, p) enters once per negative in its window, a negative pair (a, n) once per positive whose window
// holds it. With the anchor's positives sorted by distance, each negative's positives form one
// contiguous run (the literal difference D_an - D_ap falls as D_ap grows: rounding is monotone), found by
// binary search; a difference array turns the runs into per-positive counts. O(B^2 log K) time and
// O(B^2) memory for up to B^2 K triplets: the distance matrix and, when a gradient is wanted, one
// coefficient matrix C (C_aj = d loss / d D_aj times the distance's gradient scale) with
// dL/dx_a = sum_j (C_aj + C_ja)(x_a - x_j), which python/facenet_ext/ops.py evaluates with two GEMMs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "checks.h"
#include "rules/mining_rules.h"
#include "rules/pairwise_rules.h"
#include "rules/triplet_rules.h"
#include "cpu/finite.h"
#include "cpu/label_groups.h"
#include "shared/tensors.h"
#include "cpu/pairwise_sq_dist.h"
#include "cpu/grain.h"

namespace fx {
namespace {

// First k in [0, n) with pred(k) true, for a predicate that is false then true along k.
template <class Pred>
int64_t partition_point(int64_t n, Pred pred) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (pred(mid))
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

struct AnchorSums {
  double loss = 0, d_ap = 0, d_an = 0;  // loss over active triplets; distances over all triplets
  int64_t triplets = 0, active = 0;
};

template <typename T>
struct LossInputs {
  const T* dist;  // [B, B] squared distances (Gram), what the miner selects by
  const T* x;     // [B, D] packed embeddings in T, for distances the Gram expansion gets imprecise
  const T* norm;  // [B] squared norms
  int64_t B, D;
  T margin;
  bool squared;
};

// The distance a pair contributes to the loss's value and gradient.
template <typename T>
T value_distance(const LossInputs<T>& in, int64_t a, int64_t j) {
  const T sq = refined_sq_dist(in.dist[a * in.B + j], in.x + a * in.D, in.x + j * in.D, in.norm[a], in.norm[j], in.D);
  return to_metric(sq, in.squared);
}

// One anchor's triplets: counts, sums and (coef_row non-null) its row of C for a unit loss gradient.
// Returns false when its distance row is not finite.
template <typename T>
bool anchor_loss(const LossInputs<T>& in, const LabelGroups& g, int64_t a, std::vector<std::pair<T, int64_t>>& pos,
                 std::vector<int64_t>& run_all, std::vector<int64_t>& run_active, T* coef_row, AnchorSums& out) {
  const T* row = in.dist + a * in.B;
  if (!all_finite(row, in.B)) return false;
  const int32_t gid = g.anchor_gid[a];
  pos.clear();
  for (int32_t m = g.group_start[gid]; m < g.group_start[gid + 1]; ++m)
    if (g.members[m] != a) pos.emplace_back(to_metric(row[g.members[m]], in.squared), g.members[m]);
  std::sort(pos.begin(), pos.end());  // by metric D_ap, ties by index (the counts do not depend on it)
  const int64_t K = static_cast<int64_t>(pos.size());
  run_all.assign(K + 1, 0);
  run_active.assign(K + 1, 0);
  const T m = in.margin;
  for (int64_t n = 0; n < in.B; ++n) {
    if (g.ref_gid[n] == gid) continue;
    const T an = to_metric(row[n], in.squared);
    // Along ascending D_ap the difference D_an - D_ap falls: the window 0 < diff <= m is [lo, hi), and
    // its active part diff < m is [lo_active, hi), each bound the first k where a monotone test flips.
    const int64_t lo = partition_point(K, [&](int64_t k) { return an - pos[k].first <= m; });
    const int64_t lo_active = partition_point(K, [&](int64_t k) { return semi_hard_active(pos[k].first, an, m); });
    const int64_t hi = partition_point(K, [&](int64_t k) { return !(an - pos[k].first > T(0)); });
    if (hi <= lo) continue;
    const int64_t active = hi > lo_active ? hi - lo_active : 0;
    run_all[lo] += 1;
    run_all[hi] -= 1;
    out.triplets += hi - lo;
    if (active > 0) {
      run_active[lo_active] += 1;
      run_active[hi] -= 1;
      out.active += active;
    }
    const T d = value_distance(in, a, n);
    out.d_an += double(hi - lo) * double(d);
    out.loss -= double(active) * double(d);
    if (coef_row) coef_row[n] = -T(active) * distance_grad_scale(d, in.squared);
  }
  int64_t all = 0, active = 0;
  for (int64_t k = 0; k < K; ++k) {
    all += run_all[k];
    active += run_active[k];
    if (all == 0) continue;
    const int64_t p = pos[k].second;
    const T d = value_distance(in, a, p);
    out.d_ap += double(all) * double(d);
    out.loss += double(active) * (double(d) + double(m));
    if (coef_row) coef_row[p] = T(active) * distance_grad_scale(d, in.squared);
  }
  return true;
}

template <typename T>
void all_semi_hard_loss_kernel(const LossInputs<T>& in, const LabelGroups& g, T* coef, AnchorSums& total,
                               bool& finite) {
  std::vector<AnchorSums> per_anchor(in.B);
  std::atomic<bool> non_finite{false};
  at::parallel_for(0, in.B, grain_for(4 * in.B), [&](int64_t begin, int64_t end) {
    std::vector<std::pair<T, int64_t>> pos;
    std::vector<int64_t> run_all, run_active;
    for (int64_t a = begin; a < end; ++a) {
      if (g.pair_offset[a + 1] == g.pair_offset[a]) continue;  // no positive or no negative
      if (!anchor_loss(in, g, a, pos, run_all, run_active, coef ? coef + a * in.B : nullptr, per_anchor[a]))
        non_finite.store(true, std::memory_order_relaxed);
    }
  });
  finite = !non_finite.load();
  for (const AnchorSums& s : per_anchor) {  // in anchor order: the same sums for any thread count
    total.loss += s.loss;
    total.d_ap += s.d_ap;
    total.d_an += s.d_an;
    total.triplets += s.triplets;
    total.active += s.active;
  }
}

// Returns (sums [3] = loss over active triplets, sum of D_ap, sum of D_an over all triplets, in the
// accumulation dtype; counts [2] int64 = triplets, active triplets; coef [B, B] or [0, 0]).
std::tuple<at::Tensor, at::Tensor, at::Tensor> all_semi_hard_loss_cpu(const at::Tensor& emb, const at::Tensor& labels,
                                                                      double margin, bool squared, bool with_grad) {
  const char* op = "all_semi_hard_loss";
  check_fused_mining_inputs(op, emb, labels, margin);
  const auto acc = acc_type(emb.scalar_type());
  const int64_t B = emb.size(0);
  const auto opts = at::TensorOptions().dtype(acc);
  at::Tensor sums = at::zeros({3}, opts);
  at::Tensor counts = at::zeros({2}, at::TensorOptions().dtype(at::kLong));
  at::Tensor coef = with_grad ? at::zeros({B, B}, opts) : at::empty({0, 0}, opts);
  const LabelGroups g = label_groups_cpu(labels, labels, /*exclude_self=*/true);
  if (g.summary.num_pairs == 0) {
    check_finite_embeddings(op, "emb", emb);
    return {sums, counts, coef};
  }
  const at::Tensor dist = pairwise_sq_dist_cpu_impl(op, "emb", emb, "emb", std::nullopt);
  const at::Tensor x = packed_as(emb, acc);
  const int64_t D = x.size(1);
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(acc, "all_semi_hard_loss_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    std::vector<scalar_t> norm(B);
    row_norms(xp, B, D, norm.data());  // finite: the distances above checked them
    const LossInputs<scalar_t> in{dist.data_ptr<scalar_t>(),     xp,     norm.data(), B, D,
                                  static_cast<scalar_t>(margin), squared};
    AnchorSums total;
    all_semi_hard_loss_kernel<scalar_t>(in, g, with_grad ? coef.data_ptr<scalar_t>() : nullptr, total, finite);
    scalar_t* s = sums.data_ptr<scalar_t>();
    s[0] = static_cast<scalar_t>(total.loss);
    s[1] = static_cast<scalar_t>(total.d_ap);
    s[2] = static_cast<scalar_t>(total.d_an);
    counts.data_ptr<int64_t>()[0] = total.triplets;
    counts.data_ptr<int64_t>()[1] = total.active;
  });
  if (!finite) fail_non_finite(op);
  return {sums, counts, coef};
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) { m.impl("all_semi_hard_loss", &all_semi_hard_loss_cpu); }

}  // namespace fx
