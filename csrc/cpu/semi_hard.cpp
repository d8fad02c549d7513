// semi_hard_from_sq_dist on CPU: FaceNet eq. (4), one negative per anchor-positive pair.
//
// Per anchor: sort its positives' distances (the thresholds), drop every negative into the bucket
// "number of thresholds below it", keep each bucket's closest negative, then a suffix minimum over
// buckets answers every positive at once. Only the negatives between the smallest and the largest
// threshold need their bucket counted (split_row). O(N + M K + K log K) per anchor for M such
// negatives, O(N + K) memory per thread.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <limits>
#include <vector>

#include "rules/mining_rules.h"
#include "rules/ordered_bits.h"
#include "cpu/bucket_search.h"
#include "cpu/finite.h"
#include "cpu/simd.h"
#include "checks.h"
#include "cpu/label_groups.h"
#include "shared/tensors.h"
#include "cpu/mine_embeddings.h"
#include "cpu/grain.h"

namespace fx {
namespace {

// The instruction set the row pass runs, asked once per process: the AVX2 or baseline build of the whole
// pass, and on AVX-512 its split, search and count as their own functions (an AVX-512 build of the whole
// pass would send GCC's 64-byte vectors through the stack on AVX2-only machines); the AVX2 build searches
// with its own 8-lane search. Every piece is exact, so the triplets do not depend on the machine.
// FACENET_EXT_CPU_CAPABILITY=default|avx2|avx512 caps it, as ATEN_CPU_CAPABILITY does ATen's kernels, so that the tests
// run every target this CPU has.
enum class Capability { baseline, avx2, avx512 };

#if FX_HAVE_X86_TARGETS
Capability detect_capability() {
  const Capability hw = __builtin_cpu_supports("avx512f") ? Capability::avx512
                        : __builtin_cpu_supports("avx2")  ? Capability::avx2
                                                          : Capability::baseline;
  const char* cap = std::getenv("FACENET_EXT_CPU_CAPABILITY");
  if (cap == nullptr) return hw;
  const std::string want(cap);
  if (want == "default") return Capability::baseline;
  if (want == "avx2") return std::min(hw, Capability::avx2);
  return hw;  // "avx512" or anything else: what the CPU has
}
#else
Capability detect_capability() { return Capability::baseline; }
#endif

Capability cpu_capability() {
  static const Capability c = detect_capability();
  return c;
}

// One pass over an anchor's row splits its negatives by the positives' thresholds lo = sorted[0] and
// hi = sorted[K-1]. A negative above hi is in bucket K: only the closest of them matters, kept on the
// fly. A negative at or below lo is in bucket 0, which no positive reads (it matters only to the lazy
// farthest-negative fallback, which rescans the row). Only the negatives in between need their bucket
// counted: they are compacted into (mid_d, mid_i), in increasing index. On trained embeddings and on
// FaceNet-sized batches most negatives lie beyond the farthest positive, so most of the row costs one
// compare instead of K.
template <typename T>
struct RowSplit {
  T above_d;
  int64_t above_i;  // -1: no negative above hi
  int64_t n_mid;
};

// Elements [j, N) one at a time; `s` carries the state of the elements before j.
template <typename T>
FX_ALWAYS_INLINE void split_row_scalar(const T* row, const int32_t* ref_gid, int32_t gid, int64_t j, int64_t N, T lo,
                                       T hi, T* mid_d, int32_t* mid_i, RowSplit<T>& s) {
  for (; j < N; ++j) {
    const T d = row[j];
    const bool neg = ref_gid[j] != gid;
    if (neg && d > hi && d < s.above_d) {  // increasing j + strict '<' = ties to the smaller index
      s.above_d = d;
      s.above_i = j;
    }
    mid_d[s.n_mid] = d;  // written always, kept only when counted: no branch to mispredict
    mid_i[s.n_mid] = static_cast<int32_t>(j);
    s.n_mid += (neg && d > lo && !(d > hi)) ? 1 : 0;
  }
}

template <typename T>
FX_ALWAYS_INLINE RowSplit<T> split_row(const T* row, const int32_t* ref_gid, int32_t gid, int64_t N, T lo, T hi,
                                       T* mid_d, int32_t* mid_i) {
  RowSplit<T> s{std::numeric_limits<T>::infinity(), -1, 0};
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    // 8 lanes, each keeping its own closest-above (ties to its smaller index), merged at the end.
    typedef float Vec __attribute__((vector_size(32)));
    typedef int32_t IVec __attribute__((vector_size(32)));
    constexpr int L = 8;
    const float inf = std::numeric_limits<float>::infinity();
    const Vec lo_v = Vec{} + lo, hi_v = Vec{} + hi, inf_v = Vec{} + inf;
    const IVec gid_v = IVec{} + gid;
    Vec best = inf_v;
    IVec best_j = IVec{} - 1, jv = {0, 1, 2, 3, 4, 5, 6, 7};
    for (; j + L <= N; j += L) {
      Vec d;
      IVec rg;
      std::memcpy(&d, row + j, sizeof(Vec));
      std::memcpy(&rg, ref_gid + j, sizeof(IVec));
      const IVec neg = rg != gid_v, above = d > hi_v;  // lanes: -1 true, 0 false
      const Vec cand = (neg & above) ? d : inf_v;
      const IVec closer = cand < best;
      best = closer ? cand : best;
      best_j = closer ? jv : best_j;
      jv += L;
      const IVec mid = neg & (d > lo_v) & ~above;
      for (int l = 0; l < L; ++l) {
        mid_d[s.n_mid] = d[l];
        mid_i[s.n_mid] = static_cast<int32_t>(j + l);
        s.n_mid -= mid[l];
      }
    }
    for (int l = 0; l < L; ++l)
      if (best_j[l] >= 0 && (s.above_i < 0 || lex_less(best[l], int64_t(best_j[l]), s.above_d, s.above_i))) {
        s.above_d = best[l];
        s.above_i = best_j[l];
      }
  }
  split_row_scalar(row, ref_gid, gid, j, N, lo, hi, mid_d, mid_i, s);
  return s;
}

#if FX_HAVE_X86_TARGETS
// split_row for floats on AVX-512: 16 lanes, and the in-between negatives of each 16 compacted with one
// compress instead of one store per element. The compress goes to a register and a full-width store
// follows (a compress straight to memory is microcoded on AMD's Zen 4), so mid_d and mid_i need 16 slots
// past the last negative kept. A partial last group is masked, so there is no scalar tail.
__attribute__((target("avx512f"), noinline)) RowSplit<float> split_row_avx512(const float* row, const int32_t* ref_gid,
                                                                              int32_t gid, int64_t N, float lo,
                                                                              float hi, float* mid_d, int32_t* mid_i,
                                                                              const float* next_row) {
  const __m512 lo_v = _mm512_set1_ps(lo), hi_v = _mm512_set1_ps(hi);
  const __m512i gid_v = _mm512_set1_epi32(gid), sixteen = _mm512_set1_epi32(16);
  // Each lane keeps its own closest-above; increasing j + strict '<' = ties to its smaller index.
  __m512 best = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512i best_j = _mm512_set1_epi32(-1), jv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int64_t n_mid = 0;
  for (int64_t j = 0; j < N; j += 16) {
    const __mmask16 lanes = N - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (N - j)) - 1);
    const __m512 d = _mm512_maskz_loadu_ps(lanes, row + j);
    __builtin_prefetch(next_row + j);  // one cache line per 16 floats
    const __mmask16 neg = _mm512_mask_cmpneq_epi32_mask(lanes, _mm512_maskz_loadu_epi32(lanes, ref_gid + j), gid_v);
    const __mmask16 above = _mm512_mask_cmp_ps_mask(neg, d, hi_v, _CMP_GT_OQ);
    const __mmask16 closer = _mm512_mask_cmp_ps_mask(above, d, best, _CMP_LT_OQ);
    best = _mm512_mask_mov_ps(best, closer, d);
    best_j = _mm512_mask_mov_epi32(best_j, closer, jv);
    const __mmask16 mid = _mm512_mask_cmp_ps_mask(neg & ~above, d, lo_v, _CMP_GT_OQ);
    _mm512_storeu_ps(mid_d + n_mid, _mm512_maskz_compress_ps(mid, d));
    _mm512_storeu_si512(mid_i + n_mid, _mm512_maskz_compress_epi32(mid, jv));
    n_mid += __builtin_popcount(mid);
    jv = _mm512_add_epi32(jv, sixteen);
  }
  RowSplit<float> s{std::numeric_limits<float>::infinity(), -1, n_mid};
  float lane_d[16];
  int32_t lane_j[16];
  _mm512_storeu_ps(lane_d, best);
  _mm512_storeu_si512(lane_j, best_j);
  for (int l = 0; l < 16; ++l)
    if (lane_j[l] >= 0 && (s.above_i < 0 || lex_less(lane_d[l], int64_t(lane_j[l]), s.above_d, s.above_i))) {
      s.above_d = lane_d[l];
      s.above_i = lane_j[l];
    }
  return s;
}
#endif

// The fastest split this CPU has (mid_d, mid_i: N + 16 slots). The AVX-512 split also prefetches
// next_row, the next anchor's: a B = 1800 distance matrix (13 MB) does not fit in cache, the stages after
// the split do not read the matrix, and the next row's first pass (its NaN/Inf check) would wait for it.
template <typename T>
FX_ALWAYS_INLINE RowSplit<T> split_negatives(const T* row, const int32_t* ref_gid, int32_t gid, int64_t N, T lo, T hi,
                                             T* mid_d, int32_t* mid_i, const T* next_row) {
#if FX_HAVE_X86_TARGETS
  if constexpr (std::is_same_v<T, float>)
    if (cpu_capability() == Capability::avx512)
      return split_row_avx512(row, ref_gid, gid, N, lo, hi, mid_d, mid_i, next_row);
#endif
  return split_row(row, ref_gid, gid, N, lo, hi, mid_d, mid_i);
}

// bucket[m] = count_below(sorted, K, d[m]) for the compacted negatives. For few thresholds a linear
// count vectorises across elements and beats binary search; both compute count_below exactly.
// `Bytes`: the width of one vector register, 32 (AVX2) or 64 (AVX-512). GCC lowers a vector wider than
// the target's registers through the stack, so each target gets the width it has.
template <int Bytes, typename T>
FX_ALWAYS_INLINE void count_buckets_body(const T* d, int64_t n, const T* sorted, int K, int32_t* bucket) {
  constexpr int kLinearMax = 64;
  int64_t j = 0;
  if (K <= kLinearMax) {
    // Two registers of elements at a time, their counts held in registers across all thresholds.
    // Written with GCC vector types: left to itself the auto-vectoriser vectorised the threshold loop
    // instead, with a shuffle per element.
    using Int = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef T Vec __attribute__((vector_size(Bytes)));
    typedef Int IVec __attribute__((vector_size(Bytes)));
    constexpr int L = Bytes / sizeof(T), W = 2 * L;
    for (; j + W <= n; j += W) {
      Vec d0, d1;
      std::memcpy(&d0, d + j, sizeof(Vec));
      std::memcpy(&d1, d + j + L, sizeof(Vec));
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
  for (; j < n; ++j) bucket[j] = count_below(sorted, K, d[j]);
}

#if FX_HAVE_X86_TARGETS
// The count 16 lanes wide, for what the permute search does not take: float64, more than 63 thresholds.
__attribute__((target("avx512f"), noinline)) void count_buckets_avx512(const float* d, int64_t n, const float* sorted,
                                                                       int K, int32_t* bucket) {
  count_buckets_body<64>(d, n, sorted, K, bucket);
}
__attribute__((target("avx512f"), noinline)) void count_buckets_avx512(const double* d, int64_t n, const double* sorted,
                                                                       int K, int32_t* bucket) {
  count_buckets_body<64>(d, n, sorted, K, bucket);
}
#endif

template <typename T>
FX_ALWAYS_INLINE void count_buckets(const T* d, int64_t n, const T* sorted, int K, int32_t* bucket) {
#if FX_HAVE_X86_TARGETS
  if (cpu_capability() == Capability::avx512) return count_buckets_avx512(d, n, sorted, K, bucket);
#endif
  count_buckets_body<32>(d, n, sorted, K, bucket);
}

// bucket[m] for the compacted negatives, through the permute search where it applies (AVX-512 or AVX2,
// float, at most 63 thresholds), else the count. `tree`: kTreeNodes floats of scratch.
template <typename T>
FX_ALWAYS_INLINE void bucket_of_each(const T* d, int64_t n, const T* sorted, int K, float* tree, int32_t* bucket) {
#if FX_HAVE_X86_TARGETS
  if constexpr (std::is_same_v<T, float>)
    if (K <= kTreeMaxThresholds && cpu_capability() != Capability::baseline) {
      build_threshold_tree(sorted, K, tree);
      if (cpu_capability() == Capability::avx512) return search_buckets_avx512(d, n, tree, bucket);
      return search_buckets_avx2(d, n, tree, bucket);
    }
#endif
  count_buckets(d, n, sorted, K, bucket);
}

// Closest of the compacted negatives in each bucket 0..K-1, ties to the smaller index. For float the
// (distance, index) pair packs into one 64-bit key (rules/ordered_bits.h: ordered like the distances,
// negative ones included), so the update is a branchless min instead of a data-dependent branch the CPU
// mispredicts every few elements.
FX_ALWAYS_INLINE void bucket_minima(const float* d, const int32_t* idx, const int32_t* bucket, int64_t n, int K,
                                    std::vector<float>& best_d, std::vector<int64_t>& best_i) {
  std::vector<uint64_t> key(K + 1, ~uint64_t(0));
  for (int64_t m = 0; m < n; ++m) {
    const uint64_t k = (uint64_t(ordered_bits(d[m])) << 32) | uint64_t(uint32_t(idx[m]));
    uint64_t& slot = key[bucket[m]];
    slot = k < slot ? k : slot;
  }
  best_d.resize(K + 1);
  best_i.resize(K + 1);
  for (int c = 0; c < K; ++c) {
    best_d[c] = from_ordered_bits<float>(uint32_t(key[c] >> 32));
    best_i[c] = key[c] == ~uint64_t(0) ? -1 : int64_t(uint32_t(key[c]));
    if (best_i[c] < 0) best_d[c] = std::numeric_limits<float>::infinity();
  }
}

FX_ALWAYS_INLINE void bucket_minima(const double* d, const int32_t* idx, const int32_t* bucket, int64_t n, int K,
                                    std::vector<double>& best_d, std::vector<int64_t>& best_i) {
  best_d.assign(K + 1, std::numeric_limits<double>::infinity());
  best_i.assign(K + 1, -1);
  for (int64_t m = 0; m < n; ++m) {  // increasing index + strict '<' = ties to the smaller index
    const int c = bucket[m];
    if (d[m] < best_d[c]) {
      best_d[c] = d[m];
      best_i[c] = idx[m];
    }
  }
}

// Farthest negative of the row, ties to the smaller index.
template <typename T>
void farthest_negative(const T* row, const int32_t* ref_gid, int32_t gid, int64_t N, T& far_d, int64_t& far_i) {
  for (int64_t j = 0; j < N; ++j)
    if (ref_gid[j] != gid && row[j] > far_d) {
      far_d = row[j];
      far_i = j;
    }
}

template <typename T>
struct SemiHardRows {  // what every row of one mining call shares
  const T* dist;
  int64_t N, ld;
  const LabelGroups* g;
  bool exclude_self, has_margin;
  T margin;
  bool squared, drop;
  int64_t *out_a, *out_p, *out_n;
};

// (ordered distance bits, rules/ordered_bits.h; position) in one integer: a plain sort of these is the
// stable sort by distance, negative entries included.
template <typename T>
using SortKey = std::conditional_t<sizeof(T) == 4, uint64_t, unsigned __int128>;

template <typename T>
struct RowScratch {  // per thread, reused across its rows
  std::vector<int32_t> positives, rank, mid_i, bucket;
  std::vector<T> sorted, mid_d, best_d;
  std::vector<int64_t> best_i;
  std::vector<SortKey<T>> keys;
  float tree[kTreeNodes];
};

// sorted[s] := the s-th smallest positive distance, rank[q] := sorted position of positive q, ties by q
// (the order std::stable_sort gave, which allocated a buffer on every row). std::sort on the packed
// keys allocates nothing.
template <typename T>
FX_ALWAYS_INLINE void sort_thresholds(const T* row, int K, RowScratch<T>& w) {
  const int32_t* positives = w.positives.data();
  w.keys.resize(K);
  for (int q = 0; q < K; ++q) w.keys[q] = (SortKey<T>(ordered_bits(row[positives[q]])) << 32) | SortKey<T>(q);
  std::sort(w.keys.begin(), w.keys.end());
  w.sorted.resize(K);
  w.rank.resize(K);
  for (int s = 0; s < K; ++s) {
    const int q = static_cast<int>(uint32_t(w.keys[s]));
    w.sorted[s] = row[positives[q]];
    w.rank[q] = s;
  }
}

// Anchor a's slots; false when its row holds a NaN or Inf (the outputs are then meaningless).
template <typename T>
FX_ALWAYS_INLINE bool semi_hard_row_body(const SemiHardRows<T>& r, int64_t a, bool has_next, RowScratch<T>& w) {
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

  sort_thresholds(row, K, w);
  w.mid_d.resize(N + 16);  // the splits write past the last negative they keep
  w.mid_i.resize(N + 16);
  const RowSplit<T> split = split_negatives(row, g.ref_gid, gid, N, w.sorted[0], w.sorted[K - 1], w.mid_d.data(),
                                            w.mid_i.data(), has_next ? row + r.ld : row);
  w.bucket.resize(split.n_mid);
  bucket_of_each(w.mid_d.data(), split.n_mid, w.sorted.data(), K, w.tree, w.bucket.data());
  bucket_minima(w.mid_d.data(), w.mid_i.data(), w.bucket.data(), split.n_mid, K, w.best_d, w.best_i);
  std::vector<T>& best_d = w.best_d;
  std::vector<int64_t>& best_i = w.best_i;
  best_d[K] = split.above_d;
  best_i[K] = split.above_i;
  // best[c] := closest negative in buckets c..K (suffix minimum, lexicographic on (d, index)); bucket 0
  // is never read (a positive of rank r reads bucket r + 1).
  for (int c = K - 1; c >= 1; --c)
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
      if (far_i < 0) farthest_negative(row, g.ref_gid, gid, N, far_d, far_i);
      n = far_i;
      dn = far_d;
    }
    if (n >= 0 && r.has_margin && !inside_margin(row[positives[q]], dn, r.margin, r.squared)) n = -1;
    r.out_n[slot] = n;
  }
  return true;
}

// The rows [begin, end); false if one is not finite. Built for AVX2 and for the baseline x86-64 (as
// cpu/simd.h's clones, but picked by cpu_capability() so that the tests can force either).
template <typename T>
FX_ALWAYS_INLINE bool semi_hard_rows_body(const SemiHardRows<T>& r, int64_t begin, int64_t end, RowScratch<T>& w) {
  bool finite = true;
  for (int64_t a = begin; a < end; ++a) finite &= semi_hard_row_body(r, a, a + 1 < end, w);
  return finite;
}

#if FX_HAVE_X86_TARGETS
template <typename T>
__attribute__((target("avx2"), noinline)) bool semi_hard_rows_avx2(const SemiHardRows<T>& r, int64_t begin, int64_t end,
                                                                   RowScratch<T>& w) {
  return semi_hard_rows_body(r, begin, end, w);
}
#endif

template <typename T>
__attribute__((noinline)) bool semi_hard_rows_baseline(const SemiHardRows<T>& r, int64_t begin, int64_t end,
                                                       RowScratch<T>& w) {
  return semi_hard_rows_body(r, begin, end, w);
}

template <typename T>
bool semi_hard_rows(const SemiHardRows<T>& r, int64_t begin, int64_t end, RowScratch<T>& w) {
#if FX_HAVE_X86_TARGETS
  if (cpu_capability() != Capability::baseline) return semi_hard_rows_avx2(r, begin, end, w);
#endif
  return semi_hard_rows_baseline(r, begin, end, w);
}

// Returns false when a row it mines holds a NaN or Inf (the outputs are then meaningless).
template <typename T>
bool semi_hard_cpu_kernel(const at::Tensor& sq_dist, const LabelGroups& g, bool exclude_self, bool has_margin, T margin,
                          bool squared, bool drop, int64_t* out_a, int64_t* out_p, int64_t* out_n) {
  const SemiHardRows<T> rows{sq_dist.data_ptr<T>(),
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
    if (!semi_hard_rows(rows, begin, end, scratch)) non_finite.store(true, std::memory_order_relaxed);
  });
  return !non_finite.load();
}

// Mines a checked, row-major matrix with its groups built.
Triplets semi_hard_mine_cpu(const char* op, const at::Tensor& dist, const LabelGroups& g, bool exclude_self,
                            std::optional<double> margin, bool squared, bool drop_fallback) {
  const int64_t num_pairs = g.summary.num_pairs;
  at::Tensor a = empty_like_device({num_pairs}, dist, at::kLong), p = empty_like_device({num_pairs}, dist, at::kLong),
             n = empty_like_device({num_pairs}, dist, at::kLong);
  if (num_pairs == 0) return {a, p, n};
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(dist.scalar_type(), "semi_hard_cpu", [&] {
    finite = semi_hard_cpu_kernel<scalar_t>(dist, g, exclude_self, margin.has_value(),
                                            static_cast<scalar_t>(margin.value_or(0)), squared, drop_fallback,
                                            a.data_ptr<int64_t>(), p.data_ptr<int64_t>(), n.data_ptr<int64_t>());
  });
  if (!finite) fail_non_finite(op);
  // Slots stay empty only through the margin or "drop" (anchors without a negative have no slot).
  if (margin.has_value() || drop_fallback) return compact_triplets(a, p, n);
  return {a, p, n};
}

Triplets semi_hard_from_sq_dist_cpu(const at::Tensor& sq_dist, const at::Tensor& labels, const at::Tensor& ref_labels,
                                    bool exclude_self, std::optional<double> margin, bool squared, bool drop_fallback) {
  const char* op = "semi_hard_from_sq_dist";
  check_mining_inputs(op, sq_dist, labels, ref_labels, exclude_self, margin);
  const LabelGroups g = label_groups_cpu(labels, ref_labels, exclude_self);
  return semi_hard_mine_cpu(op, row_major(sq_dist), g, exclude_self, margin, squared, drop_fallback);
}

// The fused op: groups first (no pair, no distances), then distances, then mining; one native call.
Triplets semi_hard_triplets_cpu(const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                                bool squared, bool drop_fallback) {
  const char* op = "semi_hard_triplets";
  return mine_embeddings_cpu(op, emb, labels, margin, [&](const at::Tensor& d, const LabelGroups& g) {
    return semi_hard_mine_cpu(op, d, g, true, margin, squared, drop_fallback);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("semi_hard_from_sq_dist", &semi_hard_from_sq_dist_cpu);
  m.impl("semi_hard_triplets", &semi_hard_triplets_cpu);
}

}  // namespace fx
