// The fused miners' common frame on CUDA: check, build the label groups (their one host sync also
// carries the embeddings' NaN/Inf flag), stop if no anchor can form a triplet (no distances then), else
// compute the distances and hand them to the miner.
#pragma once
#include <optional>

#include "cuda/launch.cuh"
#include "aten/label_groups.h"
#include "aten/pairwise_sq_dist.h"

namespace fx::cuda {

template <class Mine>  // Triplets mine(const at::Tensor& sq_dist, const LabelGroups& groups)
Triplets mine_embeddings(const char* op, const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                         Mine mine) {
  check_fused_mining_inputs(op, emb, labels, margin);
  const c10::cuda::CUDAGuard guard(emb.device());
  const LabelGroups g = label_groups_cuda(op, labels, labels, /*exclude_self=*/true, embeddings_unsafe_flag(emb));
  if (g.summary.num_pairs == 0) return empty_triplets(emb);
  return mine(pairwise_sq_dist_cuda_impl(op, "emb", emb, "emb", std::nullopt), g);
}

}  // namespace fx::cuda
