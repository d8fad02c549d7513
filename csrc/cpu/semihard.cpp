// semihard_from_sq_dist on CPU: FaceNet eq. (4), one negative per anchor-positive pair.
//
// Per anchor: sort its positives' distances (the thresholds), drop every negative into the bucket
// "number of thresholds below it", keep each bucket's closest negative, then a suffix minimum over
// buckets answers every positive at once. O(N log K + K log K) per anchor, O(N + K) memory per thread.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <limits>
#include <numeric>
#include <vector>

#include "common/mining_rules.h"
#include "cpu/finite.h"
#include "cpu/simd.h"
#include "aten/label_groups.h"
#include "cpu/mine_embeddings.h"
#include "cpu/grain.h"

namespace fx {
namespace {

// Buckets of every reference element of one anchor row. Positives (and the anchor itself) go to the
// extra bucket K + 1, which nobody reads. For few thresholds a linear count vectorises across
// elements and beats binary search; both compute count_below exactly.
template <typename T>
FX_ALWAYS_INLINE void assign_buckets_body(const T* row, const int32_t* ref_gid, int32_t gid, int64_t N, const T* sorted,
                                          int K, int32_t* bucket) {
  constexpr int kLinearMax = 64;
  int64_t j = 0;
  if (K <= kLinearMax) {
    // 64 bytes of elements at a time, their counts held in registers across all thresholds. Written
    // with GCC vector types: left to itself the auto-vectoriser vectorised the threshold loop instead,
    // with a shuffle per element.
    using Int = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef T Vec __attribute__((vector_size(32)));
    typedef Int IVec __attribute__((vector_size(32)));
    constexpr int L = 32 / sizeof(T), W = 2 * L;
    for (; j + W <= N; j += W) {
      Vec d0, d1;
      std::memcpy(&d0, row + j, sizeof(Vec));
      std::memcpy(&d1, row + j + L, sizeof(Vec));
      IVec c0 = {}, c1 = {};
      for (int s = 0; s < K; ++s) {
        const Vec t = Vec{} + sorted[s];  // broadcast
        c0 -= (t < d0);                   // a true lane compares to -1
        c1 -= (t < d1);
      }
      for (int l = 0; l < L; ++l) {
        bucket[j + l] = static_cast<int32_t>(c0[l]);
        bucket[j + L + l] = static_cast<int32_t>(c1[l]);
      }
    }
  }
  for (; j < N; ++j) bucket[j] = count_below(sorted, K, row[j]);
  for (j = 0; j < N; ++j) bucket[j] = (ref_gid[j] == gid) ? K + 1 : bucket[j];
}

// Closest negative of each bucket, ties to the smaller index. For float the (distance, index) pair
// packs into one 64-bit key (a non-negative float orders like its bits), so the update is a branchless
// min instead of a data-dependent branch the CPU mispredicts on every few elements.
FX_ALWAYS_INLINE void bucket_minima(const float* row, const int32_t* bucket, int64_t N, int K,
                                    std::vector<float>& best_d, std::vector<int64_t>& best_i) {
  std::vector<uint64_t> key(K + 2, ~uint64_t(0));
  for (int64_t j = 0; j < N; ++j) {
    const float d = row[j] + 0.0f;  // -0 -> +0
    uint32_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    const uint64_t k = (uint64_t(bits) << 32) | uint64_t(j);
    uint64_t& slot = key[bucket[j]];
    slot = k < slot ? k : slot;
  }
  best_d.resize(K + 2);
  best_i.resize(K + 2);
  for (int c = 0; c < K + 2; ++c) {
    const uint32_t bits = uint32_t(key[c] >> 32);
    std::memcpy(&best_d[c], &bits, sizeof(bits));
    best_i[c] = key[c] == ~uint64_t(0) ? -1 : int64_t(uint32_t(key[c]));
    if (best_i[c] < 0) best_d[c] = std::numeric_limits<float>::infinity();
  }
}

FX_ALWAYS_INLINE void bucket_minima(const double* row, const int32_t* bucket, int64_t N, int K,
                                    std::vector<double>& best_d, std::vector<int64_t>& best_i) {
  best_d.assign(K + 2, std::numeric_limits<double>::infinity());
  best_i.assign(K + 2, -1);
  for (int64_t j = 0; j < N; ++j) {  // increasing j + strict '<' = ties to the smaller index
    const int c = bucket[j];
    if (row[j] < best_d[c]) {
      best_d[c] = row[j];
      best_i[c] = j;
    }
  }
}

// Farthest negative (buckets 0..K hold the negatives), ties to the smaller index.
template <typename T>
void farthest_negative(const T* row, const int32_t* bucket, int64_t N, int K, T& far_d, int64_t& far_i) {
  for (int64_t j = 0; j < N; ++j)
    if (bucket[j] <= K && row[j] > far_d) {
      far_d = row[j];
      far_i = j;
    }
}

template <typename T>
struct SemihardRows {  // what every row of one mining call shares
  const T* dist;
  int64_t N, ld;
  const LabelGroups* g;
  bool exclude_self, has_margin;
  T margin;
  bool squared, drop;
  int64_t *out_a, *out_p, *out_n;
};

template <typename T>
struct RowScratch {  // per thread, reused across its rows
  std::vector<int32_t> positives, order, rank, bucket;
  std::vector<T> sorted, best_d;
  std::vector<int64_t> best_i;
};

// Anchor a's slots; false when its row holds a NaN or Inf (the outputs are then meaningless).
template <typename T>
FX_ALWAYS_INLINE bool semihard_row_body(const SemihardRows<T>& r, int64_t a, RowScratch<T>& w) {
  const LabelGroups& g = *r.g;
  const int64_t slot0 = g.pair_offset[a];
  const int K = static_cast<int>(g.pair_offset[a + 1] - slot0);
  if (K == 0) return true;
  const int64_t N = r.N;
  const int32_t gid = g.anchor_gid[a];
  const T* row = r.dist + a * r.ld;
  if (!all_finite(row, N)) return false;  // the row is about to be read in full anyway (it is in cache next)

  w.positives.clear();
  for (int32_t m = g.group_start[gid]; m < g.group_start[gid + 1]; ++m)
    if (!(r.exclude_self && g.members[m] == a)) w.positives.push_back(g.members[m]);
  const std::vector<int32_t>& positives = w.positives;

  // Thresholds in ascending order; rank[q] = sorted position of positive q (ties by q, stable).
  w.order.resize(K);
  std::iota(w.order.begin(), w.order.end(), 0);
  std::stable_sort(w.order.begin(), w.order.end(),
                   [&](int32_t u, int32_t v) { return row[positives[u]] < row[positives[v]]; });
  w.sorted.resize(K);
  w.rank.resize(K);
  for (int s = 0; s < K; ++s) {
    w.sorted[s] = row[positives[w.order[s]]];
    w.rank[w.order[s]] = s;
  }

  w.bucket.resize(N);
  assign_buckets_body(row, g.ref_gid, gid, N, w.sorted.data(), K, w.bucket.data());
  bucket_minima(row, w.bucket.data(), N, K, w.best_d, w.best_i);
  std::vector<T>& best_d = w.best_d;
  std::vector<int64_t>& best_i = w.best_i;
  // best[c] := closest negative in buckets c..K (suffix minimum, lexicographic on (d, index)).
  for (int c = K - 1; c >= 0; --c)
    if (best_i[c + 1] >= 0 && (best_i[c] < 0 || lex_less(best_d[c + 1], best_i[c + 1], best_d[c], best_i[c]))) {
      best_d[c] = best_d[c + 1];
      best_i[c] = best_i[c + 1];
    }

  T far_d = -std::numeric_limits<T>::infinity();
  int64_t far_i = -1;
  for (int q = 0; q < K; ++q) {
    const int64_t slot = slot0 + q;
    r.out_a[slot] = a;
    r.out_p[slot] = positives[q];
    int64_t n = best_i[w.rank[q] + 1];
    T dn = best_d[w.rank[q] + 1];
    if (n < 0 && !r.drop) {  // TF-Addons: the farthest negative (-1 if none); rarely needed, so found lazily
      if (far_i < 0) farthest_negative(row, w.bucket.data(), N, K, far_d, far_i);
      n = far_i;
      dn = far_d;
    }
    if (n >= 0 && r.has_margin && !inside_margin(row[positives[q]], dn, r.margin, r.squared)) n = -1;
    r.out_n[slot] = n;
  }
  return true;
}

// The rows [begin, end), compiled for AVX2 as well (cpu/simd.h); false if one is not finite.
FX_TARGET_CLONES bool semihard_rows(const SemihardRows<float>& r, int64_t begin, int64_t end, RowScratch<float>& w) {
  bool finite = true;
  for (int64_t a = begin; a < end; ++a) finite &= semihard_row_body(r, a, w);
  return finite;
}
FX_TARGET_CLONES bool semihard_rows(const SemihardRows<double>& r, int64_t begin, int64_t end, RowScratch<double>& w) {
  bool finite = true;
  for (int64_t a = begin; a < end; ++a) finite &= semihard_row_body(r, a, w);
  return finite;
}

// Returns false when a row it mines holds a NaN or Inf (the outputs are then meaningless).
template <typename T>
bool semihard_cpu_kernel(const at::Tensor& sq_dist, const LabelGroups& g, bool exclude_self, bool has_margin, T margin,
                         bool squared, bool drop, int64_t* out_a, int64_t* out_p, int64_t* out_n) {
  const SemihardRows<T> rows{sq_dist.data_ptr<T>(),
                             sq_dist.size(1),
                             sq_dist.stride(0),
                             &g,
                             exclude_self,
                             has_margin,
                             margin,
                             squared,
                             drop,
                             out_a,
                             out_p,
                             out_n};
  std::atomic<bool> non_finite{false};
  at::parallel_for(0, sq_dist.size(0), grain_for(4 * sq_dist.size(1)), [&](int64_t begin, int64_t end) {
    RowScratch<T> scratch;
    if (!semihard_rows(rows, begin, end, scratch)) non_finite.store(true, std::memory_order_relaxed);
  });
  return !non_finite.load();
}

// Mines a checked, row-major matrix with its groups built.
Triplets semihard_mine_cpu(const char* op, const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                           std::optional<double> margin, bool squared, bool drop_fallback) {
  const int64_t num_pairs = g.summary.num_pairs;
  at::Tensor a = empty_like_device({num_pairs}, dist, at::kLong), p = empty_like_device({num_pairs}, dist, at::kLong),
             n = empty_like_device({num_pairs}, dist, at::kLong);
  if (num_pairs == 0) return {a, p, n};
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "semihard_cpu", [&] {
    finite = semihard_cpu_kernel<scalar_t>(dist, g, exclude_self, margin.has_value(),
                                           static_cast<scalar_t>(margin.value_or(0)), squared, drop_fallback,
                                           a.data_ptr<int64_t>(), p.data_ptr<int64_t>(), n.data_ptr<int64_t>());
  });
  if (!finite) fail_non_finite(op);
  // Slots stay empty only through the margin or "drop" (anchors without a negative have no slot).
  if (margin.has_value() || drop_fallback) return compact_triplets(a, p, n);
  return {a, p, n};
}

Triplets semihard_from_sq_dist_cpu(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                   bool exclude_self, std::optional<double> margin, bool squared, bool drop_fallback) {
  const char* op = "semihard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, margin);
  const LabelGroups g = label_groups_cpu(labels, ref_labels, exclude_self);
  return semihard_mine_cpu(op, row_major(sq_dist), g, exclude_self, margin, squared, drop_fallback);
}

// The fused op: groups first (no pair, no distances), then distances, then mining; one native call.
Triplets semi_hard_triplets_cpu(const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                                bool squared, bool drop_fallback) {
  const char* op = "semi_hard_triplets";
  return mine_embeddings_cpu(op, emb, labels, margin, [&](const at::Tensor& d, const LabelGroups& g) {
    return semihard_mine_cpu(op, d, g, true, margin, squared, drop_fallback);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("semihard_from_sq_dist", &semihard_from_sq_dist_cpu);
  m.impl("semi_hard_triplets", &semi_hard_triplets_cpu);
}

}  // namespace fx
