// The selection rules of docs/semantics.md, written once for the CPU and CUDA miners.
//
// Every miner works on squared distances D; `squared=false` only changes the margin tests, which
// compare plain distances sqrt(D). Ties always go to the smaller index: scanning candidates in
// increasing index order with a strict comparison, or comparing (distance, index) pairs
// lexicographically, gives the same winner on every backend.
#pragma once
#include "rules/macros.h"

namespace fx {

template <typename T>
FX_HD T to_metric(T sq, bool squared) {
  return squared ? sq : fx_sqrt(sq);
}

// (d1, i1) < (d2, i2) lexicographically: the semi-hard "closest" order with ties to the smaller index.
template <typename T>
FX_HD bool lex_less(T d1, int64_t i1, T d2, int64_t i2) {
  return d1 < d2 || (d1 == d2 && i1 < i2);
}

// Number of entries of the ascending array `sorted[0..n)` strictly below `d`.
// A negative at distance d is semi-hard for the positive of sorted rank r exactly when
// sorted[r] < d, i.e. when count_below(...) > r: this count is the negative's "bucket".
// Branchless lower_bound, so the GPU's threads do not diverge and the CPU does not mispredict.
template <typename T>
FX_HD int count_below(const T* sorted, int n, T d) {
  if (n <= 0) return 0;
  const T* base = sorted;
  while (n > 1) {
    const int half = n >> 1;
    base = (base[half] < d) ? base + half : base;
    n -= half;
  }
  return static_cast<int>(base - sorted) + (*base < d ? 1 : 0);
}

// FaceNet's margin filter: keep the triplet only when it has non-zero loss, D_an < D_ap + margin.
template <typename T>
FX_HD bool inside_margin(T sq_ap, T sq_an, T margin, bool squared) {
  return to_metric(sq_an, squared) < to_metric(sq_ap, squared) + margin;
}

// The "semihard" rule of pytorch-metric-learning's TripletMarginMiner: 0 < D_an - D_ap <= margin,
// the difference taken literally so that float rounding matches theirs.
template <typename T>
FX_HD bool in_semi_hard_window(T metric_ap, T metric_an, T margin) {
  const T diff = metric_an - metric_ap;
  return diff > T(0) && diff <= margin;
}

// Inside the window, the triplet's loss margin + D_ap - D_an is non-zero exactly when the same literal
// difference is below the margin (the fused all-semi-hard loss counts these as active triplets).
template <typename T>
FX_HD bool semi_hard_active(T metric_ap, T metric_an, T margin) {
  return metric_an - metric_ap < margin;
}

}  // namespace fx
