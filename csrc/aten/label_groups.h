// Labels -> identity groups, shared by the CPU and CUDA miners.
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

#include <optional>
#include <tuple>

namespace fx {

using Triplets = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

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
  MiningSummary summary;            // CUDA: valid once read_label_summary has run
  at::Tensor device_summary;        // CUDA: int64 summary on the device (cuda/kernels/label_groups.cuh)
};

// The kernels read distance rows with unit stride (any row stride, including 0); other layouts are
// copied once.
inline at::Tensor row_major(const at::Tensor& d) { return d.dim() == 2 && d.stride(1) != 1 ? d.contiguous() : d; }

// Validates the inputs of the *_from_sq_dist ops; every message names `op`. `margin_dtype`: the dtype
// the margin is compared in (the matrix's).
void check_mining_inputs(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                         const at::Tensor& ref_labels, bool exclude_self, std::optional<double> margin);

// Validates the inputs of the fused miners (embeddings in, triplets out).
void check_fused_mining_inputs(const char* op, const at::Tensor& emb, const at::Tensor& labels,
                               std::optional<double> margin);

// Allocates the groups' arrays on labels' device (uninitialised: the builders write every entry).
LabelGroups allocate_label_groups(const at::Tensor& labels, const at::Tensor& ref_labels);

// The stable sort both backends start from: (sorted labels, permutation), both int64.
std::tuple<at::Tensor, at::Tensor> sort_reference_labels(const at::Tensor& ref_labels);

// Raised by the *_from_sq_dist ops when a distance they read is NaN or Inf.
[[noreturn]] void fail_non_finite(const char* op);

// Backend implementations (build groups, summarise). The labels are assumed checked.
LabelGroups label_groups_cpu(const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self);

// CUDA, without a host sync: the groups, with the summary in g.device_summary (g.summary unset).
// Launchers may note a device NaN/Inf flag and a kept-triplet count in it, then read everything with
// read_label_summary: one sync per mining call, none with capacity= (which never reads it).
// `norms` (optional, the fused miners' squared norms, float or double [B]): the same kernel flags a NaN/Inf
// or overflowing norm, in the summary or, with `to_error_word`, in the device's error word.
LabelGroups label_groups_cuda_async(const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self,
                                    const at::Tensor& norms = at::Tensor(), bool to_error_word = false);
enum class SummaryNote { kNonFinite, kKept };
void note_in_summary(const LabelGroups& g, SummaryNote note, const at::Tensor& value);  // value: 1 element
struct SummaryRead {
  bool non_finite = false;  // the noted flag was non-zero
  int64_t kept = 0;         // the noted count
};
SummaryRead read_label_summary(LabelGroups& g);  // the sync; fills g.summary
// Both in one step: with `norms` (may be undefined) a NaN/Inf or overflowing norm raises
// fail_embeddings_unsafe, so the fused miners check their embeddings without a sync of their own.
LabelGroups label_groups_cuda(const char* op, const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self,
                              const at::Tensor& norms);
// ValueError for embeddings that are NaN/Inf or whose squared norms could overflow a distance.
[[noreturn]] void fail_embeddings_unsafe(const char* op);

// Keeps the slots whose negative is >= 0, in slot order (nonzero: a host sync on CUDA).
Triplets compact_triplets(const at::Tensor& a, const at::Tensor& p, const at::Tensor& n);

// The same ordered compaction into exactly `size` entries (-1 past the kept ones), with no host sync:
// a scan and a binary search (ATen). Returns (a, p, n, found): found, 0-d int64 on the device, counts
// every kept slot (it may exceed `size`).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> compact_triplets_into(const at::Tensor& a,
                                                                                 const at::Tensor& p,
                                                                                 const at::Tensor& n, int64_t size);

// The first `capacity` triplets, -1 past them, and their number as a 0-d int64 tensor (no host sync).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> pad_triplets(const Triplets& t, int64_t capacity);

// Three empty int64 index tensors on `like`'s device.
Triplets empty_triplets(const at::Tensor& like);

// An uninitialised tensor of `dtype` on `like`'s device (on the CPU without a dispatcher hop).
at::Tensor empty_like_device(at::IntArrayRef size, const at::Tensor& like, at::ScalarType dtype);

}  // namespace fx
