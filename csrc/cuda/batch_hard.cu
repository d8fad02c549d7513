// batch_hard_triplets, its capacity= twin and batch_hard_from_sq_dist on CUDA.
//
// Host syncs: one per call without capacity= (the label summary, which also carries the NaN/Inf flag),
// none with it. The kernel writes one slot per anchor (-1 when it has no pair); the compaction is a scan
// and a binary search (ATen), sized by the summary or by capacity, never by nonzero.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/batch_hard.cuh"
#include "cuda/launch.cuh"
#include "cuda/mine_embeddings.cuh"
#include "cuda/label_groups.h"
#include "shared/triplets.h"

namespace fx {
namespace {

// (anchor, positive, negative) per anchor, -1 for an anchor without a pair; nothing read back.
Triplets batch_hard_slots(const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                          const at::Tensor& non_finite) {
  const int64_t B = dist.size(0);
  auto opts = dist.options().dtype(at::kLong);
  at::Tensor a = at::arange(B, opts), p = at::empty({B}, opts), n = at::empty({B}, opts);
  if (B == 0) return {a, p, n};
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "batch_hard_cuda", [&] {
    const cuda::Launch l = cuda::batch_hard_launch(B);
    cuda::batch_hard_kernel<scalar_t><<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(
        dist.data_ptr<scalar_t>(), dist.stride(0), dist.size(1), g.anchor_gid, g.ref_gid, g.pair_offset, exclude_self,
        p.data_ptr<int64_t>(), n.data_ptr<int64_t>(), non_finite.defined() ? non_finite.data_ptr<int>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {a, p, n};
}

// The anchors with a pair, in order: the summary (read) says how many.
Triplets keep_paired(const Triplets& slots, const LabelGroups& g) {
  const auto& [a, p, n] = slots;
  const int64_t paired = a.size(0) - g.summary.anchors_without_pairs;
  if (paired == a.size(0)) return slots;
  auto [ka, kp, kn, found] = compact_triplets_into(a, p, n, paired);
  return {ka, kp, kn};
}

Triplets batch_hard_from_sq_dist_cuda(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                      bool exclude_self) {
  const char* op = "batch_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, std::nullopt);
  const c10::cuda::CUDAGuard guard(sq_dist.device());
  LabelGroups g = label_groups_cuda_async(labels, ref_labels, exclude_self);
  const at::Tensor non_finite = at::zeros({1}, sq_dist.options().dtype(at::kInt));
  // Mined before the read: only the kernel sees a NaN/Inf distance, and the read carries its flag.
  const Triplets slots = batch_hard_slots(row_major(sq_dist), g, exclude_self, non_finite);
  note_in_summary(g, SummaryNote::kNonFinite, non_finite);
  if (read_label_summary(g).non_finite) fail_non_finite(op);
  if (g.summary.num_pairs == 0) return empty_triplets(sq_dist);
  return keep_paired(slots, g);
}

Triplets batch_hard_triplets_cuda(const at::Tensor& emb, const at::Tensor& labels) {
  return cuda::mine_embeddings("batch_hard_triplets", emb, labels, std::nullopt,
                               [&](const at::Tensor& d, const LabelGroups& g) {
                                 return keep_paired(batch_hard_slots(d, g, true, at::Tensor()), g);
                               });
}

// capacity=: no host sync. NaN/Inf embeddings set the device's error bit (fx.check_errors()).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> batch_hard_triplets_padded_cuda(const at::Tensor& emb,
                                                                                           const at::Tensor& labels,
                                                                                           int64_t capacity) {
  const char* op = "batch_hard_triplets";
  check_fused_mining_inputs(op, emb, labels, std::nullopt);
  check_capacity(op, capacity);
  const c10::cuda::CUDAGuard guard(emb.device());
  const cuda::FusedInputs in = cuda::fused_inputs(emb);
  const LabelGroups g = label_groups_cuda_async(labels, labels, true, in.norms, /*to_error_word=*/true);
  const auto [a, p, n] = batch_hard_slots(cuda::fused_distances(in), g, true, at::Tensor());
  return compact_triplets_into(a, p, n, capacity);
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("batch_hard_from_sq_dist", &batch_hard_from_sq_dist_cuda);
  m.impl("batch_hard_triplets", &batch_hard_triplets_cuda);
  m.impl("batch_hard_triplets_padded", &batch_hard_triplets_padded_cuda);
}

}  // namespace fx
