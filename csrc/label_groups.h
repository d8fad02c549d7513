// Device-generic preprocessing shared by the CPU and CUDA miners: labels -> identity groups.
//
// Each anchor's positives are read straight from a CSR of the reference set grouped by label
// (members sorted by (group, index)), so no kernel scans a whole row to find them, and each
// anchor-positive pair gets a fixed slot `pair_offset[a] + q` (q = rank of the positive among the
// anchor's positives, by index). Kernels fill slots; a final ordered compaction drops empty ones.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace fx {

struct LabelGroups {
  at::Tensor anchor_gid;   // int32 [B]: group of each anchor's label in the reference set, -1 if absent
  at::Tensor ref_gid;      // int32 [N]: group of each reference element
  at::Tensor members;      // int32 [N]: reference indices sorted by (group, index)
  at::Tensor group_start;  // int32 [G + 1]: CSR offsets into members
  at::Tensor pair_offset;  // int64 [B + 1]: exclusive scan of the number of positives per anchor
  int64_t num_pairs = 0;   // pair_offset[B] (read back to the host once)
};

// Validates the miner inputs (naming `op` in every message) and builds the groups.
LabelGroups make_label_groups(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                              const at::Tensor& ref_labels, bool exclude_self);

// Keeps the slots whose negative is >= 0, in slot order.
std::tuple<at::Tensor, at::Tensor, at::Tensor> compact_triplets(const at::Tensor& a, const at::Tensor& p,
                                                                 const at::Tensor& n);

// Index tensors of mined triplets: int64, 1-D, equal length, on `device`, in [0, bound).
void check_triplet_indices(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, int64_t bound, const at::Device& device);

}  // namespace fx
