// batch_hard_triplets on CPU (Hermans et al. 2017): per anchor, the farthest positive and the closest
// negative, ties to the smaller index. One output per anchor that has both.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "label_groups.h"

namespace fx {
namespace {

template <typename T>
void batch_hard_cpu_kernel(const at::Tensor& sq_dist, const LabelGroups& g, bool exclude_self, int64_t* out_p,
                           int64_t* out_n) {
  const int64_t B = sq_dist.size(0), N = sq_dist.size(1), ld = sq_dist.stride(0);
  const T* dist = sq_dist.data_ptr<T>();
  const int32_t* anchor_gid = g.anchor_gid.data_ptr<int32_t>();
  const int32_t* ref_gid = g.ref_gid.data_ptr<int32_t>();
  constexpr T kInf = std::numeric_limits<T>::infinity();
  at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      const int32_t gid = anchor_gid[a];
      const T* row = dist + a * ld;
      T far_pos = -kInf, near_neg = kInf;
      int64_t p = -1, n = -1;
      for (int64_t j = 0; j < N; ++j) {  // increasing j + strict comparisons = ties to the smaller index
        const T d = row[j];
        if (ref_gid[j] == gid) {
          if (!(exclude_self && j == a) && d > far_pos) { far_pos = d; p = j; }
        } else if (d < near_neg) {
          near_neg = d;
          n = j;
        }
      }
      out_p[a] = p;
      out_n[a] = p >= 0 ? n : -1;
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_hard_cpu(const at::Tensor& sq_dist, const at::Tensor& labels,
                                                               const at::Tensor& ref_labels, bool exclude_self) {
  const char* op = "batch_hard_triplets";
  const at::Tensor dist = row_major(sq_dist);
  const LabelGroups g = label_groups_cpu(op, dist, labels, ref_labels, exclude_self);
  const MiningSummary& s = g.summary;
  const int64_t B = dist.size(0);
  auto opts = labels.options().dtype(at::kLong);
  at::Tensor a = at::arange(B, opts), p = at::empty({B}, opts), n = at::empty({B}, opts);
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "batch_hard_cpu", [&] {
    batch_hard_cpu_kernel<scalar_t>(dist, g, exclude_self, p.data_ptr<int64_t>(), n.data_ptr<int64_t>());
  });
  if (s.lonely_anchors > 0 || s.anchors_without_positive > 0) return compact_triplets(a, p, n);
  return {a, p, n};
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) { m.impl("batch_hard_from_sq_dist", &batch_hard_cpu); }

}  // namespace fx
