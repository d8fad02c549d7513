// batch_hard_from_sq_dist on CUDA.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/batch_hard.cuh"
#include "cuda/launch.cuh"
#include "label_groups.h"

namespace fx {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_hard_cuda(const at::Tensor& sq_dist, const at::Tensor& labels,
                                                                const at::Tensor& ref_labels, bool exclude_self) {
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  const char* op = "batch_hard_triplets";
  const at::Tensor dist = row_major(sq_dist);
  const LabelGroups g = label_groups_cuda(op, dist, labels, ref_labels, exclude_self);
  const MiningSummary& s = g.summary;
  const int64_t B = dist.size(0);
  auto opts = labels.options().dtype(at::kLong);
  at::Tensor a = at::arange(B, opts), p = at::empty({B}, opts), n = at::empty({B}, opts);
  if (B == 0) return {a, p, n};
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "batch_hard_cuda", [&] {
    cuda::batch_hard_kernel<scalar_t><<<static_cast<unsigned>(B), cuda::kBatchHardThreads, 0, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), dist.stride(0), dist.size(1), g.anchor_gid.data_ptr<int32_t>(),
        g.ref_gid.data_ptr<int32_t>(), exclude_self, p.data_ptr<int64_t>(), n.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (s.lonely_anchors > 0 || s.anchors_without_positive > 0) return compact_triplets(a, p, n);
  return {a, p, n};
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) { m.impl("batch_hard_from_sq_dist", &batch_hard_cuda); }

}  // namespace fx
