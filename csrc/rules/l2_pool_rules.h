// The geometry and the gradient rule of L2 pooling, y = sqrt(sum over the window of x^2), written once
// for the CPU and CUDA kernels. Coordinates are along one spatial axis: input size `in`, output size
// `out`, kernel k, stride s, padding p; output o covers the padded-input positions [o*s - p, o*s - p + k).
// The padding is zeros, so a window is simply clipped to the input.
#pragma once
#include "rules/macros.h"

namespace fx {

template <typename I>
struct Span {  // half-open [lo, hi); empty when lo >= hi
  I lo, hi;
};

// floor(a / b) for b > 0 (C++ division truncates towards zero).
template <typename I>
FX_HD I floor_div(I a, I b) {
  const I q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// F.max_pool2d's output size (ATen's pooling_output_shape, dilation 1). With ceil_mode the last window
// may run past the right padding, but one that would start inside the right padding is dropped, so
// every window starts inside the input or the left padding. With in >= 1 and p <= k / 2 (< k) every
// window then overlaps the input: window_span is never empty.
template <typename I>
FX_HD I pool_out_size(I in, I k, I s, I p, bool ceil_mode) {
  I out = floor_div<I>(in + 2 * p - k + (ceil_mode ? s - 1 : 0), s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// Input positions read by output o, clipped to the input.
template <typename I>
FX_HD Span<I> window_span(I o, I k, I s, I p, I in) {
  const I start = o * s - p;
  return {start > 0 ? start : I(0), start + k < in ? start + k : in};
}

// Outputs whose windows contain input position i: o*s - p <= i < o*s - p + k, clipped to [0, out).
// The backward gathers over exactly these, so each input gradient is written by one thread.
template <typename I>
FX_HD Span<I> covering_span(I i, I k, I s, I p, I out) {
  const I lo = i + p < k ? I(0) : (i + p - k) / s + 1;
  const I hi = (i + p) / s + 1;
  return {lo, hi < out ? hi : out};
}

// dy/dx = x / y, so a window contributes x * (g / y) to each of its inputs. y == 0 means every input of
// the window is 0, where the gradient is taken as 0 (the minimum-norm subgradient of the norm) instead
// of 0 * Inf = NaN. A NaN y still propagates.
template <typename T>
FX_HD T l2_grad_ratio(T g, T y) {
  return y == T(0) ? T(0) : g / y;
}

}  // namespace fx
