// Label groups on the CPU: one pass over the sorted reference labels, one over the anchors.
#include "common/label_rules.h"
#include "label_groups.h"

namespace fx {

LabelGroups label_groups_cpu(const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self) {
  LabelGroups g = allocate_label_groups(labels, ref_labels);
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  int32_t *anchor_gid = g.anchor_gid.data_ptr<int32_t>(), *ref_gid = g.ref_gid.data_ptr<int32_t>();
  int32_t *members = g.members.data_ptr<int32_t>(), *group_start = g.group_start.data_ptr<int32_t>();
  int64_t* pair_offset = g.pair_offset.data_ptr<int64_t>();

  at::Tensor sorted_t, order_t;
  if (N > 0) std::tie(sorted_t, order_t) = sort_reference_labels(ref_labels);
  const int64_t* sorted = N > 0 ? sorted_t.data_ptr<int64_t>() : nullptr;
  const int64_t* order = N > 0 ? order_t.data_ptr<int64_t>() : nullptr;
  int32_t G = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (i == 0 || sorted[i] != sorted[i - 1]) group_start[G++] = static_cast<int32_t>(i);
    members[i] = static_cast<int32_t>(order[i]);
    ref_gid[order[i]] = G - 1;
  }
  group_start[G] = static_cast<int32_t>(N);

  const at::Tensor labels64 = labels.to(at::kLong).contiguous();
  const int64_t* lab = labels64.data_ptr<int64_t>();
  MiningSummary& s = g.summary;
  pair_offset[0] = 0;
  for (int64_t a = 0; a < B; ++a) {
    int32_t gid = -1;
    if (exclude_self) {
      gid = ref_gid[a];
    } else if (N > 0) {
      const int64_t pos = lower_bound_index(sorted, N, lab[a]);
      if (pos < N && sorted[pos] == lab[a]) gid = ref_gid[order[pos]];
    }
    const int64_t size = gid >= 0 ? group_start[gid + 1] - group_start[gid] : 0;
    const int64_t slots = anchor_slots(gid >= 0, size, N, exclude_self);
    anchor_gid[a] = gid;
    pair_offset[a + 1] = pair_offset[a] + slots;
    s.max_positives = std::max(s.max_positives, slots);
    s.anchors_without_pairs += slots == 0;
  }
  s.num_pairs = pair_offset[B];
  return g;
}

}  // namespace fx
