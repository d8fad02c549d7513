#include "aten/l2_pool2d.h"

#include "checks.h"
#include "common/l2_pool_rules.h"

namespace fx {

L2PoolGeometry l2_pool_geometry(const char* op, const at::Tensor& x, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode) {
  check_dim(op, "x", x, 4, "[N, C, H, W]");
  check_floating(op, "x", x);
  TORCH_CHECK_VALUE(x.size(2) >= 1 && x.size(3) >= 1, op, ": x must have non-empty spatial dimensions, got shape ",
                    x.sizes());
  TORCH_CHECK_VALUE(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2, op,
                    ": kernel_size, stride and padding must have two entries each");
  // Output size (OH, OW) is filled in below, once the arguments are known to be valid.
  L2PoolGeometry g{};
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.kh = kernel_size[0];
  g.kw = kernel_size[1];
  g.sh = stride[0];
  g.sw = stride[1];
  g.ph = padding[0];
  g.pw = padding[1];
  TORCH_CHECK_VALUE(g.kh >= 1 && g.kw >= 1, op, ": kernel_size must be >= 1, got ", kernel_size);
  TORCH_CHECK_VALUE(g.sh >= 1 && g.sw >= 1, op, ": stride must be >= 1, got ", stride);
  TORCH_CHECK_VALUE(g.ph >= 0 && g.pw >= 0 && 2 * g.ph <= g.kh && 2 * g.pw <= g.kw, op,
                    ": padding must be >= 0 and at most half of kernel_size, got padding ", padding,
                    " for kernel_size ", kernel_size);
  g.OH = pool_out_size<int64_t>(g.H, g.kh, g.sh, g.ph, ceil_mode);
  g.OW = pool_out_size<int64_t>(g.W, g.kw, g.sw, g.pw, ceil_mode);
  TORCH_CHECK_VALUE(g.OH >= 1 && g.OW >= 1, op, ": output size would be ", g.OH, "x", g.OW, " for input ", g.H, "x",
                    g.W, " (kernel_size ", kernel_size, ", stride ", stride, ", padding ", padding,
                    "): the input is too small");
  return g;
}

L2PoolGeometry l2_pool_backward_geometry(const char* op, const at::Tensor& grad_out, const at::Tensor& x,
                                         const at::Tensor& out, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                         at::IntArrayRef padding, bool ceil_mode) {
  const L2PoolGeometry g = l2_pool_geometry(op, x, kernel_size, stride, padding, ceil_mode);
  const std::vector<int64_t> expected{g.N, g.C, g.OH, g.OW};
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef(expected), op, ": grad_out has shape ", grad_out.sizes(),
                    " but the output has shape ", at::IntArrayRef(expected));
  TORCH_CHECK_VALUE(out.sizes() == at::IntArrayRef(expected), op, ": out has shape ", out.sizes(), " but expected ",
                    at::IntArrayRef(expected));
  for (const at::Tensor* t : {&grad_out, &out}) {
    TORCH_CHECK_TYPE(t->scalar_type() == x.scalar_type(), op, ": grad_out and out must have x's dtype ",
                     x.scalar_type(), ", got ", t->scalar_type());
    TORCH_CHECK_VALUE(t->device() == x.device(), op, ": grad_out and out must be on x's device ", x.device(), ", got ",
                      t->device());
  }
  return g;
}

}  // namespace fx
