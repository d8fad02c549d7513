// Label groups on the CPU: a stable sort of the reference labels, one pass over them, one over the
// anchors. Plain C++ on raw pointers: on a small batch every ATen call (and its profiler event) would
// cost more than the work.
#include <ATen/Dispatch.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "rules/label_rules.h"
#include "cpu/label_groups.h"

namespace fx {

namespace {
// Integer labels of any dtype and stride, as int64.
std::vector<int64_t> labels_as_int64(const at::Tensor& t) {
  std::vector<int64_t> out(t.size(0));
  const auto type = t.scalar_type();
  if (type == at::kByte || type == at::kChar || type == at::kShort || type == at::kInt || type == at::kLong) {
    AT_DISPATCH_INTEGRAL_TYPES(type, "labels_as_int64", [&] {
      const scalar_t* p = t.data_ptr<scalar_t>();
      const int64_t s = t.stride(0);
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(p[int64_t(i) * s]);
    });
  } else {  // the unsigned 16/32/64-bit dtypes: rare enough for a copy
    const at::Tensor c = t.to(at::kLong).contiguous();
    std::copy_n(c.data_ptr<int64_t>(), out.size(), out.begin());
  }
  return out;
}
}  // namespace

LabelGroups label_groups_cpu(const at::Tensor& labels, const at::Tensor& ref_labels, bool exclude_self) {
  LabelGroups g = allocate_label_groups(labels, ref_labels);
  const int64_t B = labels.size(0), N = ref_labels.size(0);
  int32_t *anchor_gid = g.anchor_gid, *ref_gid = g.ref_gid;
  int32_t *members = g.members, *group_start = g.group_start;
  int64_t* pair_offset = g.pair_offset;

  const std::vector<int64_t> ref_lab = labels_as_int64(ref_labels);
  std::vector<int64_t> order(N), sorted(N);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t u, int64_t v) { return ref_lab[u] < ref_lab[v]; });
  for (int64_t i = 0; i < N; ++i) sorted[i] = ref_lab[order[i]];
  int32_t G = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (i == 0 || sorted[i] != sorted[i - 1]) group_start[G++] = static_cast<int32_t>(i);
    members[i] = static_cast<int32_t>(order[i]);
    ref_gid[order[i]] = G - 1;
  }
  group_start[G] = static_cast<int32_t>(N);

  const std::vector<int64_t> lab = exclude_self ? std::vector<int64_t>() : labels_as_int64(labels);
  MiningSummary& s = g.summary;
  pair_offset[0] = 0;
  for (int64_t a = 0; a < B; ++a) {
    int32_t gid = -1;
    if (exclude_self) {
      gid = ref_gid[a];
    } else if (N > 0) {
      const int64_t pos = lower_bound_index(sorted.data(), N, lab[a]);
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
