#include "shared/label_groups.h"

#include "shared/tensors.h"

namespace fx {

LabelGroups allocate_label_groups(const at::Tensor& labels, const at::Tensor& ref_labels) {
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  LabelGroups g;
  g.storage32 = empty_like_device({B + 3 * N + 1}, labels, at::kInt);
  g.storage64 = empty_like_device({B + 1}, labels, at::kLong);
  g.anchor_gid = g.storage32.data_ptr<int32_t>();
  g.ref_gid = g.anchor_gid + B;
  g.members = g.ref_gid + N;
  g.group_start = g.members + N;
  g.pair_offset = g.storage64.data_ptr<int64_t>();
  return g;
}

}  // namespace fx
