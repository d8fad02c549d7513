// The AVX-512 and AVX2 bucket searches (csrc/cpu/bucket_search.h), those this CPU has, against count_below
// (rules/mining_rules.h) on tie-heavy inputs: every K from 1 to 63, small-integer thresholds and negatives (ties at
// every threshold), half-integers between them, lengths that leave every tail of a 16-lane group. Built and run by
// tests/test_semi_hard_row_pass.py, also on mutated copies of the header, which it must reject. Prints the first
// mismatch and exits 1; prints "ok" and exits 0 otherwise.
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "rules/mining_rules.h"
#include "cpu/bucket_search.h"

struct Search {
  const char* name;
  void (*run)(const float*, int64_t, const float*, int32_t*);
};

int main() {
  std::vector<Search> searches;  // the ones this CPU runs
  if (__builtin_cpu_supports("avx512f")) searches.push_back({"avx512", fx::search_buckets_avx512});
  if (__builtin_cpu_supports("avx2")) searches.push_back({"avx2", fx::search_buckets_avx2});
  std::mt19937 rng(12345);
  float tree[fx::kTreeNodes];
  for (int K = 1; K <= fx::kTreeMaxThresholds; ++K) {
    for (int trial = 0; trial < 40; ++trial) {
      const int range = 1 + trial % 20;  // small ranges: many equal thresholds
      std::uniform_int_distribution<int> value(0, 2 * range + 1), wide(0, 2 * range + 3);
      std::vector<float> sorted(K);
      for (float& t : sorted) t = float(value(rng) / 2);
      if (trial == 0)
        for (int s = 0; s < K; ++s) sorted[s] = float(s);  // all distinct
      std::sort(sorted.begin(), sorted.end());
      const int n = 1 + int(rng() % 70);
      std::vector<float> d(n);
      for (float& x : d) x = wide(rng) * 0.5f - 0.5f;  // integers (ties), half-integers, below and above all
      fx::build_threshold_tree(sorted.data(), K, tree);
      for (const Search& search : searches) {
        std::vector<int32_t> bucket(n, -1);
        search.run(d.data(), n, tree, bucket.data());
        for (int m = 0; m < n; ++m) {
          const int want = fx::count_below(sorted.data(), K, d[m]);
          if (bucket[m] != want) {
            std::printf("%s, K=%d trial=%d d=%g: bucket %d, count_below %d\n", search.name, K, trial, d[m], bucket[m],
                        want);
            return 1;
          }
        }
      }
    }
  }
  std::printf("ok\n");
  return 0;
}
