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
#include "label_groups.h"
#include "cpu/mine_embeddings.h"

namespace fx {
namespace {

// Buckets of every reference element of one anchor row. Positives (and the anchor itself) go to the
// extra bucket K + 1, which nobody reads. For few thresholds a linear count vectorises across
// elements and beats binary search; both compute count_below exactly.
template <typename T>
FX_ALWAYS_INLINE void assign_buckets_body(const T* row, const int32_t* ref_gid, int32_t gid,
                                                                int64_t N, const T* sorted, int K, int32_t* bucket) {
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
        c0 -= (t < d0);                    // a true lane compares to -1
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

// The counting loop is the miner's hot spot: compiled for AVX2 as well (cpu/simd.h).

FX_TARGET_CLONES void assign_buckets(const float* row, const int32_t* ref_gid, int32_t gid, int64_t N,
                                     const float* sorted, int K, int32_t* bucket) {
  assign_buckets_body(row, ref_gid, gid, N, sorted, K, bucket);
}
FX_TARGET_CLONES void assign_buckets(const double* row, const int32_t* ref_gid, int32_t gid, int64_t N,
                                     const double* sorted, int K, int32_t* bucket) {
  assign_buckets_body(row, ref_gid, gid, N, sorted, K, bucket);
}

// Closest negative of each bucket, ties to the smaller index. For float the (distance, index) pair
// packs into one 64-bit key (a non-negative float orders like its bits), so the update is a branchless
// min instead of a data-dependent branch the CPU mispredicts on every few elements.
inline void bucket_minima(const float* row, const int32_t* bucket, int64_t N, int K, std::vector<float>& best_d,
                          std::vector<int64_t>& best_i) {
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

inline void bucket_minima(const double* row, const int32_t* bucket, int64_t N, int K, std::vector<double>& best_d,
                          std::vector<int64_t>& best_i) {
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

// Returns false when a row it mines holds a NaN or Inf (the outputs are then meaningless).
template <typename T>
bool semihard_cpu_kernel(const at::Tensor& sq_dist, const LabelGroups& g, bool exclude_self, bool has_margin,
                         T margin, bool squared, bool drop, int64_t* out_a, int64_t* out_p, int64_t* out_n) {
  const int64_t B = sq_dist.size(0), N = sq_dist.size(1), ld = sq_dist.stride(0);
  const T* dist = sq_dist.data_ptr<T>();
  const int32_t* anchor_gid = g.anchor_gid;
  const int32_t* ref_gid = g.ref_gid;
  const int32_t* members = g.members;
  const int32_t* group_start = g.group_start;
  const int64_t* pair_offset = g.pair_offset;
  constexpr T kInf = std::numeric_limits<T>::infinity();
  std::atomic<bool> non_finite{false};

  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> positives, order, rank, bucket(N);
    std::vector<T> sorted;
    std::vector<T> best_d;
    std::vector<int64_t> best_i;
    for (int64_t a = begin; a < end; ++a) {
      const int64_t slot0 = pair_offset[a];
      const int K = static_cast<int>(pair_offset[a + 1] - slot0);
      if (K == 0) continue;
      const int32_t gid = anchor_gid[a];
      const T* row = dist + a * ld;
      if (!all_finite(row, N)) {  // the row is about to be read in full anyway (it is in cache next)
        non_finite.store(true, std::memory_order_relaxed);
        continue;
      }

      positives.clear();
      for (int32_t m = group_start[gid]; m < group_start[gid + 1]; ++m)
        if (!(exclude_self && members[m] == a)) positives.push_back(members[m]);

      // Thresholds in ascending order; rank[q] = sorted position of positive q (ties by q, stable).
      order.resize(K);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t u, int32_t v) { return row[positives[u]] < row[positives[v]]; });
      sorted.resize(K);
      rank.resize(K);
      for (int s = 0; s < K; ++s) {
        sorted[s] = row[positives[order[s]]];
        rank[order[s]] = s;
      }

      assign_buckets(row, ref_gid, gid, N, sorted.data(), K, bucket.data());
      bucket_minima(row, bucket.data(), N, K, best_d, best_i);
      // best[c] := closest negative in buckets c..K (suffix minimum, lexicographic on (d, index)).
      for (int c = K - 1; c >= 0; --c)
        if (best_i[c + 1] >= 0 && (best_i[c] < 0 || lex_less(best_d[c + 1], best_i[c + 1], best_d[c], best_i[c]))) {
          best_d[c] = best_d[c + 1];
          best_i[c] = best_i[c + 1];
        }

      T far_d = -kInf;
      int64_t far_i = -1;
      for (int q = 0; q < K; ++q) {
        const int64_t slot = slot0 + q;
        out_a[slot] = a;
        out_p[slot] = positives[q];
        int64_t n = best_i[rank[q] + 1];
        T dn = best_d[rank[q] + 1];
        if (n < 0 && !drop) {  // TF-Addons: the farthest negative (-1 if none); rarely needed, so found lazily
          if (far_i < 0) farthest_negative(row, bucket.data(), N, K, far_d, far_i);
          n = far_i;
          dn = far_d;
        }
        if (n >= 0 && has_margin && !inside_margin(row[positives[q]], dn, margin, squared)) n = -1;
        out_n[slot] = n;
      }
    }
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
