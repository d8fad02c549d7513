// semi_hard_triplets and semihard_from_sq_dist on CUDA: label groups (one host sync), one block per
// anchor, ordered compaction (ATen).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/semihard.cuh"
#include "cuda/launch.cuh"
#include "cuda/mine_embeddings.cuh"
#include "aten/label_groups.h"

namespace fx {
namespace {

// Mines a checked, row-major matrix with its groups built. `non_finite`: int32 [1] the kernel sets on a
// NaN/Inf distance, or undefined when the caller has checked its inputs.
Triplets semihard_mine_cuda(const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                            std::optional<double> margin, bool squared, bool drop_fallback,
                            const at::Tensor& non_finite) {
  const MiningSummary& s = g.summary;
  auto opts = dist.options().dtype(at::kLong);
  at::Tensor a = at::empty({s.num_pairs}, opts), p = at::empty({s.num_pairs}, opts), n = at::empty({s.num_pairs}, opts);
  if (s.num_pairs == 0) return {a, p, n};
  const int chunk = cuda::semihard_chunk(s.max_positives);
  cuda::SemihardArgs args{dist.stride(0),
                          dist.size(1),
                          g.anchor_gid,
                          g.ref_gid,
                          g.members,
                          g.group_start,
                          g.pair_offset,
                          exclude_self,
                          margin.has_value(),
                          squared,
                          drop_fallback,
                          chunk,
                          a.data_ptr<int64_t>(),
                          p.data_ptr<int64_t>(),
                          n.data_ptr<int64_t>(),
                          non_finite.defined() ? non_finite.data_ptr<int>() : nullptr};
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "semihard_cuda", [&] {
    const cuda::Launch l = cuda::semihard_launch(dist.size(0), s.max_positives, sizeof(scalar_t));
    cuda::semihard_kernel<scalar_t><<<cuda::grid_of(l), cuda::block_of(l), l.smem, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), static_cast<scalar_t>(margin.value_or(0)), args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  // Slots stay empty only through the margin or "drop" (anchors without a negative have no slot).
  if (margin.has_value() || drop_fallback) return compact_triplets(a, p, n);
  return {a, p, n};
}

Triplets semihard_from_sq_dist_cuda(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                    bool exclude_self, std::optional<double> margin, bool squared, bool drop_fallback) {
  const char* op = "semihard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, margin);
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  const LabelGroups g = label_groups_cuda(op, labels, ref_labels, exclude_self, at::Tensor());
  const at::Tensor non_finite = at::zeros({1}, sq_dist.options().dtype(at::kInt));
  Triplets out = semihard_mine_cuda(row_major(sq_dist), g, exclude_self, margin, squared, drop_fallback, non_finite);
  cuda::raise_if_flagged(op, non_finite);
  return out;
}

Triplets semi_hard_triplets_cuda(const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                                 bool squared, bool drop_fallback) {
  return cuda::mine_embeddings("semi_hard_triplets", emb, labels, margin,
                               [&](const at::Tensor& d, const LabelGroups& g) {
                                 return semihard_mine_cuda(d, g, true, margin, squared, drop_fallback, at::Tensor());
                               });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("semihard_from_sq_dist", &semihard_from_sq_dist_cuda);
  m.impl("semi_hard_triplets", &semi_hard_triplets_cuda);
}

}  // namespace fx
