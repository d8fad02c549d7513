// batch_hard_triplets and batch_hard_from_sq_dist on CUDA.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/batch_hard.cuh"
#include "cuda/launch.cuh"
#include "cuda/mine_embeddings.cuh"
#include "aten/label_groups.h"

namespace fx {
namespace {

Triplets batch_hard_mine_cuda(const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                              const at::Tensor& non_finite) {
  const int64_t B = dist.size(0);
  auto opts = dist.options().dtype(at::kLong);
  at::Tensor a = at::arange(B, opts), p = at::empty({B}, opts), n = at::empty({B}, opts);
  if (g.summary.num_pairs == 0) return empty_triplets(dist);
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "batch_hard_cuda", [&] {
    const cuda::Launch l = cuda::batch_hard_launch(B);
    cuda::batch_hard_kernel<scalar_t><<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), dist.stride(0), dist.size(1), g.anchor_gid, g.ref_gid, g.pair_offset, exclude_self,
        p.data_ptr<int64_t>(), n.data_ptr<int64_t>(), non_finite.defined() ? non_finite.data_ptr<int>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (g.summary.anchors_without_pairs > 0) return compact_triplets(a, p, n);
  return {a, p, n};
}

Triplets batch_hard_from_sq_dist_cuda(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                      bool exclude_self) {
  const char* op = "batch_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, std::nullopt);
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  const LabelGroups g = label_groups_cuda(op, labels, ref_labels, exclude_self, at::Tensor());
  const at::Tensor non_finite = at::zeros({1}, sq_dist.options().dtype(at::kInt));
  Triplets out = batch_hard_mine_cuda(row_major(sq_dist), g, exclude_self, non_finite);
  cuda::raise_if_flagged(op, non_finite);
  return out;
}

Triplets batch_hard_triplets_cuda(const at::Tensor& emb, const at::Tensor& labels) {
  return cuda::mine_embeddings(
      "batch_hard_triplets", emb, labels, std::nullopt,
      [&](const at::Tensor& d, const LabelGroups& g) { return batch_hard_mine_cuda(d, g, true, at::Tensor()); });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("batch_hard_from_sq_dist", &batch_hard_from_sq_dist_cuda);
  m.impl("batch_hard_triplets", &batch_hard_triplets_cuda);
}

}  // namespace fx
