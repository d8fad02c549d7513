// batch_hard_triplets on CPU (Hermans et al. 2017): per anchor, the farthest positive and the closest
// negative, ties to the smaller index. One output per anchor that has both.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <limits>

#include "cpu/finite.h"
#include "checks.h"
#include "cpu/label_groups.h"
#include "shared/tensors.h"
#include "cpu/mine_embeddings.h"
#include "cpu/grain.h"

namespace fx {
namespace {

// Returns false when a row it mines holds a NaN or Inf.
template <typename T>
bool batch_hard_cpu_kernel(const at::Tensor& sq_dist, const LabelGroups& g, bool exclude_self, int64_t* out_p,
                           int64_t* out_n) {
  const int64_t B = sq_dist.size(0), N = sq_dist.size(1), ld = sq_dist.stride(0);
  const T* dist = sq_dist.data_ptr<T>();
  const int32_t* anchor_gid = g.anchor_gid;
  const int32_t* ref_gid = g.ref_gid;
  const int64_t* pair_offset = g.pair_offset;
  constexpr T kInf = std::numeric_limits<T>::infinity();
  std::atomic<bool> non_finite{false};
  at::parallel_for(0, B, grain_for(N), [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      out_p[a] = out_n[a] = -1;
      if (pair_offset[a + 1] == pair_offset[a]) continue;  // no positive or no negative: no triplet
      const int32_t gid = anchor_gid[a];
      const T* row = dist + a * ld;
      if (!all_finite(row, N)) {
        non_finite.store(true, std::memory_order_relaxed);
        continue;
      }
      T far_pos = -kInf, near_neg = kInf;
      int64_t p = -1, n = -1;
      for (int64_t j = 0; j < N; ++j) {  // increasing j + strict comparisons = ties to the smaller index
        const T d = row[j];
        if (ref_gid[j] == gid) {
          if (!(exclude_self && j == a) && d > far_pos) {
            far_pos = d;
            p = j;
          }
        } else if (d < near_neg) {
          near_neg = d;
          n = j;
        }
      }
      out_p[a] = p;
      out_n[a] = n;
    }
  });
  return !non_finite.load();
}

Triplets batch_hard_mine_cpu(const char* op, const at::Tensor& dist, const LabelGroups& g, bool exclude_self) {
  const int64_t B = dist.size(0);
  at::Tensor a = empty_like_device({B}, dist, at::kLong), p = empty_like_device({B}, dist, at::kLong),
             n = empty_like_device({B}, dist, at::kLong);
  int64_t* anchor = a.data_ptr<int64_t>();
  for (int64_t i = 0; i < B; ++i) anchor[i] = i;
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "batch_hard_cpu", [&] {
    finite = batch_hard_cpu_kernel<scalar_t>(dist, g, exclude_self, p.data_ptr<int64_t>(), n.data_ptr<int64_t>());
  });
  if (!finite) fail_non_finite(op);
  if (g.summary.anchors_without_pairs > 0) return compact_triplets(a, p, n);
  return {a, p, n};
}

Triplets batch_hard_from_sq_dist_cpu(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                     bool exclude_self) {
  const char* op = "batch_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, std::nullopt);
  const LabelGroups g = label_groups_cpu(labels, ref_labels, exclude_self);
  if (g.summary.num_pairs == 0) return empty_triplets(sq_dist);
  return batch_hard_mine_cpu(op, row_major(sq_dist), g, exclude_self);
}

Triplets batch_hard_triplets_cpu(const at::Tensor& emb, const at::Tensor& labels) {
  const char* op = "batch_hard_triplets";
  return mine_embeddings_cpu(op, emb, labels, std::nullopt, [&](const at::Tensor& d, const LabelGroups& g) {
    return batch_hard_mine_cpu(op, d, g, true);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("batch_hard_from_sq_dist", &batch_hard_from_sq_dist_cpu);
  m.impl("batch_hard_triplets", &batch_hard_triplets_cpu);
}

}  // namespace fx
