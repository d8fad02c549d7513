// The distance epilogue: ||x||^2 + ||y||^2 - 2<x, y>, clamped at 0 (cancellation can make it
// slightly negative). Written as `v < 0 ? 0 : v`: a NaN (from a NaN/Inf embedding) stays NaN, so the
// miners' finiteness check sees it, instead of being clamped to a plausible 0.
#pragma once
#include "rules/macros.h"

namespace fx {

template <typename T>
FX_HD T sq_dist_from_gram(T x_norm, T y_norm, T gram) {
  const T v = x_norm + y_norm - T(2) * gram;
  return v < T(0) ? T(0) : v;
}

}  // namespace fx

namespace fx {

// The Gram expansion loses relative precision when ||x - y||^2 is small next to ||x||^2 + ||y||^2
// (cancellation: at a true 0 it may return 1e-7 instead). Where the loss's value or gradient depends on
// such a distance (1 / d for plain distances), the fused loss recomputes it from the difference.
template <typename T>
FX_HD bool gram_distance_imprecise(T sq, T x_norm, T y_norm) {
  return sq < T(1e-2) * (x_norm + y_norm);
}

// The squared distance a loss uses for a pair the miner selected by its Gram distance `gram_sq`: that
// one, or the direct sum over the D coordinates of packed rows x, y where it is imprecise.
template <typename T>
FX_HD T refined_sq_dist(T gram_sq, const T* x, const T* y, T x_norm, T y_norm, int64_t D) {
  if (!gram_distance_imprecise(gram_sq, x_norm, y_norm)) return gram_sq;
  T s = 0;
  for (int64_t k = 0; k < D; ++k) s += (x[k] - y[k]) * (x[k] - y[k]);
  return s;
}

}  // namespace fx
