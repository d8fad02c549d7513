// l2_pool2d on CPU. One task per (n, c) plane, so planes run in parallel and never share an output.
// Layout: x (and out) are read as contiguous NCHW; channels-last or otherwise strided x is copied to
// NCHW first, and the result is NCHW-contiguous. grad_out is read through its strides (no copy).
// Both passes are separable: a vertical pass over whole rows, then a horizontal pass over a row
// buffer that carries the zero padding, so the inner loops are unit-stride (for stride 1) and
// branch-free. Per-thread scratch is O(plane); no full-size temporary besides the result.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "rules/l2_pool_rules.h"
#include "checks.h"

namespace fx {
namespace {

// Length of a row buffer indexed by padded column (input column iw sits at pw + iw): it holds the
// left padding, the input row, and the right padding or overhang of the last (ceil_mode) window.
int64_t padded_row_length(const L2PoolGeometry& g) { return std::max(g.W + g.pw, (g.OW - 1) * g.sw + g.kw); }

int64_t plane_grain(const L2PoolGeometry& g) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / (g.H * g.W)); }

template <typename scalar_t>
void forward_cpu_kernel(const scalar_t* x_all, scalar_t* y_all, const L2PoolGeometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW, sw = g.sw, kw = g.kw;
  at::parallel_for(0, g.N * g.C, plane_grain(g), [&](int64_t begin, int64_t end) {
    // col[pw + iw] = sum of x^2 over the window's rows in column iw; the padding entries stay 0.
    std::vector<acc_t> col_buf(padded_row_length(g), acc_t(0)), row_buf(OW);
    acc_t* __restrict__ col = col_buf.data();
    acc_t* __restrict__ row = row_buf.data();
    const int64_t pw = g.pw;
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* __restrict__ x = x_all + plane * H * W;
      scalar_t* __restrict__ y = y_all + plane * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const Span<int64_t> rows = window_span(oh, g.kh, g.sh, g.ph, H);  // never empty (l2_pool_rules.h)
        const scalar_t* __restrict__ xr = x + rows.lo * W;
        for (int64_t iw = 0; iw < W; ++iw) {
          const acc_t v = static_cast<acc_t>(xr[iw]);
          col[pw + iw] = v * v;
        }
        for (int64_t ih = rows.lo + 1; ih < rows.hi; ++ih) {
          xr = x + ih * W;
          for (int64_t iw = 0; iw < W; ++iw) {
            const acc_t v = static_cast<acc_t>(xr[iw]);
            col[pw + iw] += v * v;
          }
        }
        for (int64_t ow = 0; ow < OW; ++ow) row[ow] = col[ow * sw];
        for (int64_t j = 1; j < kw; ++j) {
          for (int64_t ow = 0; ow < OW; ++ow) row[ow] += col[ow * sw + j];
        }
        for (int64_t ow = 0; ow < OW; ++ow) y[oh * OW + ow] = static_cast<scalar_t>(fx_sqrt(row[ow]));
      }
    }
  });
}

// dx = x * sum over the windows containing x of g / y (l2_grad_ratio): per plane, first the ratios,
// then for each input row the sum of the ratio rows that cover it, spread back over the columns.
template <typename scalar_t>
void backward_cpu_kernel(const scalar_t* g_all, at::IntArrayRef g_strides, const scalar_t* x_all, const scalar_t* y_all,
                         scalar_t* dx_all, const L2PoolGeometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.C, H = g.H, W = g.W, OH = g.OH, OW = g.OW, sw = g.sw, kw = g.kw;
  const int64_t gsN = g_strides[0], gsC = g_strides[1], gsH = g_strides[2], gsW = g_strides[3];
  const int64_t row_len = padded_row_length(g);
  at::parallel_for(0, g.N * C, plane_grain(g), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> ratio_buf(OH * OW), rsum_buf(OW), spread_buf(row_len);
    acc_t* __restrict__ ratio = ratio_buf.data();
    acc_t* __restrict__ rsum = rsum_buf.data();
    acc_t* __restrict__ spread = spread_buf.data();
    const int64_t pw = g.pw;
    for (int64_t plane = begin; plane < end; ++plane) {
      const scalar_t* gp = g_all + (plane / C) * gsN + (plane % C) * gsC;
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) ratio[oh * OW + ow] = static_cast<acc_t>(gp[oh * gsH + ow * gsW]);
      }
      const scalar_t* __restrict__ y = y_all + plane * OH * OW;
      for (int64_t o = 0; o < OH * OW; ++o) ratio[o] = l2_grad_ratio(ratio[o], static_cast<acc_t>(y[o]));
      const scalar_t* __restrict__ x = x_all + plane * H * W;
      scalar_t* __restrict__ dx = dx_all + plane * H * W;
      for (int64_t ih = 0; ih < H; ++ih) {
        const Span<int64_t> outs = covering_span(ih, g.kh, g.sh, g.ph, OH);
        if (outs.lo >= outs.hi) {  // stride > kernel: this row is in no window
          std::fill(dx + ih * W, dx + (ih + 1) * W, scalar_t(0));
          continue;
        }
        std::copy(ratio + outs.lo * OW, ratio + (outs.lo + 1) * OW, rsum);
        for (int64_t oh = outs.lo + 1; oh < outs.hi; ++oh) {
          for (int64_t ow = 0; ow < OW; ++ow) rsum[ow] += ratio[oh * OW + ow];
        }
        std::fill(spread, spread + row_len, acc_t(0));
        for (int64_t j = 0; j < kw; ++j) {
          if (sw == 1) {  // the common case, spelled unit-stride so that it vectorises
            for (int64_t ow = 0; ow < OW; ++ow) spread[ow + j] += rsum[ow];
          } else {
            for (int64_t ow = 0; ow < OW; ++ow) spread[ow * sw + j] += rsum[ow];
          }
        }
        for (int64_t iw = 0; iw < W; ++iw) {
          dx[ih * W + iw] = static_cast<scalar_t>(static_cast<acc_t>(x[ih * W + iw]) * spread[pw + iw]);
        }
      }
    }
  });
}

at::Tensor l2_pool2d_cpu(const at::Tensor& x_in, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, bool ceil_mode) {
  const L2PoolGeometry g = l2_pool_geometry("l2_pool2d", x_in, kernel_size, stride, padding, ceil_mode);
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty({g.N, g.C, g.OH, g.OW}, x.options());
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "l2_pool2d_cpu", [&] {
    forward_cpu_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g);
  });
  return y;
}

at::Tensor l2_pool2d_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& out_in,
                                  at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                  bool ceil_mode) {
  const L2PoolGeometry g =
      l2_pool_backward_geometry("l2_pool2d_backward", grad_out, x_in, out_in, kernel_size, stride, padding, ceil_mode);
  const at::Tensor x = x_in.contiguous(), out = out_in.contiguous();
  at::Tensor dx = at::empty({g.N, g.C, g.H, g.W}, x.options());
  if (dx.numel() == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "l2_pool2d_backward_cpu", [&] {
    backward_cpu_kernel<scalar_t>(grad_out.const_data_ptr<scalar_t>(), grad_out.strides(), x.const_data_ptr<scalar_t>(),
                                  out.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(), g);
  });
  return dx;
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("l2_pool2d", &l2_pool2d_cpu);
  m.impl("l2_pool2d_backward", &l2_pool2d_backward_cpu);
}

}  // namespace fx
