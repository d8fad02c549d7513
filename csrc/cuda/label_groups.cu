// Label groups on CUDA: the stable sort (ATen) and one single-block kernel, with the summary left on the
// device; read_label_summary copies it (and what launchers added to it) to the host in one sync.
#include <ATen/ATen.h>

#include <limits>
#include <tuple>

#include "cuda/error_word.h"
#include "cuda/kernels/label_groups.cuh"
#include "cuda/launch.cuh"
#include "cuda/label_groups.h"

namespace fx {

namespace {

// The stable sort the groups start from: (sorted labels, permutation), both int64.
std::tuple<at::Tensor, at::Tensor> sort_reference_labels(const at::Tensor& ref_labels) {
  auto [sorted, order] = at::sort(ref_labels.to(at::kLong), /*stable=*/true, /*dim=*/0, /*descending=*/false);
  return {sorted.contiguous(), order.contiguous()};
}

// The largest squared norm whose distances ||x||^2 + ||y||^2 - 2<x, y> cannot overflow `dtype` (max / 4):
// the label-groups kernel flags a batch with a larger (or NaN/Inf) norm.
double safe_norm_limit(at::ScalarType dtype) {
  return dtype == at::kDouble ? std::numeric_limits<double>::max() / 4
                              : static_cast<double>(std::numeric_limits<float>::max()) / 4;
}

}  // namespace

LabelGroups label_groups_cuda_async(const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self,
                                    const at::Tensor& norms, bool to_error_word) {
  LabelGroups g = allocate_label_groups(labels, ref_labels);
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  g.device_summary = at::zeros({cuda::kSummarySize}, g.storage64.options());
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
                       g.device_summary.data_ptr<int64_t>()};
  if (norms.defined() && B > 0) {
    if (norms.scalar_type() == at::kDouble) {
      args.norms_d = norms.data_ptr<double>();
    } else {
      args.norms_f = norms.data_ptr<float>();
    }
    args.norm_limit = safe_norm_limit(norms.scalar_type());
    if (to_error_word) args.error_word = cuda::error_word_ptr(norms.device());
  }
  const cuda::Launch l = cuda::label_groups_launch();
  cuda::label_groups_kernel<<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(args);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return g;
}

void note_in_summary(const LabelGroups& g, SummaryNote note, const at::Tensor& value) {
  const int64_t slot = note == SummaryNote::kNonFinite ? cuda::kNonFinite : cuda::kKept;
  g.device_summary.narrow(0, slot, 1).copy_(value.reshape({1}));
}

SummaryRead read_label_summary(LabelGroups& g) {
  const at::Tensor host = g.device_summary.cpu();  // the one host sync of a mining call
  const int64_t* v = host.data_ptr<int64_t>();
  g.summary = {v[cuda::kNumPairs], v[cuda::kMaxPositives], v[cuda::kNoPairs]};
  return {v[cuda::kNonFinite] != 0, v[cuda::kKept]};
}

LabelGroups label_groups_cuda(const char* op, const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self,
                              const at::Tensor& norms) {
  LabelGroups g = label_groups_cuda_async(labels, ref_labels, exclude_self, norms);
  if (read_label_summary(g).non_finite) fail_embeddings_unsafe(op);
  return g;
}

void fail_embeddings_unsafe(const char* op) {
  TORCH_CHECK_VALUE(false, op, ": emb contains NaN or Inf, or squared norms too large for ",
                    "distances in its dtype (rescale the embeddings or use float64)");
  __builtin_unreachable();
}

}  // namespace fx
