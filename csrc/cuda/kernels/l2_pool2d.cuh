// L2 pooling kernels over contiguous NCHW planes: one thread per output (forward) and one thread per
// input gathering over the windows that contain it (backward), so every element is written by exactly
// one thread: no atomics, deterministic. The geometry and the zero-safe gradient come from
// rules/l2_pool_rules.h, the code the CPU kernels (and so the CPU tests) run too.
#pragma once
#include <cstdint>

#include "rules/l2_pool_rules.h"

namespace fx::cuda {

// I: index type for in-tensor offsets (int32 when every tensor fits, which keeps the divisions cheap).
template <typename I>
struct L2PoolDims {
  I C, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
};

struct GradStrides {  // grad_out is read through its strides (it is often an expanded or sliced view)
  int64_t n, c, h, w;
};

// Sums column by column (each column's rows first), the order of the CPU kernel's separable passes.
template <typename scalar_t, typename acc_t, typename I>
__global__ void l2_pool2d_forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, int64_t total,
                                         L2PoolDims<I> d) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const I i = static_cast<I>(k);
    const I ow = i % d.OW, oh = (i / d.OW) % d.OH, plane = i / (d.OW * d.OH);
    const Span<I> rows = window_span(oh, d.kh, d.sh, d.ph, d.H);
    const Span<I> cols = window_span(ow, d.kw, d.sw, d.pw, d.W);
    const scalar_t* xp = x + plane * d.H * d.W;
    acc_t sum = 0;
    for (I iw = cols.lo; iw < cols.hi; ++iw) {
      acc_t column = 0;
      for (I ih = rows.lo; ih < rows.hi; ++ih) {
        const acc_t v = static_cast<acc_t>(xp[ih * d.W + iw]);
        column += v * v;
      }
      sum += column;
    }
    y[i] = static_cast<scalar_t>(fx_sqrt(sum));
  }
}

template <typename scalar_t, typename acc_t, typename I>
__global__ void l2_pool2d_backward_kernel(const scalar_t* __restrict__ grad_out, GradStrides gs,
                                          const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                          scalar_t* __restrict__ dx, int64_t total, L2PoolDims<I> d) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const I i = static_cast<I>(k);
    const I iw = i % d.W, ih = (i / d.W) % d.H, plane = i / (d.W * d.H);
    const Span<I> rows = covering_span(ih, d.kh, d.sh, d.ph, d.OH);
    const Span<I> cols = covering_span(iw, d.kw, d.sw, d.pw, d.OW);
    const scalar_t* gp = grad_out + int64_t(plane / d.C) * gs.n + int64_t(plane % d.C) * gs.c;
    const scalar_t* yp = y + plane * d.OH * d.OW;
    // The CPU kernel's order, so that both give the same bits (neither contracts to FMA): each covering
    // column's rows summed first, then the columns from the last to the first (the CPU's spread over the
    // kernel's columns runs that way).
    acc_t ratio_sum = 0;
    for (I ow = cols.hi - 1; ow >= cols.lo; --ow) {
      acc_t column = 0;
      for (I oh = rows.lo; oh < rows.hi; ++oh) {
        column += l2_grad_ratio(static_cast<acc_t>(gp[oh * gs.h + ow * gs.w]), static_cast<acc_t>(yp[oh * d.OW + ow]));
      }
      ratio_sum += column;
    }
    dx[i] = static_cast<scalar_t>(static_cast<acc_t>(x[i]) * ratio_sum);
  }
}

}  // namespace fx::cuda
