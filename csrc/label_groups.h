// Labels -> identity groups, shared by the CPU and CUDA miners.
//
// Each anchor's positives are read straight from a CSR of the reference set grouped by label
// (members sorted by (label, index)), so no kernel scans a whole row to find them, and each
// anchor-positive pair gets a fixed slot `pair_offset[a] + q` (q = rank of the positive among the
// anchor's positives, by index). Kernels fill slots; an ordered compaction drops the empty ones.
//
// After one stable sort of the reference labels, each backend builds the groups in a single pass
// (cpu/label_groups.cpp: plain loops; cuda/label_groups.cu: one single-block kernel) and returns the
// few host-side numbers the launchers need in the same step: on a GPU every extra launch or host sync
// costs more than the mining kernel itself.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace fx {

// The host-side numbers of one mining call.
struct MiningSummary {
  int64_t num_pairs = 0;                 // total anchor-positive slots
  int64_t max_positives = 0;             // most positives of any anchor (CUDA shared-memory sizing)
  int64_t lonely_anchors = 0;            // anchors with positives but no negative (their slots stay empty)
  int64_t anchors_without_positive = 0;  // anchors with no positive at all
};

struct LabelGroups {
  at::Tensor anchor_gid;   // int32 [B]: group of each anchor's label in the reference set, -1 if absent
  at::Tensor ref_gid;      // int32 [N]: group of each reference element
  at::Tensor members;      // int32 [N]: reference indices sorted by (label, index)
  at::Tensor group_start;  // int32 [N + 1]: CSR offsets into members; group_start[G] = N
  at::Tensor pair_offset;  // int64 [B + 1]: exclusive scan of the number of positives per anchor
  MiningSummary summary;
};

// The kernels read distance rows with unit stride; a transposed view is copied once.
inline at::Tensor row_major(const at::Tensor& d) { return d.dim() == 2 && d.stride(1) != 1 ? d.contiguous() : d; }

// Validates the miner inputs; every message names `op`.
void check_mining_inputs(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                         const at::Tensor& ref_labels, bool exclude_self);

// Checks the inputs, then allocates the groups' tensors on sq_dist's device (anchor_gid filled with -1).
LabelGroups allocate_label_groups(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                                  const at::Tensor& ref_labels, bool exclude_self);

// The stable sort both backends start from: (sorted labels, permutation), both int64.
std::tuple<at::Tensor, at::Tensor> sort_reference_labels(const at::Tensor& ref_labels);

// Raised by both backends when row 0 or column 0 of the distances is not finite. A NaN/Inf embedding
// poisons its whole row and column of distances, so those O(B + N) values catch every one of them.
[[noreturn]] void fail_non_finite(const char* op);

// Backend implementations (check inputs, build groups, summarise; CUDA reads the summary back once).
LabelGroups label_groups_cpu(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                             const at::Tensor& ref_labels, bool exclude_self);
LabelGroups label_groups_cuda(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                              const at::Tensor& ref_labels, bool exclude_self);

// Keeps the slots whose negative is >= 0, in slot order.
std::tuple<at::Tensor, at::Tensor, at::Tensor> compact_triplets(const at::Tensor& a, const at::Tensor& p,
                                                                 const at::Tensor& n);


}  // namespace fx
