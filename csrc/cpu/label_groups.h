// The CPU's label groups (shared/label_groups.h) and its compaction of mined slots.
#pragma once
#include <ATen/ATen.h>

#include "shared/label_groups.h"
#include "shared/triplets.h"

namespace fx {

// Builds the groups and their summary (g.summary) in one pass. The labels are assumed checked.
LabelGroups label_groups_cpu(const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self);

// Keeps the slots whose negative is >= 0, in slot order. nonzero costs no sync on the CPU and is cheaper
// here than shared/triplets.h compact_triplets_into, which CUDA needs.
inline Triplets compact_triplets(const at::Tensor& a, const at::Tensor& p, const at::Tensor& n) {
  const at::Tensor keep = n.ge(0).nonzero().squeeze(1);
  return {a.index_select(0, keep), p.index_select(0, keep), n.index_select(0, keep)};
}

}  // namespace fx
