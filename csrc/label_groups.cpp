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
  TORCH_CHECK(sq_dist.size(1) < (int64_t(1) << 31), op, ": at most 2^31 - 1 reference elements");

  LabelGroups g;
  const auto int32 = at::TensorOptions().dtype(at::kInt).device(sq_dist.device());
  const int64_t B = labels.size(0);
  if (ref_labels.numel() == 0) {
    g.anchor_gid = at::full({B}, -1, int32);
    g.ref_gid = at::empty({0}, int32);
    g.members = at::empty({0}, int32);
    g.group_start = at::zeros({1}, int32);
    g.pair_offset = at::zeros({B + 1}, int32.dtype(at::kLong));
    return g;
  }
  const at::Tensor ref64 = ref_labels.to(at::kLong);
  auto [uniq, inverse, counts] = at::_unique2(ref64, /*sorted=*/true, /*return_inverse=*/true, /*return_counts=*/true);
  g.ref_gid = inverse.to(at::kInt);
  g.members = std::get<1>(at::sort(g.ref_gid, /*stable=*/true, /*dim=*/0, /*descending=*/false)).to(at::kInt);
  g.group_start = at::cat({at::zeros({1}, counts.options()), counts.cumsum(0)}).to(at::kInt);

  at::Tensor npos;
  if (exclude_self) {
    g.anchor_gid = g.ref_gid;
    npos = counts.index_select(0, inverse) - 1;
  } else {
    const at::Tensor lab64 = labels.to(at::kLong);
    const at::Tensor pos = at::searchsorted(uniq, lab64).clamp_max(uniq.size(0) - 1);
    const at::Tensor found = uniq.index_select(0, pos).eq(lab64);
    g.anchor_gid = at::where(found, pos, -1).to(at::kInt);
    npos = at::where(found, counts.index_select(0, pos), 0);
  }
  g.pair_offset = at::cat({at::zeros({1}, npos.options()), npos.cumsum(0)});
  return g;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> compact_triplets(const at::Tensor& a, const at::Tensor& p,
                                                                 const at::Tensor& n) {
  const at::Tensor keep = n.ge(0);
  return {a.masked_select(keep), p.masked_select(keep), n.masked_select(keep)};
}

void check_triplet_indices(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, int64_t bound, const at::Device& device) {
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"anchor", &anchor}, {"positive", &positive}, {"negative", &negative}};
  for (const auto& [name, t] : all) {
    TORCH_CHECK(t->dim() == 1, op, ": ", name, " indices must be 1-D, got shape ", t->sizes());
    TORCH_CHECK(t->scalar_type() == at::kLong, op, ": ", name, " indices must be int64, got ", t->scalar_type());
    TORCH_CHECK(t->size(0) == anchor.size(0), op, ": anchor/positive/negative lengths differ (", anchor.size(0),
                ", ", positive.size(0), ", ", negative.size(0), ")");
    TORCH_CHECK(t->device() == device, op, ": ", name, " indices are on ", t->device(), ", embeddings on ", device);
  }
  if (anchor.numel() == 0) return;
  // One reduction per index tensor keeps the kernels free of bounds checks (they index raw pointers).
  for (const auto& [name, t] : all) {
    auto [lo, hi] = at::aminmax(*t);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < bound, op, ": ", name,
                " indices must lie in [0, ", bound, ")");
  }
}

}  // namespace fx
