// all_semihard_from_sq_dist on CUDA: count, exclusive scan (ATen), fill.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/all_semihard.cuh"
#include "cuda/launch.cuh"
#include "label_groups.h"

namespace fx {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> all_semihard_cuda(const at::Tensor& sq_dist, const at::Tensor& labels,
                                                                  const at::Tensor& ref_labels, bool exclude_self,
                                                                  double margin, bool squared) {
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  const char* op = "all_semi_hard_triplets";
  const at::Tensor dist = row_major(sq_dist);
  const LabelGroups g = label_groups_cuda(op, dist, labels, ref_labels, exclude_self);
  const int64_t num_pairs = g.summary.num_pairs;
  auto opts = labels.options().dtype(at::kLong);
  if (num_pairs == 0) return {at::empty({0}, opts), at::empty({0}, opts), at::empty({0}, opts)};
  at::Tensor counts = at::empty({num_pairs}, opts);
  cuda::AllSemihardArgs args{dist.stride(0), dist.size(1),
                             g.anchor_gid.data_ptr<int32_t>(), g.ref_gid.data_ptr<int32_t>(),
                             g.members.data_ptr<int32_t>(), g.group_start.data_ptr<int32_t>(),
                             g.pair_offset.data_ptr<int64_t>(), exclude_self, squared,
                             counts.data_ptr<int64_t>(), nullptr, nullptr, nullptr, nullptr};
  const unsigned blocks = static_cast<unsigned>(dist.size(0));
  const int threads = cuda::kAllSemihardWarps * 32;
  at::Tensor a, p, n;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "all_semihard_cuda", [&] {
    const auto m = static_cast<scalar_t>(margin);
    cuda::all_semihard_kernel<scalar_t, false><<<blocks, threads, 0, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), m, args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const at::Tensor ends = counts.cumsum(0);
    const at::Tensor offsets = ends - counts;
    const int64_t total = ends[-1].item<int64_t>();
    a = at::empty({total}, opts);
    p = at::empty({total}, opts);
    n = at::empty({total}, opts);
    if (total == 0) return;
    args.count = nullptr;
    args.out_offset = offsets.data_ptr<int64_t>();
    args.out_a = a.data_ptr<int64_t>();
    args.out_p = p.data_ptr<int64_t>();
    args.out_n = n.data_ptr<int64_t>();
    cuda::all_semihard_kernel<scalar_t, true><<<blocks, threads, 0, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), m, args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {a, p, n};
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) { m.impl("all_semihard_from_sq_dist", &all_semihard_cuda); }

}  // namespace fx
