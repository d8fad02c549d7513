// all_semi_hard_triplets and all_semi_hard_from_sq_dist on CUDA: count, exclusive scan (ATen), fill.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/all_semi_hard.cuh"
#include "cuda/launch.cuh"
#include "cuda/mine_embeddings.cuh"
#include "cuda/label_groups.h"
#include "shared/triplets.h"

namespace fx {
namespace {

// The scan's total is read back to size the output (a second sync after the label summary's); a NaN/Inf
// flag, when given, comes back in the same copy.
Triplets all_semi_hard_mine_cuda(const char* op, const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                                 double margin, bool squared, const at::Tensor& non_finite) {
  const int64_t num_pairs = g.summary.num_pairs;
  auto opts = dist.options().dtype(at::kLong);
  if (num_pairs == 0) return empty_triplets(dist);
  at::Tensor counts = at::empty({num_pairs}, opts);
  cuda::AllSemiHardArgs args{dist.stride(0),
                             dist.size(1),
                             g.anchor_gid,
                             g.ref_gid,
                             g.members,
                             g.group_start,
                             g.pair_offset,
                             exclude_self,
                             squared,
                             counts.data_ptr<int64_t>(),
                             nullptr,
                             nullptr,
                             nullptr,
                             nullptr,
                             non_finite.defined() ? non_finite.data_ptr<int>() : nullptr};
  const cuda::Launch l = cuda::all_semi_hard_launch(dist.size(0));
  at::Tensor a, p, n;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "all_semi_hard_cuda", [&] {
    const auto m = static_cast<scalar_t>(margin);
    cuda::all_semi_hard_kernel<scalar_t, false>
        <<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(dist.data_ptr<scalar_t>(), m, args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const at::Tensor ends = counts.cumsum(0);
    const at::Tensor offsets = ends - counts;
    // The total and the NaN/Inf flag in one read-back (the call's second sync, after the summary's).
    const at::Tensor read = non_finite.defined() ? at::cat({ends.narrow(0, num_pairs - 1, 1), non_finite.to(at::kLong)})
                                                 : ends.narrow(0, num_pairs - 1, 1);
    const at::Tensor host = read.cpu();
    const int64_t total = host.data_ptr<int64_t>()[0];
    if (non_finite.defined() && host.data_ptr<int64_t>()[1] != 0) fail_non_finite(op);
    a = at::empty({total}, opts);
    p = at::empty({total}, opts);
    n = at::empty({total}, opts);
    if (total == 0) return;
    args.count = nullptr;
    args.non_finite = nullptr;
    args.out_offset = offsets.data_ptr<int64_t>();
    args.out_a = a.data_ptr<int64_t>();
    args.out_p = p.data_ptr<int64_t>();
    args.out_n = n.data_ptr<int64_t>();
    cuda::all_semi_hard_kernel<scalar_t, true>
        <<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(dist.data_ptr<scalar_t>(), m, args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {a, p, n};
}

Triplets all_semi_hard_from_sq_dist_cuda(const at::Tensor& sq_dist, const at::Tensor& labels,
                                         const at::Tensor& ref_labels, bool exclude_self, double margin, bool squared) {
  const char* op = "all_semi_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, margin);
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  const LabelGroups g = label_groups_cuda(op, labels, ref_labels, exclude_self, at::Tensor());
  const at::Tensor non_finite = at::zeros({1}, sq_dist.options().dtype(at::kInt));
  return all_semi_hard_mine_cuda(op, row_major(sq_dist), g, exclude_self, margin, squared, non_finite);
}

Triplets all_semi_hard_triplets_cuda(const at::Tensor& emb, const at::Tensor& labels, double margin, bool squared) {
  const char* op = "all_semi_hard_triplets";
  return cuda::mine_embeddings(op, emb, labels, margin, [&](const at::Tensor& d, const LabelGroups& g) {
    return all_semi_hard_mine_cuda(op, d, g, true, margin, squared, at::Tensor());
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("all_semi_hard_from_sq_dist", &all_semi_hard_from_sq_dist_cuda);
  m.impl("all_semi_hard_triplets", &all_semi_hard_triplets_cuda);
}

}  // namespace fx
