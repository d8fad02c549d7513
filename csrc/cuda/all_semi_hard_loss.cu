// all_semi_hard_loss on CUDA: label groups (their one read-back also carries the embeddings' NaN/Inf
// flag), distances, one kernel launch, and ATen sums of the per-anchor partials over the anchors.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/all_semi_hard_loss.cuh"
#include "cuda/launch.cuh"
#include "cuda/mine_embeddings.cuh"
#include "cuda/label_groups.h"

namespace fx {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> all_semi_hard_loss_cuda(const at::Tensor& emb, const at::Tensor& labels,
                                                                       double margin, bool squared, bool with_grad) {
  const char* op = "all_semi_hard_loss";
  check_fused_mining_inputs(op, emb, labels, margin);
  const c10::cuda::CUDAGuard guard(emb.device());
  const auto acc = acc_type(emb.scalar_type());
  const int64_t B = emb.size(0);
  const auto opts = emb.options().dtype(acc);
  at::Tensor coef = with_grad ? at::zeros({B, B}, opts) : at::empty({0, 0}, opts);
  const cuda::FusedInputs in = cuda::fused_inputs(emb);  // the norms once: flag, distances and loss
  const LabelGroups g = label_groups_cuda(op, labels, labels, /*exclude_self=*/true, in.norms);
  if (g.summary.num_pairs == 0) return {at::zeros({3}, opts), at::zeros({2}, opts.dtype(at::kLong)), coef};
  const at::Tensor dist = cuda::fused_distances(in);
  const at::Tensor& x = in.packed;
  const at::Tensor& norm = in.norms;
  at::Tensor anchor_sums = at::zeros({B, 3}, opts.dtype(at::kDouble));
  at::Tensor anchor_counts = at::zeros({B, 2}, opts.dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(acc, "all_semi_hard_loss_cuda", [&] {
    const cuda::AllSemiHardLossArgs<scalar_t> args{dist.data_ptr<scalar_t>(),
                                                   x.data_ptr<scalar_t>(),
                                                   norm.data_ptr<scalar_t>(),
                                                   B,
                                                   x.size(1),
                                                   g.anchor_gid,
                                                   g.ref_gid,
                                                   g.members,
                                                   g.group_start,
                                                   g.pair_offset,
                                                   static_cast<scalar_t>(margin),
                                                   squared,
                                                   with_grad ? coef.data_ptr<scalar_t>() : nullptr,
                                                   anchor_sums.data_ptr<double>(),
                                                   anchor_counts.data_ptr<int64_t>()};
    const cuda::Launch l = cuda::all_semi_hard_loss_launch(B);
    cuda::all_semi_hard_loss_kernel<scalar_t><<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {anchor_sums.sum(0).to(acc), anchor_counts.sum(0), coef};
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) { m.impl("all_semi_hard_loss", &all_semi_hard_loss_cuda); }

}  // namespace fx
