// Shared front half of l2_pool2d for both backends: argument checks (the C++ op can be called
// directly, bypassing the Python wrapper's) and the pooling geometry.
#pragma once
#include <ATen/ATen.h>

namespace fx {

struct L2PoolGeometry {
  int64_t N, C, H, W;  // input [N, C, H, W]
  int64_t OH, OW;      // output [N, C, OH, OW]
  int64_t kh, kw, sh, sw, ph, pw;
};

// Checks x (4-D floating) and the int[2] arguments with torch's pooling rules, returns the geometry.
L2PoolGeometry l2_pool_geometry(const char* op, const at::Tensor& x, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode);

// Also checks that grad_out and out have the forward's output shape, and x's dtype and device.
L2PoolGeometry l2_pool_backward_geometry(const char* op, const at::Tensor& grad_out, const at::Tensor& x,
                                         const at::Tensor& out, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                         at::IntArrayRef padding, bool ceil_mode);

}  // namespace fx
