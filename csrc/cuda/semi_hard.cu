// semi_hard_triplets, its capacity= twin and semi_hard_from_sq_dist on CUDA.
//
// Host syncs: one per call without capacity= (the label summary, which also carries the NaN/Inf flag and,
// where the output size depends on mining, the kept count), none with it. When the size depends on what
// is mined (a margin, "drop", or a matrix whose NaN/Inf flag only the mining pass sees), the kernel runs
// twice: a counting pass before the read, then an ordered fill into exactly the kept slots.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <optional>

#include "cuda/kernels/semi_hard.cuh"
#include "cuda/launch.cuh"
#include "cuda/mine_embeddings.cuh"
#include "cuda/label_groups.h"
#include "shared/triplets.h"

namespace fx {
namespace {

struct Rule {
  bool exclude_self;
  std::optional<double> margin;
  bool squared, drop;
  bool selective() const { return margin.has_value() || drop; }  // some slots may stay empty
};

struct Outputs {
  at::Tensor a, p, n;
};

// One launch of the kernel over every anchor of a row-major matrix. `max_positives`: the summary's (read)
// or std::nullopt (not read: the largest chunk). Null outputs: a counting pass.
void launch_semi_hard(const at::Tensor& dist, const LabelGroups& g, const Rule& rule,
                      std::optional<int64_t> max_positives, const Outputs* out, bool ordered, int64_t capacity,
                      const at::Tensor& out_base, const at::Tensor& kept, const at::Tensor& non_finite) {
  const int64_t B = dist.size(0);
  if (B == 0) return;  // no block to launch
  const int64_t positives = max_positives.value_or(cuda::kSemiHardMaxChunk);
  cuda::SemiHardArgs args{dist.stride(0),
                          dist.size(1),
                          g.anchor_gid,
                          g.ref_gid,
                          g.members,
                          g.group_start,
                          g.pair_offset,
                          rule.exclude_self,
                          rule.margin.has_value(),
                          rule.squared,
                          rule.drop,
                          cuda::semi_hard_chunk(positives),
                          out ? out->a.data_ptr<int64_t>() : nullptr,
                          out ? out->p.data_ptr<int64_t>() : nullptr,
                          out ? out->n.data_ptr<int64_t>() : nullptr,
                          non_finite.defined() ? non_finite.data_ptr<int>() : nullptr};
  args.ordered = ordered;
  args.capacity = capacity;
  args.out_base = out_base.defined() ? out_base.data_ptr<int64_t>() : nullptr;
  args.kept = kept.defined() ? kept.data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "semi_hard_cuda", [&] {
    const cuda::Launch l = cuda::semi_hard_launch(B, positives, sizeof(scalar_t));
    cuda::semi_hard_kernel<scalar_t><<<cuda::grid_of(l), cuda::block_of(l), l.smem, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), static_cast<scalar_t>(rule.margin.value_or(0)), args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

Outputs filled(int64_t size, const at::Tensor& like) {
  const auto opts = like.options().dtype(at::kLong);
  return {at::full({size}, -1, opts), at::full({size}, -1, opts), at::full({size}, -1, opts)};
}

// Counting pass: kept triplets per anchor, int64 [B] (no host number needed).
at::Tensor count_kept(const at::Tensor& dist, const LabelGroups& g, const Rule& rule, const at::Tensor& non_finite) {
  const at::Tensor kept = at::zeros({dist.size(0)}, dist.options().dtype(at::kLong));
  launch_semi_hard(dist, g, rule, std::nullopt, nullptr, true, INT64_MAX, at::Tensor(), kept, non_finite);
  return kept;
}

// Ordered fill of the kept triplets into `size` slots (-1 past them), anchors starting at the exclusive
// scan of `kept`.
Outputs fill_kept(const at::Tensor& dist, const LabelGroups& g, const Rule& rule, std::optional<int64_t> max_positives,
                  const at::Tensor& kept, int64_t size) {
  Outputs out = filled(size, dist);
  if (size > 0) {
    const at::Tensor base = kept.cumsum(0) - kept;
    launch_semi_hard(dist, g, rule, max_positives, &out, true, size, base, at::Tensor(), at::Tensor());
  }
  return out;
}

// One sync: the counting pass, then the read (summary, kept count, NaN/Inf flag), then the exact fill.
// `non_finite`: the counting pass's NaN/Inf flag (a given matrix), or undefined when the label-groups
// kernel checked the embeddings' norms into the summary (the fused miner).
Triplets count_read_fill(const char* op, const at::Tensor& dist, LabelGroups& g, const Rule& rule,
                         const at::Tensor& non_finite) {
  const at::Tensor kept = count_kept(dist, g, rule, non_finite);
  note_in_summary(g, SummaryNote::kKept, kept.sum());
  if (non_finite.defined()) note_in_summary(g, SummaryNote::kNonFinite, non_finite);
  const SummaryRead read = read_label_summary(g);
  if (read.non_finite) {
    if (!non_finite.defined()) fail_embeddings_unsafe(op);
    fail_non_finite(op);
  }
  const Outputs out = fill_kept(dist, g, rule, g.summary.max_positives, kept, read.kept);
  return {out.a, out.p, out.n};
}

Triplets semi_hard_from_sq_dist_cuda(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                     bool exclude_self, std::optional<double> margin, bool squared,
                                     bool drop_fallback) {
  const char* op = "semi_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, margin);
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  LabelGroups g = label_groups_cuda_async(labels, ref_labels, exclude_self);
  const at::Tensor non_finite = at::zeros({1}, sq_dist.options().dtype(at::kInt));
  // Only the mining pass sees a NaN/Inf distance, so it counts before the one read.
  return count_read_fill(op, row_major(sq_dist), g, {exclude_self, margin, squared, drop_fallback}, non_finite);
}

Triplets semi_hard_triplets_cuda(const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                                 bool squared, bool drop_fallback) {
  const char* op = "semi_hard_triplets";
  const Rule rule{true, margin, squared, drop_fallback};
  if (!rule.selective()) {  // every slot is filled: read first, and skip the distances when nothing can be mined
    return cuda::mine_embeddings(op, emb, labels, margin, [&](const at::Tensor& d, const LabelGroups& g) {
      const auto opts = d.options().dtype(at::kLong);
      const int64_t slots = g.summary.num_pairs;
      Outputs out{at::empty({slots}, opts), at::empty({slots}, opts), at::empty({slots}, opts)};  // all written
      launch_semi_hard(d, g, rule, g.summary.max_positives, &out, false, INT64_MAX, at::Tensor(), at::Tensor(),
                       at::Tensor());
      return Triplets{out.a, out.p, out.n};
    });
  }
  check_fused_mining_inputs(op, emb, labels, margin);
  const c10::cuda::CUDAGuard guard(emb.device());
  const cuda::FusedInputs in = cuda::fused_inputs(emb);
  LabelGroups g = label_groups_cuda_async(labels, labels, true, in.norms);
  // The distances before the read (the count needs them), even for a batch that mines nothing.
  return count_read_fill(op, cuda::fused_distances(in), g, rule, at::Tensor());
}

// capacity=: no host sync. NaN/Inf embeddings set the device's error bit (fx.check_errors()).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> semi_hard_triplets_padded_cuda(
    const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin, bool squared, bool drop_fallback,
    int64_t capacity) {
  const char* op = "semi_hard_triplets";
  check_fused_mining_inputs(op, emb, labels, margin);
  check_capacity(op, capacity);
  const c10::cuda::CUDAGuard guard(emb.device());
  const Rule rule{true, margin, squared, drop_fallback};
  const cuda::FusedInputs in = cuda::fused_inputs(emb);
  LabelGroups g = label_groups_cuda_async(labels, labels, true, in.norms, /*to_error_word=*/true);
  const at::Tensor dist = cuda::fused_distances(in);
  if (rule.selective()) {
    const at::Tensor kept = count_kept(dist, g, rule, at::Tensor());
    const Outputs out = fill_kept(dist, g, rule, std::nullopt, kept, capacity);
    return {out.a, out.p, out.n, kept.sum()};
  }
  Outputs out = filled(capacity, dist);
  if (capacity > 0)
    launch_semi_hard(dist, g, rule, std::nullopt, &out, false, capacity, at::Tensor(), at::Tensor(), at::Tensor());
  return {out.a, out.p, out.n, g.storage64.select(0, emb.size(0)).clone()};  // pair_offset[B]: every slot
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("semi_hard_from_sq_dist", &semi_hard_from_sq_dist_cuda);
  m.impl("semi_hard_triplets", &semi_hard_triplets_cuda);
  m.impl("semi_hard_triplets_padded", &semi_hard_triplets_padded_cuda);
}

}  // namespace fx
