// pairwise_sq_dist on CUDA: cuBLAS Gram matrix into the output, then one in-place epilogue pass.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/pairwise_sq_dist.cuh"
#include "cuda/launch.cuh"
#include "aten/pairwise_sq_dist.h"

namespace fx {

// NaN/Inf inputs propagate to NaN distances, as with torch.cdist: a check would cost a host sync. The
// fused miners check their embeddings' norms in their label-groups kernel (kernels/label_groups.cuh).
at::Tensor pairwise_sq_dist_cuda_impl(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                                      const std::optional<at::Tensor>& y) {
  check_pairwise_inputs(op, x_name, x, y_name, y);  // before the guard: a CPU x must raise ValueError, not fail in it
  const c10::cuda::CUDAGuard guard(x.device());
  PairwiseParts parts = pairwise_gram(op, x_name, x, y_name, y);
  return finish_distances_cuda(parts);
}

at::Tensor finish_distances_cuda(PairwiseParts& parts) {
  const int64_t B = parts.out.size(0), N = parts.out.size(1);
  if (parts.out.numel() == 0) return parts.out;
  const cudaStream_t stream = cuda::current_stream();
  AT_DISPATCH_FLOATING_TYPES(parts.out.scalar_type(), "pairwise_sq_dist_cuda", [&] {
    scalar_t* out = parts.out.data_ptr<scalar_t>();
    if (parts.symmetric) {
      const cuda::Launch l = cuda::symmetric_dist_launch(B);
      cuda::symmetric_dist_epilogue<scalar_t>
          <<<cuda::grid_of(l), cuda::block_of(l), 0, stream>>>(out, parts.x_norm.data_ptr<scalar_t>(), B);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      const cuda::Launch l = cuda::cross_dist_launch(B, N);
      cuda::cross_dist_epilogue<scalar_t><<<cuda::grid_of(l), cuda::block_of(l), 0, stream>>>(
          out, parts.x_norm.data_ptr<scalar_t>(), parts.y_norm.data_ptr<scalar_t>(), B, N);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return parts.out;
}

namespace {
at::Tensor pairwise_sq_dist_cuda(const at::Tensor& x, const std::optional<at::Tensor>& y) {
  return pairwise_sq_dist_cuda_impl("pairwise_sq_dist", "x", x, "y", y);
}
}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) { m.impl("pairwise_sq_dist", &pairwise_sq_dist_cuda); }

}  // namespace fx
