// The distance epilogue: ||x||^2 + ||y||^2 - 2<x, y>, clamped at 0 (cancellation can make it
// slightly negative). Written as `v > 0 ? v : 0` so the result is +0, never -0 or NaN-propagating max.
#pragma once
#include "common/macros.h"

namespace fx {

template <typename T>
FX_HD T sq_dist_from_gram(T x_norm, T y_norm, T gram) {
  const T v = x_norm + y_norm - T(2) * gram;
  return v > T(0) ? v : T(0);
}

}  // namespace fx
