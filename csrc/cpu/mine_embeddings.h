// The fused miners' common frame on the CPU: check, build the label groups, stop if no anchor can form
// a triplet (no distances then; the embeddings are still checked for NaN/Inf), else compute the
// distances and hand them to the miner.
#pragma once
#include <optional>

#include "checks.h"
#include "cpu/label_groups.h"
#include "cpu/pairwise_sq_dist.h"

namespace fx {

template <class Mine>  // Triplets mine(const at::Tensor& sq_dist, const LabelGroups& groups)
Triplets mine_embeddings_cpu(const char* op, const at::Tensor& emb, const at::Tensor& labels,
                             std::optional<double> margin, Mine mine) {
  check_fused_mining_inputs(op, emb, labels, margin);
  const LabelGroups g = label_groups_cpu(labels, labels, /*exclude_self=*/true);
  if (g.summary.num_pairs == 0) {
    check_finite_embeddings(op, "emb", emb);
    return empty_triplets(emb);
  }
  return mine(pairwise_sq_dist_cpu_impl(op, "emb", emb, "emb", std::nullopt), g);
}

}  // namespace fx
