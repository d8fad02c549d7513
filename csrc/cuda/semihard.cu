// semihard_from_sq_dist on CUDA: label groups (ATen), one block per anchor, ordered compaction (ATen).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/semihard.cuh"
#include "cuda/launch.cuh"
#include "label_groups.h"

namespace fx {
namespace {

constexpr int kMaxChunk = 1024;  // positives per shared-memory pass (~21 KB float, ~33 KB double)

std::tuple<at::Tensor, at::Tensor, at::Tensor> semihard_cuda(const at::Tensor& sq_dist, const at::Tensor& labels,
                                                              const at::Tensor& ref_labels, bool exclude_self,
                                                              std::optional<double> margin, bool squared,
                                                              bool drop_fallback) {
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  const char* op = "semi_hard_triplets";
  const at::Tensor dist = row_major(sq_dist);
  const LabelGroups g = label_groups_cuda(op, dist, labels, ref_labels, exclude_self);
  const MiningSummary& s = g.summary;
  auto opts = labels.options().dtype(at::kLong);
  at::Tensor a = at::empty({s.num_pairs}, opts), p = at::empty({s.num_pairs}, opts), n = at::empty({s.num_pairs}, opts);
  if (s.num_pairs == 0) return {a, p, n};
  const int chunk = static_cast<int>(std::min<int64_t>(s.max_positives, kMaxChunk));
  cuda::SemihardArgs args{dist.stride(0), dist.size(1),
                          g.anchor_gid.data_ptr<int32_t>(), g.ref_gid.data_ptr<int32_t>(),
                          g.members.data_ptr<int32_t>(), g.group_start.data_ptr<int32_t>(),
                          g.pair_offset.data_ptr<int64_t>(), exclude_self, margin.has_value(), squared, drop_fallback,
                          chunk, a.data_ptr<int64_t>(), p.data_ptr<int64_t>(), n.data_ptr<int64_t>()};
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "semihard_cuda", [&] {
    const size_t smem = cuda::semihard_smem_bytes<scalar_t>(chunk);
    cuda::semihard_kernel<scalar_t><<<static_cast<unsigned>(dist.size(0)), cuda::kSemihardThreads, smem,
                                      cuda::current_stream()>>>(dist.data_ptr<scalar_t>(),
                                                                static_cast<scalar_t>(margin.value_or(0)), args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  // Slots stay empty only through the margin, "drop", or anchors without any negative.
  if (margin.has_value() || drop_fallback || s.lonely_anchors > 0) return compact_triplets(a, p, n);
  return {a, p, n};
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) { m.impl("semihard_from_sq_dist", &semihard_cuda); }

}  // namespace fx
