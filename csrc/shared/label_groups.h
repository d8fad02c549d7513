// Labels -> identity groups: the arrays both backends' miners read.
//
// Each anchor's positives are read straight from a CSR of the reference set grouped by label
// (members sorted by (label, index)), so no kernel scans a whole row to find them, and each
// anchor-positive pair gets a fixed slot `pair_offset[a] + q` (q = rank of the positive among the
// anchor's positives, by index). Anchors that cannot form a triplet (no positive, or no negative) get
// no slot. Kernels fill slots; an ordered compaction drops the ones a margin or "drop" leaves empty.
//
// After one stable sort of the reference labels, each backend builds the groups in a single pass
// (cpu/label_groups.cpp: plain loops; cuda/label_groups.cu: one single-block kernel) and returns the
// few host-side numbers the launchers need in the same step: on a GPU every extra launch or host sync
// costs more than the mining kernel itself. The groups depend on the labels alone, so the fused miners
// build them before any distance: a batch with no possible triplet never computes its B x B matrix.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace fx {

// The host-side numbers of one mining call.
struct MiningSummary {
  int64_t num_pairs = 0;              // total anchor-positive slots
  int64_t max_positives = 0;          // most slots of any anchor (CUDA shared-memory sizing)
  int64_t anchors_without_pairs = 0;  // anchors with no positive or no negative (they yield nothing)
};

// Pointers into two buffers on the labels' device (one allocation per integer width: every allocation
// is an allocator call and a profiler event on the hot path).
struct LabelGroups {
  at::Tensor storage32, storage64;  // own the arrays below
  int32_t* anchor_gid;              // [B]: group of each anchor's label in the reference set, -1 if absent
  int32_t* ref_gid;                 // [N]: group of each reference element
  int32_t* members;                 // [N]: reference indices sorted by (label, index)
  int32_t* group_start;             // [N + 1]: CSR offsets into members; group_start[G] = N
  int64_t* pair_offset;             // [B + 1]: exclusive scan of the number of slots per anchor
  MiningSummary summary;            // CUDA: valid once read_label_summary (cuda/label_groups.h) has run
  at::Tensor device_summary;        // CUDA: int64 summary on the device (cuda/kernels/label_groups.cuh)
};

// Allocates the groups' arrays on labels' device (uninitialised: the builders write every entry).
LabelGroups allocate_label_groups(const at::Tensor& labels, const at::Tensor& ref_labels);

}  // namespace fx
