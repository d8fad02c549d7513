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

LabelGroups make_label_groups(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                              const at::Tensor& ref_labels, bool exclude_self) {
  TORCH_CHECK(sq_dist.dim() == 2, op, ": sq_dist must be 2-D [B, N], got shape ", sq_dist.sizes());
  TORCH_CHECK(sq_dist.scalar_type() == at::kFloat || sq_dist.scalar_type() == at::kDouble, op,
              ": sq_dist must be float32 or float64, got ", sq_dist.scalar_type());
  check_labels(op, "labels", labels, sq_dist.size(0), sq_dist);
  check_labels(op, "ref_labels", ref_labels, sq_dist.size(1), sq_dist);
  TORCH_CHECK(!exclude_self || sq_dist.size(0) == sq_dist.size(1), op,
              ": exclude_self needs a square distance matrix, got ", sq_dist.sizes());
  TORCH_CHECK(sq_dist.size(1) < (int64_t(1) << 31) - 1, op, ": at most 2^31 - 2 reference elements");

  const int64_t B = labels.size(0), N = ref_labels.size(0);
  const auto int32 = at::TensorOptions().dtype(at::kInt).device(sq_dist.device());
  const auto int64 = int32.dtype(at::kLong);
  LabelGroups g;
  if (N == 0) {
    g.anchor_gid = at::full({B}, -1, int32);
    g.ref_gid = g.members = at::empty({0}, int32);
    g.group_start = at::zeros({1}, int32);
    g.pair_offset = at::zeros({B + 1}, int64);
    g.lonely = at::zeros({B}, int64);
    return g;
  }
  // Stable sort of the reference labels: members in (label, index) order, groups = runs of equal labels.
  auto [sorted, order] = at::sort(ref_labels.to(at::kLong), /*stable=*/true, /*dim=*/0, /*descending=*/false);
  g.members = order.to(at::kInt);
  at::Tensor starts_run = at::ones({N}, int64);
  if (N > 1) starts_run.slice(0, 1).copy_(sorted.slice(0, 1).ne(sorted.slice(0, 0, -1)));
  const at::Tensor gid_sorted = starts_run.cumsum(0) - 1;  // int64 [N]
  g.ref_gid = at::empty({N}, int64).scatter_(0, order, gid_sorted).to(at::kInt);
  // First position of each group (positions are increasing, so the minimum over the group).
  g.group_start = at::full({N + 1}, N, int64)
                      .scatter_reduce_(0, gid_sorted, at::arange(N, int64), "amin", /*include_self=*/true);
  const at::Tensor group_size = g.group_start.slice(0, 1) - g.group_start.slice(0, 0, -1);  // [N], valid for gids

  at::Tensor anchor_gid, found;
  if (exclude_self) {
    anchor_gid = g.ref_gid.to(at::kLong);
    found = at::ones({B}, int64.dtype(at::kBool));
  } else {
    const at::Tensor lab64 = labels.to(at::kLong);
    const at::Tensor pos = at::searchsorted(sorted, lab64).clamp_max(N - 1);
    found = sorted.index_select(0, pos).eq(lab64);
    anchor_gid = at::where(found, gid_sorted.index_select(0, pos), -1);
  }
  const at::Tensor size = at::where(found, group_size.index_select(0, anchor_gid.clamp_min(0)), 0);
  const at::Tensor npos = exclude_self ? size - 1 : size;
  g.anchor_gid = anchor_gid.to(at::kInt);
  g.pair_offset = at::cat({at::zeros({1}, int64), npos.cumsum(0)});
  g.lonely = (npos.gt(0) & size.eq(N)).to(at::kLong);
  g.group_start = g.group_start.to(at::kInt);
  return g;
}

MiningSummary summarize(const char* op, const at::Tensor& sq_dist, const LabelGroups& g) {
  const int64_t B = sq_dist.size(0), N = sq_dist.size(1);
  const at::Tensor npos = g.pair_offset.slice(0, 1) - g.pair_offset.slice(0, 0, -1);
  at::Tensor finite = at::ones({}, g.pair_offset.options().dtype(at::kLong));
  if (B > 0 && N > 0) {
    finite = at::isfinite(sq_dist.select(1, 0)).all().logical_and(at::isfinite(sq_dist.select(0, 0)).all())
                 .to(at::kLong);
  }
  const at::Tensor zero = at::zeros({}, npos.options());
  const at::Tensor packed = at::stack({g.pair_offset[-1], B ? npos.max() : zero, B ? g.lonely.sum() : zero,
                                       B ? npos.eq(0).sum() : zero, finite})
                                .cpu();
  const int64_t* v = packed.data_ptr<int64_t>();
  TORCH_CHECK(v[4] == 1, op, ": the distances contain NaN or Inf (are the embeddings finite?)");
  return {v[0], v[1], v[2], v[3]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> compact_triplets(const at::Tensor& a, const at::Tensor& p,
                                                                 const at::Tensor& n) {
  const at::Tensor keep = n.ge(0).nonzero().squeeze(1);
  return {a.index_select(0, keep), p.index_select(0, keep), n.index_select(0, keep)};
}

void check_triplet_indices(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, const at::Device& device) {
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"anchor", &anchor}, {"positive", &positive}, {"negative", &negative}};
  for (const auto& [name, t] : all) {
    TORCH_CHECK(t->dim() == 1, op, ": ", name, " indices must be 1-D, got shape ", t->sizes());
    TORCH_CHECK(t->scalar_type() == at::kLong, op, ": ", name, " indices must be int64, got ", t->scalar_type());
    TORCH_CHECK(t->size(0) == anchor.size(0), op, ": anchor/positive/negative lengths differ (", anchor.size(0),
                ", ", positive.size(0), ", ", negative.size(0), ")");
    TORCH_CHECK(t->device() == device, op, ": ", name, " indices are on ", t->device(), ", embeddings on ", device);
  }
}

}  // namespace fx
