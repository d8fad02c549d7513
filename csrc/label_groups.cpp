#include "label_groups.h"

namespace fx {

static void check_labels(const char* op, const char* name, const at::Tensor& t, int64_t expected,
                         const at::Tensor& sq_dist) {
  TORCH_CHECK(t.dim() == 1, op, ": ", name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK(!at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()) &&
                  t.scalar_type() != at::kBool,
              op, ": ", name, " must be an integer tensor, got ", t.scalar_type());
  TORCH_CHECK(t.size(0) == expected, op, ": ", name, " has length ", t.size(0), " but the distance matrix needs ",
              expected);
  TORCH_CHECK(t.device() == sq_dist.device(), op, ": ", name, " is on ", t.device(), " but sq_dist is on ",
              sq_dist.device());
}

void check_mining_inputs(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                         const at::Tensor& ref_labels, bool exclude_self) {
  TORCH_CHECK(sq_dist.dim() == 2, op, ": sq_dist must be 2-D [B, N], got shape ", sq_dist.sizes());
  TORCH_CHECK(sq_dist.scalar_type() == at::kFloat || sq_dist.scalar_type() == at::kDouble, op,
              ": sq_dist must be float32 or float64, got ", sq_dist.scalar_type());
  check_labels(op, "labels", labels, sq_dist.size(0), sq_dist);
  check_labels(op, "ref_labels", ref_labels, sq_dist.size(1), sq_dist);
  TORCH_CHECK(!exclude_self || sq_dist.size(0) == sq_dist.size(1), op,
              ": exclude_self needs a square distance matrix, got ", sq_dist.sizes());
  TORCH_CHECK(sq_dist.size(1) < (int64_t(1) << 31) - 1, op, ": at most 2^31 - 2 reference elements");
}

LabelGroups allocate_label_groups(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                                  const at::Tensor& ref_labels, bool exclude_self) {
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self);
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  const auto int32 = at::TensorOptions().dtype(at::kInt).device(sq_dist.device());
  LabelGroups g;
  g.anchor_gid = at::full({B}, -1, int32);
  g.ref_gid = at::empty({N}, int32);
  g.members = at::empty({N}, int32);
  g.group_start = at::empty({N + 1}, int32);
  g.pair_offset = at::empty({B + 1}, int32.dtype(at::kLong));
  return g;
}

std::tuple<at::Tensor, at::Tensor> sort_reference_labels(const at::Tensor& ref_labels) {
  auto [sorted, order] = at::sort(ref_labels.to(at::kLong), /*stable=*/true, /*dim=*/0, /*descending=*/false);
  return {sorted.contiguous(), order.contiguous()};
}

void fail_non_finite(const char* op) {
  TORCH_CHECK_VALUE(false, op, ": the distances contain NaN or Inf (non-finite embeddings, or squared norms that overflow their dtype)");
  __builtin_unreachable();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> compact_triplets(const at::Tensor& a, const at::Tensor& p,
                                                                 const at::Tensor& n) {
  const at::Tensor keep = n.ge(0).nonzero().squeeze(1);
  return {a.index_select(0, keep), p.index_select(0, keep), n.index_select(0, keep)};
}


}  // namespace fx
