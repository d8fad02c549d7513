// l2_pool2d on CUDA: checks and geometry shared with the CPU path (checks.h l2_pool_geometry), then one
// grid-stride kernel per direction (kernels/l2_pool2d.cuh). Like the CPU path, x is read as contiguous
// NCHW (channels-last x is copied first) and the result is NCHW-contiguous.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "cuda/kernels/l2_pool2d.cuh"
#include "cuda/launch.cuh"
#include "checks.h"

namespace fx {
namespace {

template <typename I>
cuda::L2PoolDims<I> dims_as(const L2PoolGeometry& g) {
  return {static_cast<I>(g.C),  static_cast<I>(g.H),  static_cast<I>(g.W),  static_cast<I>(g.OH),
          static_cast<I>(g.OW), static_cast<I>(g.kh), static_cast<I>(g.kw), static_cast<I>(g.sh),
          static_cast<I>(g.sw), static_cast<I>(g.ph), static_cast<I>(g.pw)};
}

bool fits_int32(const L2PoolGeometry& g) {
  return cuda::l2_pool_fits_int32(g.N * g.C * g.H * g.W, g.N * g.C * g.OH * g.OW, {g.H, g.OH, g.kh, g.sh, g.ph},
                                  {g.W, g.OW, g.kw, g.sw, g.pw});
}

at::Tensor l2_pool2d_cuda(const at::Tensor& x_in, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, bool ceil_mode) {
  const L2PoolGeometry g = l2_pool_geometry("l2_pool2d", x_in, kernel_size, stride, padding, ceil_mode);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty({g.N, g.C, g.OH, g.OW}, x.options());
  const int64_t total = y.numel();
  if (total == 0) return y;
  const cudaStream_t stream = cuda::current_stream();
  const cuda::Launch l = cuda::l2_pool_launch(total);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "l2_pool2d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    if (fits_int32(g)) {
      cuda::l2_pool2d_forward_kernel<scalar_t, acc_t, int32_t>
          <<<cuda::grid_of(l), cuda::block_of(l), 0, stream>>>(xp, yp, total, dims_as<int32_t>(g));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      cuda::l2_pool2d_forward_kernel<scalar_t, acc_t, int64_t>
          <<<cuda::grid_of(l), cuda::block_of(l), 0, stream>>>(xp, yp, total, dims_as<int64_t>(g));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return y;
}

at::Tensor l2_pool2d_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& out_in,
                                   at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                                   bool ceil_mode) {
  const L2PoolGeometry g =
      l2_pool_backward_geometry("l2_pool2d_backward", grad_out, x_in, out_in, kernel_size, stride, padding, ceil_mode);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), out = out_in.contiguous();
  at::Tensor dx = at::empty({g.N, g.C, g.H, g.W}, x.options());
  const int64_t total = dx.numel();
  if (total == 0) return dx;
  const cuda::GradStrides gs{grad_out.stride(0), grad_out.stride(1), grad_out.stride(2), grad_out.stride(3)};
  const cudaStream_t stream = cuda::current_stream();
  const cuda::Launch l = cuda::l2_pool_launch(total);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "l2_pool2d_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad_out.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* yp = out.const_data_ptr<scalar_t>();
    scalar_t* dxp = dx.mutable_data_ptr<scalar_t>();
    if (fits_int32(g)) {
      cuda::l2_pool2d_backward_kernel<scalar_t, acc_t, int32_t>
          <<<cuda::grid_of(l), cuda::block_of(l), 0, stream>>>(gp, gs, xp, yp, dxp, total, dims_as<int32_t>(g));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      cuda::l2_pool2d_backward_kernel<scalar_t, acc_t, int64_t>
          <<<cuda::grid_of(l), cuda::block_of(l), 0, stream>>>(gp, gs, xp, yp, dxp, total, dims_as<int64_t>(g));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return dx;
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("l2_pool2d", &l2_pool2d_cuda);
  m.impl("l2_pool2d_backward", &l2_pool2d_backward_cuda);
}

}  // namespace fx
