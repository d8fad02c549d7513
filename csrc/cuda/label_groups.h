// CUDA's label groups (shared/label_groups.h), built without a host sync: the summary stays on the device
// until a launcher reads it, together with what it noted there, in one copy.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "shared/label_groups.h"

namespace fx {

// The groups, with the summary in g.device_summary (g.summary unset). The labels are assumed checked.
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

}  // namespace fx
