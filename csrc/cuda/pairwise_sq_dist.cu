// pairwise_sq_dist on CUDA: cuBLAS Gram matrix into the output, then one in-place epilogue pass.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cuda/kernels/pairwise_sq_dist.cuh"
#include "cuda/launch.cuh"
#include "cuda/pairwise_sq_dist.h"
#include "shared/tensors.h"

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

PairwiseParts pairwise_gram(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                            const std::optional<at::Tensor>& y) {
  check_pairwise_inputs(op, x_name, x, y_name, y);
  const auto acc = acc_type(x.scalar_type());
  PairwiseParts parts;
  parts.symmetric = !y.has_value();
  const at::Tensor xa = packed_as(x, acc);
  const at::Tensor ya = parts.symmetric ? xa : packed_as(*y, acc);
  if (parts.symmetric) return symmetric_gram(xa, xa.square().sum(1));
  parts.out = gram(xa, ya);
  parts.x_norm = xa.square().sum(1);
  parts.y_norm = ya.square().sum(1);
  return parts;
}

at::Tensor gram(const at::Tensor& xa, const at::Tensor& ya) {
  at::Tensor out = at::empty({xa.size(0), ya.size(0)}, xa.options());
  if (out.numel() > 0) {
    // Full fp32 whatever torch.backends.cuda.matmul.allow_tf32 / set_float32_matmul_precision say: TF32's
    // ~1e-3 relative error would change which triplets the miners choose, silently and unlike the CPU.
    // The guard is thread-local and leaves the global setting as the user left it.
    const at::NoTF32Guard full_precision;
    at::mm_out(out, xa, ya.t());
  }
  return out;
}

PairwiseParts symmetric_gram(const at::Tensor& xa, const at::Tensor& x_norm) {
  PairwiseParts parts;
  parts.symmetric = true;
  parts.out = gram(xa, xa);
  parts.x_norm = parts.y_norm = x_norm;
  return parts;
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
