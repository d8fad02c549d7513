// The distance epilogue: ||x||^2 + ||y||^2 - 2<x, y>, clamped at 0 (cancellation can make it
// slightly negative). Written as `v < 0 ? 0 : v`: a NaN (from a NaN/Inf embedding) stays NaN, so the
// miners' finiteness check sees it, instead of being clamped to a plausible 0.
#pragma once
#include "common/macros.h"

namespace fx {

template <typename T>
FX_HD T sq_dist_from_gram(T x_norm, T y_norm, T gram) {
  const T v = x_norm + y_norm - T(2) * gram;
  return v < T(0) ? T(0) : v;
}

}  // namespace fx
