#include "aten/label_groups.h"

#include <ATen/ops/empty_cpu_dispatch.h>

#include "checks.h"

namespace fx {

void check_mining_inputs(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                         const at::Tensor& ref_labels, bool exclude_self, std::optional<double> margin) {
  check_dim(op, "sq_dist", sq_dist, 2, "[B, N]");
  TORCH_CHECK_TYPE(sq_dist.scalar_type() == at::kFloat || sq_dist.scalar_type() == at::kDouble, op,
                   ": sq_dist must be float32 or float64, got ", sq_dist.scalar_type());
  check_labels(op, "labels", labels, sq_dist.size(0), sq_dist, "sq_dist");
  check_labels(op, "ref_labels", ref_labels, sq_dist.size(1), sq_dist, "sq_dist");
  TORCH_CHECK_VALUE(!exclude_self || sq_dist.size(0) == sq_dist.size(1), op,
                    ": exclude_self needs a square distance matrix, got ", sq_dist.sizes());
  TORCH_CHECK_VALUE(sq_dist.size(1) < (int64_t(1) << 31) - 1, op, ": at most 2^31 - 2 reference elements");
  if (margin) check_margin(op, *margin, sq_dist.scalar_type());
}

void check_fused_mining_inputs(const char* op, const at::Tensor& emb, const at::Tensor& labels,
                               std::optional<double> margin) {
  check_embeddings(op, "emb", emb);
  check_labels(op, "labels", labels, emb.size(0), emb, "emb");
  TORCH_CHECK_VALUE(emb.size(0) < (int64_t(1) << 31) - 1, op, ": at most 2^31 - 2 embeddings");
  if (margin) check_margin(op, *margin, acc_type(emb.scalar_type()));
}

LabelGroups allocate_label_groups(const at::Tensor& labels, const at::Tensor& ref_labels) {
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  LabelGroups g;
  g.storage32 = empty_like_device({B + 3 * N + 1}, labels, at::kInt);
  g.storage64 = empty_like_device({B + 1}, labels, at::kLong);
  g.anchor_gid = g.storage32.data_ptr<int32_t>();
  g.ref_gid = g.anchor_gid + B;
  g.members = g.ref_gid + N;
  g.group_start = g.members + N;
  g.pair_offset = g.storage64.data_ptr<int64_t>();
  return g;
}

std::tuple<at::Tensor, at::Tensor> sort_reference_labels(const at::Tensor& ref_labels) {
  auto [sorted, order] = at::sort(ref_labels.to(at::kLong), /*stable=*/true, /*dim=*/0, /*descending=*/false);
  return {sorted.contiguous(), order.contiguous()};
}

void fail_non_finite(const char* op) {
  TORCH_CHECK_VALUE(false, op,
                    ": sq_dist contains NaN or Inf (non-finite embeddings, or squared norms that "
                    "overflow their dtype)");
  __builtin_unreachable();
}

Triplets compact_triplets(const at::Tensor& a, const at::Tensor& p, const at::Tensor& n) {
  const at::Tensor keep = n.ge(0).nonzero().squeeze(1);
  return {a.index_select(0, keep), p.index_select(0, keep), n.index_select(0, keep)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> compact_triplets_into(const at::Tensor& a,
                                                                                 const at::Tensor& p,
                                                                                 const at::Tensor& n, int64_t size) {
  const int64_t S = n.size(0);
  const auto opts = n.options().dtype(at::kLong);
  if (S == 0) {
    const at::Tensor none = at::full({size}, -1, opts);
    return {none, none.clone(), none.clone(), at::zeros({}, opts)};
  }
  const at::Tensor kept_through = n.ge(0).to(at::kLong).cumsum(0);  // kept slots up to and including each
  const at::Tensor found = kept_through.select(0, S - 1).clone();
  // Output j holds the (j + 1)-th kept slot: the first slot whose running count reaches j + 1.
  const at::Tensor want = at::arange(1, size + 1, opts);
  const at::Tensor src = at::searchsorted(kept_through, want).clamp_max_(S - 1);
  const at::Tensor valid = want.le(found);
  const auto take = [&](const at::Tensor& t) { return at::where(valid, t.index_select(0, src), -1); };
  return {take(a), take(p), take(n), found};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pad_triplets(const Triplets& t, int64_t capacity) {
  // Mined triplets all have a negative >= 0, so the compaction keeps every one: the first `capacity`,
  // then -1. (The CPU's capacity= path runs compact_triplets_into through here, which tests it.)
  const auto& [a, p, n] = t;
  return compact_triplets_into(a, p, n, capacity);
}

Triplets empty_triplets(const at::Tensor& like) {
  return {empty_like_device({0}, like, at::kLong), empty_like_device({0}, like, at::kLong),
          empty_like_device({0}, like, at::kLong)};
}

at::Tensor empty_like_device(at::IntArrayRef size, const at::Tensor& like, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().dtype(dtype).device(like.device());
  // On the CPU straight to the allocator: a dispatched at::empty is a profiler event and an overhead
  // that, at small B, rivals the mining itself.
  return like.is_cpu() ? at::cpu::empty(size, opts) : at::empty(size, opts);
}

}  // namespace fx
