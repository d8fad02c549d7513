// Triplet margin loss forward/backward on CUDA.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "checks.h"
#include "cuda/kernels/triplet_loss.cuh"
#include "cuda/launch.cuh"
#include "aten/triplet_loss.h"

namespace fx {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> triplet_loss_forward_cuda(const at::Tensor& emb_in,
                                                                         const at::Tensor& anchor_in,
                                                                         const at::Tensor& positive_in,
                                                                         const at::Tensor& negative_in, double margin,
                                                                         bool squared) {
  const char* op = "triplet_loss_forward";
  check_triplet_forward(op, emb_in, anchor_in, positive_in, negative_in, margin);
  const c10::cuda::CUDAGuard guard(emb_in.device());
  // Every input is read through raw pointers as packed: strided or expanded views are packed first.
  const at::Tensor emb = emb_in.contiguous(), anchor = anchor_in.contiguous(), positive = positive_in.contiguous(),
                   negative = negative_in.contiguous();
  const int64_t T = anchor.size(0), D = emb.size(1);
  auto out_opts = emb.options().dtype(acc_type(emb.scalar_type()));
  at::Tensor loss = at::empty({T}, out_opts), d_ap = at::empty({T}, out_opts), d_an = at::empty({T}, out_opts);
  if (T == 0) return {loss, d_ap, d_an};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_loss_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const cuda::Launch l = cuda::triplet_forward_launch(T);
    cuda::triplet_forward_kernel<scalar_t, acc_t><<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(
        emb.data_ptr<scalar_t>(), emb.size(0), D, anchor.data_ptr<int64_t>(), positive.data_ptr<int64_t>(),
        negative.data_ptr<int64_t>(), T, static_cast<acc_t>(margin), squared, loss.data_ptr<acc_t>(),
        d_ap.data_ptr<acc_t>(), d_an.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {loss, d_ap, d_an};
}

at::Tensor triplet_loss_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& emb_in,
                                      const at::Tensor& anchor_in, const at::Tensor& positive_in,
                                      const at::Tensor& negative_in, const at::Tensor& loss_in,
                                      const at::Tensor& d_ap_in, const at::Tensor& d_an_in, bool squared) {
  const char* op = "triplet_loss_backward";
  check_triplet_backward(op, grad_loss, emb_in, anchor_in, positive_in, negative_in, loss_in, d_ap_in, d_an_in);
  const c10::cuda::CUDAGuard guard(emb_in.device());
  const at::Tensor emb = emb_in.contiguous(), anchor = anchor_in.contiguous(), positive = positive_in.contiguous(),
                   negative = negative_in.contiguous(), loss = loss_in.contiguous(), d_ap = d_ap_in.contiguous(),
                   d_an = d_an_in.contiguous();
  const int64_t B = emb.size(0), D = emb.size(1), T = anchor.size(0);
  at::Tensor grad = at::zeros_like(emb);
  if (T == 0 || B == 0 || D == 0) return grad;
  const at::Tensor g = grad_loss.to(acc_type(emb.scalar_type())).contiguous();
  const TripletCsr csr = triplet_csr(anchor, positive, negative, B);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_loss_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const cuda::Launch l = cuda::triplet_backward_launch(B);
    cuda::triplet_backward_kernel<scalar_t, acc_t><<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(
        emb.data_ptr<scalar_t>(), B, D, anchor.data_ptr<int64_t>(), positive.data_ptr<int64_t>(),
        negative.data_ptr<int64_t>(), g.data_ptr<acc_t>(), loss.data_ptr<acc_t>(), d_ap.data_ptr<acc_t>(),
        d_an.data_ptr<acc_t>(), squared, csr.row_ptr.data_ptr<int64_t>(), csr.entry.data_ptr<int64_t>(),
        grad.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
  m.impl("triplet_loss_forward", &triplet_loss_forward_cuda);
  m.impl("triplet_loss_backward", &triplet_loss_backward_cuda);
}

}  // namespace fx
