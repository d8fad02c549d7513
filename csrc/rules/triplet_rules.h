// Per-triplet math of the margin loss L = [d_ap - d_an + margin]_+, shared by CPU and CUDA.
#pragma once
#include <cstdint>

#include "rules/macros.h"

namespace fx {

template <typename T>
FX_HD T hinge(T d_ap, T d_an, T margin) {
  const T v = d_ap - d_an + margin;
  return v > T(0) ? v : T(0);
}

// d(d)/d(x_i - x_j) = scale * (x_i - x_j): 2 for the squared distance, 1/d for the plain one.
// A plain distance of exactly 0 (duplicate embeddings) gets 0, the minimum-norm subgradient, never Inf/NaN.
template <typename T>
FX_HD T distance_grad_scale(T d, bool squared) {
  if (squared) return T(2);
  return d > T(0) ? T(1) / d : T(0);
}

// A triplet's gradient on one of its rows, as weights on (x_a - x_p) and (x_a - x_n):
//   dL/dx_a = cp (x_a - x_p) - cn (x_a - x_n),  dL/dx_p = -cp (x_a - x_p),  dL/dx_n = cn (x_a - x_n)
// with cp = g * scale(d_ap), cn = g * scale(d_an), and zero for an inactive triplet (loss == 0).
// role: 0 anchor, 1 positive, 2 negative.
template <typename T>
struct RowWeights {
  T wp, wn;
};

template <typename T>
FX_HD RowWeights<T> triplet_row_weights(int role, T grad, T loss, T d_ap, T d_an, bool squared) {
  if (!(loss > T(0))) return {T(0), T(0)};
  const T cp = grad * distance_grad_scale(d_ap, squared);
  const T cn = grad * distance_grad_scale(d_an, squared);
  if (role == 0) return {cp, -cn};
  if (role == 1) return {-cp, T(0)};
  return {T(0), cn};
}

// The backward sums a row's entries in segments of kTripletSegment entries, each from 0 (on CUDA each by
// its own warp into a partial sum), then adds the partials in segment order: a row in thousands of
// triplets (a tie-winning negative, the farthest-negative fallback) spreads over many warps, and the
// association is fixed. Both backends use this constant and this association, so both give the same bits.
// A multiple of 32: a CUDA warp fetches entries 32 at a time.
constexpr int64_t kTripletSegment = 256;
// A row's segments: at least one, so that every row of the gradient is written by exactly one warp.
FX_HD int64_t triplet_row_segments(int64_t entries) {
  return entries > kTripletSegment ? (entries + kTripletSegment - 1) / kTripletSegment : 1;
}

}  // namespace fx
