// Device-generic preprocessing shared by the CPU and CUDA miners: labels -> identity groups.
//
// Each anchor's positives are read straight from a CSR of the reference set grouped by label
// (members sorted by (label, index)), so no kernel scans a whole row to find them, and each
// anchor-positive pair gets a fixed slot `pair_offset[a] + q` (q = rank of the positive among the
// anchor's positives, by index). Kernels fill slots; an ordered compaction drops the empty ones.
//
// Everything here is built from ATen sorts and scans without a host sync, and the few scalars the
// launchers need (sizes, "is compaction needed", a NaN/Inf flag) come back in ONE device-to-host copy:
// on a GPU each extra sync costs more than the mining kernel itself.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace fx {

struct LabelGroups {
  at::Tensor anchor_gid;   // int32 [B]: group of each anchor's label in the reference set, -1 if absent
  at::Tensor ref_gid;      // int32 [N]: group of each reference element
  at::Tensor members;      // int32 [N]: reference indices sorted by (label, index)
  at::Tensor group_start;  // int32 [N + 1]: CSR offsets into members; entries past the last group hold N
  at::Tensor pair_offset;  // int64 [B + 1]: exclusive scan of the number of positives per anchor
  at::Tensor lonely;       // int64 [B]: 1 where the anchor has positives but no negative
};

// Validates the miner inputs (naming `op` in every message) and builds the groups.
LabelGroups make_label_groups(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                              const at::Tensor& ref_labels, bool exclude_self);

// The host-side numbers of one mining call, read back together.
struct MiningSummary {
  int64_t num_pairs;        // total anchor-positive slots
  int64_t max_positives;    // most positives of any anchor (CUDA shared-memory sizing)
  int64_t lonely_anchors;   // anchors with positives but no negative (their slots stay empty)
  int64_t anchors_without_positive;
};

// One device-to-host copy; raises if the distance matrix holds NaN/Inf. A NaN or Inf embedding
// poisons its whole row and column of distances, so checking row 0 and column 0 (O(B + N), not
// O(B N)) catches every non-finite embedding on either side.
MiningSummary summarize(const char* op, const at::Tensor& sq_dist, const LabelGroups& g);

// Keeps the slots whose negative is >= 0, in slot order.
std::tuple<at::Tensor, at::Tensor, at::Tensor> compact_triplets(const at::Tensor& a, const at::Tensor& p,
                                                                 const at::Tensor& n);

// Index tensors of mined triplets: int64, 1-D, equal length, on `device`. Their range is the caller's
// contract (the Python wrapper checks user-supplied indices); checking here would cost a host sync.
void check_triplet_indices(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, const at::Device& device);

}  // namespace fx
