// The semi-hard row pass's bucket search for up to 63 float thresholds on AVX-512: bucket = the number of
// sorted thresholds strictly below a negative (count_below in rules/mining_rules.h), 16 negatives at a
// time, without ATen so that tests/cpp/bucket_search_check.cpp can compile it alone (and mutated).
//
// The thresholds, padded with +inf to 63, form a complete binary search tree of six levels stored
// breadth first (Eytzinger order: node i has children 2i and 2i + 1, the root is node 1, node 0 unused).
// 64 floats fill four zmm registers: nodes 0-31 (levels 0-4) and nodes 32-63 (level 5). One descent step
// per level, "go right when the node is below the negative", takes one compare and one two-register
// permute for all 16 lanes; after six steps lane i - 64 is the count. The linear count it replaces takes
// one compare and one add per threshold, 39 for FaceNet's K = 40.
#pragma once
#include <cstdint>
#include <limits>

// GCC on x86-64: functions built for AVX2 or AVX-512 next to the baseline ones, picked at run time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FX_HAVE_X86_TARGETS 1
#include <immintrin.h>
#else
#define FX_HAVE_X86_TARGETS 0
#endif

namespace fx {

constexpr int kTreeLevels = 6;
constexpr int kTreeNodes = 1 << kTreeLevels;        // 64 slots, node 0 unused
constexpr int kTreeMaxThresholds = kTreeNodes - 1;  // 63

// tree[1..63] := sorted[0..K) padded with +inf, breadth first. Node p of a level whose nodes lie `span`
// sorted positions apart is the middle of its span: the in-order position of a complete tree.
inline void build_threshold_tree(const float* sorted, int K, float* tree) {
  const float inf = std::numeric_limits<float>::infinity();
  tree[0] = inf;  // never read; set so that the registers hold no uninitialised value
  for (int level = 0; level < kTreeLevels; ++level) {
    const int span = kTreeNodes >> level;
    for (int p = 0; p < (1 << level); ++p) {
      const int s = span * p + span / 2 - 1;
      tree[(1 << level) + p] = s < K ? sorted[s] : inf;
    }
  }
}

#if FX_HAVE_X86_TARGETS
// bucket[m] = count_below(sorted, K, d[m]) for m < n, with `tree` from build_threshold_tree. A finite d
// never goes right at a +inf node, so the padding adds nothing to the count. Ties go left: the count is
// of thresholds strictly below, as in count_below.
__attribute__((target("avx512f"))) inline void search_buckets_avx512(const float* d, int64_t n, const float* tree,
                                                                     int32_t* bucket) {
  const __m512 low = _mm512_loadu_ps(tree), low_hi = _mm512_loadu_ps(tree + 16);         // nodes 0-31
  const __m512 leaf = _mm512_loadu_ps(tree + 32), leaf_hi = _mm512_loadu_ps(tree + 48);  // nodes 32-63
  const __m512 root = _mm512_set1_ps(tree[1]);
  const __m512i two = _mm512_set1_epi32(2), one = _mm512_set1_epi32(1), first_leaf = _mm512_set1_epi32(kTreeNodes);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 lanes = n - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - j)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(lanes, d + j);
    // Level 0: node 1 -> node 2 or 3.
    __m512i node = _mm512_mask_add_epi32(two, _mm512_cmp_ps_mask(root, x, _CMP_LT_OQ), two, one);
    // Levels 1-4: nodes 2-31, indexed by their low five bits across (low, low_hi).
    for (int level = 1; level < kTreeLevels - 1; ++level) {
      const __mmask16 right = _mm512_cmp_ps_mask(_mm512_permutex2var_ps(low, node, low_hi), x, _CMP_LT_OQ);
      node = _mm512_add_epi32(node, node);
      node = _mm512_mask_add_epi32(node, right, node, one);
    }
    // Level 5: nodes 32-63, low five bits again, across (leaf, leaf_hi).
    const __mmask16 right = _mm512_cmp_ps_mask(_mm512_permutex2var_ps(leaf, node, leaf_hi), x, _CMP_LT_OQ);
    node = _mm512_add_epi32(node, node);
    node = _mm512_mask_add_epi32(node, right, node, one);
    _mm512_mask_storeu_epi32(bucket + j, lanes, _mm512_sub_epi32(node, first_leaf));
  }
}

// One level of the AVX2 search: node := 2 node + (t < x), a true compare being -1 in every bit.
__attribute__((target("avx2"), always_inline)) inline __m256i descend_avx2(__m256i node, __m256 t, __m256 x) {
  const __m256i right = _mm256_castps_si256(_mm256_cmp_ps(t, x, _CMP_LT_OQ));
  return _mm256_sub_epi32(_mm256_add_epi32(node, node), right);
}

// `one` where the node's bit `bit` is set, else `zero` (blendv picks by each lane's sign bit).
__attribute__((target("avx2"), always_inline)) inline __m256 by_bit_avx2(__m256 zero, __m256 one, __m256i node,
                                                                         int bit) {
  return _mm256_blendv_ps(zero, one, _mm256_castsi256_ps(_mm256_slli_epi32(node, 31 - bit)));
}

// The same search on AVX2, 8 negatives at a time: its permutes reach 8 nodes, so levels 1-3 take one
// permute, level 4 two and a blend on the node's bit 3, level 5 four and three blends on bits 3 and 4.
__attribute__((target("avx2"))) inline void search_buckets_avx2(const float* d, int64_t n, const float* tree,
                                                                int32_t* bucket) {
  __m256 part[8];  // nodes 8p .. 8p + 7
  for (int p = 0; p < 8; ++p) part[p] = _mm256_loadu_ps(tree + 8 * p);
  const __m256 root = _mm256_set1_ps(tree[1]);
  const __m256i two = _mm256_set1_epi32(2), first_leaf = _mm256_set1_epi32(kTreeNodes);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t j = 0; j < n; j += 8) {
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(n - j < 8 ? n - j : 8)), lane);
    const __m256 x = _mm256_maskload_ps(d + j, lanes);
    __m256i node = _mm256_sub_epi32(two, _mm256_castps_si256(_mm256_cmp_ps(root, x, _CMP_LT_OQ)));
    node = descend_avx2(node, _mm256_permutevar8x32_ps(part[0], node), x);  // level 1: nodes 2-3
    node = descend_avx2(node, _mm256_permutevar8x32_ps(part[0], node), x);  // level 2: nodes 4-7
    node = descend_avx2(node, _mm256_permutevar8x32_ps(part[1], node), x);  // level 3: nodes 8-15
    node = descend_avx2(
        node, by_bit_avx2(_mm256_permutevar8x32_ps(part[2], node), _mm256_permutevar8x32_ps(part[3], node), node, 3),
        x);  // level 4: nodes 16-31
    const __m256 low =
        by_bit_avx2(_mm256_permutevar8x32_ps(part[4], node), _mm256_permutevar8x32_ps(part[5], node), node, 3);
    const __m256 high =
        by_bit_avx2(_mm256_permutevar8x32_ps(part[6], node), _mm256_permutevar8x32_ps(part[7], node), node, 3);
    node = descend_avx2(node, by_bit_avx2(low, high, node, 4), x);  // level 5: nodes 32-63
    _mm256_maskstore_epi32(bucket + j, lanes, _mm256_sub_epi32(node, first_leaf));
  }
}
#endif

}  // namespace fx
