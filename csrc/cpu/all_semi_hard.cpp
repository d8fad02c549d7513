// all_semi_hard_from_sq_dist on CPU: every (a, p, n) with 0 < D_an - D_ap <= margin, in (a, p, n) order.
// Two passes over the same loop (count per anchor-positive slot, exclusive scan, fill), so the output is
// allocated once at its exact size and no B x B x B mask ever exists.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <vector>

#include "rules/mining_rules.h"
#include "cpu/finite.h"
#include "checks.h"
#include "cpu/label_groups.h"
#include "shared/tensors.h"
#include "cpu/mine_embeddings.h"
#include "cpu/grain.h"

namespace fx {
namespace {

struct Slots {
  const int64_t* pair_offset;
  const int64_t* out_offset;  // null in the counting pass
  int64_t* count;             // null in the filling pass
  int64_t *a, *p, *n;
};

// Returns false when a row it mines holds a NaN or Inf (checked in the counting pass).
template <typename T>
bool all_semi_hard_pass(const at::Tensor& sq_dist, const LabelGroups& g, bool exclude_self, T margin, bool squared,
                        const Slots& s) {
  const int64_t B = sq_dist.size(0), N = sq_dist.size(1), ld = sq_dist.stride(0);
  const T* dist = sq_dist.data_ptr<T>();
  const int32_t* anchor_gid = g.anchor_gid;
  const int32_t* ref_gid = g.ref_gid;
  const int32_t* members = g.members;
  const int32_t* group_start = g.group_start;
  std::atomic<bool> non_finite{false};
  at::parallel_for(0, B, grain_for(2 * N), [&](int64_t begin, int64_t end) {
    std::vector<T> metric(N);
    for (int64_t a = begin; a < end; ++a) {
      const int64_t slot0 = s.pair_offset[a];
      if (s.pair_offset[a + 1] == slot0) continue;
      const int32_t gid = anchor_gid[a];
      const T* row = dist + a * ld;
      if (s.count && !all_finite(row, N)) {
        non_finite.store(true, std::memory_order_relaxed);
        continue;
      }
      for (int64_t j = 0; j < N; ++j) metric[j] = to_metric(row[j], squared);
      int64_t q = 0;
      for (int32_t m = group_start[gid]; m < group_start[gid + 1]; ++m) {
        const int64_t p = members[m];
        if (exclude_self && p == a) continue;
        const T ap = metric[p];
        const int64_t slot = slot0 + q++;
        if (s.count) {
          int64_t c = 0;
          for (int64_t j = 0; j < N; ++j) c += (ref_gid[j] != gid) & in_semi_hard_window(ap, metric[j], margin);
          s.count[slot] = c;
        } else {
          int64_t o = s.out_offset[slot];
          for (int64_t j = 0; j < N; ++j)
            if (ref_gid[j] != gid && in_semi_hard_window(ap, metric[j], margin)) {
              s.a[o] = a;
              s.p[o] = p;
              s.n[o++] = j;
            }
        }
      }
    }
  });
  return !non_finite.load();
}

Triplets all_semi_hard_mine_cpu(const char* op, const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                                double margin, bool squared) {
  const int64_t num_pairs = g.summary.num_pairs;
  if (num_pairs == 0) return empty_triplets(dist);
  at::Tensor counts = empty_like_device({num_pairs}, dist, at::kLong);
  at::Tensor a, p, n;
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "all_semi_hard_cpu", [&] {
    const auto m = static_cast<scalar_t>(margin);
    Slots s{g.pair_offset, nullptr, counts.data_ptr<int64_t>(), nullptr, nullptr, nullptr};
    finite = all_semi_hard_pass<scalar_t>(dist, g, exclude_self, m, squared, s);
    if (!finite) return;
    const at::Tensor offsets = counts.cumsum(0) - counts;
    const int64_t total = (offsets[-1] + counts[-1]).item<int64_t>();
    a = empty_like_device({total}, dist, at::kLong);
    p = empty_like_device({total}, dist, at::kLong);
    n = empty_like_device({total}, dist, at::kLong);
    s = Slots{g.pair_offset,         offsets.data_ptr<int64_t>(), nullptr,
              a.data_ptr<int64_t>(), p.data_ptr<int64_t>(),       n.data_ptr<int64_t>()};
    all_semi_hard_pass<scalar_t>(dist, g, exclude_self, m, squared, s);
  });
  if (!finite) fail_non_finite(op);
  return {a, p, n};
}

Triplets all_semi_hard_from_sq_dist_cpu(const at::Tensor& sq_dist, const at::Tensor& labels,
                                        const at::Tensor& ref_labels, bool exclude_self, double margin, bool squared) {
  const char* op = "all_semi_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, margin);
  const LabelGroups g = label_groups_cpu(labels, ref_labels, exclude_self);
  return all_semi_hard_mine_cpu(op, row_major(sq_dist), g, exclude_self, margin, squared);
}

Triplets all_semi_hard_triplets_cpu(const at::Tensor& emb, const at::Tensor& labels, double margin, bool squared) {
  const char* op = "all_semi_hard_triplets";
  return mine_embeddings_cpu(op, emb, labels, margin, [&](const at::Tensor& d, const LabelGroups& g) {
    return all_semi_hard_mine_cpu(op, d, g, true, margin, squared);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("all_semi_hard_from_sq_dist", &all_semi_hard_from_sq_dist_cpu);
  m.impl("all_semi_hard_triplets", &all_semi_hard_triplets_cpu);
}

}  // namespace fx
