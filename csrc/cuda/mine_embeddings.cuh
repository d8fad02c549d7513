// The fused miners' common front on CUDA: the checks, the embeddings packed in the accumulation dtype
// with their squared norms computed once (checked for NaN/overflow by the label-groups kernel, and used by
// the distances), and the distances themselves.
#pragma once
#include "cuda/launch.cuh"
#include "cuda/label_groups.h"
#include "shared/triplets.h"
#include "cuda/pairwise_sq_dist.h"
#include "shared/tensors.h"

namespace fx::cuda {

struct FusedInputs {
  at::Tensor packed;  // emb in the accumulation dtype, packed
  at::Tensor norms;   // its squared norms (label_groups_cuda* checks them for NaN/Inf and overflow)
};

inline FusedInputs fused_inputs(const at::Tensor& emb) {
  FusedInputs in;
  in.packed = packed_as(emb, acc_type(emb.scalar_type()));
  in.norms = in.packed.square().sum(1);
  return in;
}

// The B x B squared distances (pairwise_sq_dist's, bit for bit) from the inputs' norms.
inline at::Tensor fused_distances(const FusedInputs& in) {
  PairwiseParts parts = symmetric_gram(in.packed, in.norms);
  return finish_distances_cuda(parts);
}

// The one-sync frame of the fused miners that need nothing mined before the read: groups and the NaN
// flag read together, then (if some anchor can form a triplet) the distances and `mine`.
template <class Mine>  // Triplets mine(const at::Tensor& sq_dist, const LabelGroups& groups)
Triplets mine_embeddings(const char* op, const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                         Mine mine) {
  check_fused_mining_inputs(op, emb, labels, margin);
  const c10::cuda::CUDAGuard guard(emb.device());
  const FusedInputs in = fused_inputs(emb);
  const LabelGroups g = label_groups_cuda(op, labels, labels, /*exclude_self=*/true, in.norms);
  if (g.summary.num_pairs == 0) return empty_triplets(emb);
  return mine(fused_distances(in), g);
}

}  // namespace fx::cuda
