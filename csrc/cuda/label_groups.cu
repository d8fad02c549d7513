// Label groups on CUDA: the stable sort (ATen), one single-block kernel, one summary copy to the host.
#include <ATen/ATen.h>

#include "cuda/kernels/label_groups.cuh"
#include "cuda/launch.cuh"
#include "aten/label_groups.h"

namespace fx {

LabelGroups label_groups_cuda(const char* op, const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self,
                              const at::Tensor& non_finite_flag) {
  LabelGroups g = allocate_label_groups(labels, ref_labels);
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  at::Tensor summary = at::zeros({cuda::kSummarySize}, g.storage64.options());
  if (non_finite_flag.defined()) summary.narrow(0, cuda::kNonFinite, 1).copy_(non_finite_flag);
  at::Tensor sorted, order;
  if (N > 0) std::tie(sorted, order) = sort_reference_labels(ref_labels);
  const at::Tensor labels64 = labels.to(at::kLong).contiguous();
  cuda::GroupArgs args{N > 0 ? sorted.data_ptr<int64_t>() : nullptr,
                       N > 0 ? order.data_ptr<int64_t>() : nullptr,
                       labels64.data_ptr<int64_t>(),
                       B,
                       N,
                       exclude_self,
                       g.anchor_gid,
                       g.ref_gid,
                       g.members,
                       g.group_start,
                       g.pair_offset,
                       summary.data_ptr<int64_t>()};
  const cuda::Launch l = cuda::label_groups_launch();
  cuda::label_groups_kernel<<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(args);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor host = summary.cpu();  // the one host sync of a mining call
  const int64_t* v = host.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(!v[cuda::kNonFinite], op, ": emb contains NaN or Inf, or squared norms too large for ",
                    "distances in its dtype (rescale the embeddings or use float64)");
  g.summary = {v[cuda::kNumPairs], v[cuda::kMaxPositives], v[cuda::kNoPairs]};
  return g;
}

}  // namespace fx
