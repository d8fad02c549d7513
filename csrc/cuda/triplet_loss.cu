// Triplet margin loss forward/backward on CUDA.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "checks.h"
#include "cuda/error_word.h"
#include "cuda/kernels/triplet_loss.cuh"
#include "cuda/launch.cuh"
#include "cuda/triplet_csr.h"

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
  int32_t* error_word = cuda::error_word_ptr(emb.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_loss_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const cuda::Launch l = cuda::triplet_forward_launch(T);
    cuda::triplet_forward_kernel<scalar_t, acc_t><<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(
        emb.data_ptr<scalar_t>(), emb.size(0), D, anchor.data_ptr<int64_t>(), positive.data_ptr<int64_t>(),
        negative.data_ptr<int64_t>(), T, static_cast<acc_t>(margin), squared, loss.data_ptr<acc_t>(),
        d_ap.data_ptr<acc_t>(), d_an.data_ptr<acc_t>(), error_word);
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
  if (T == 0 || B == 0 || D == 0) return at::zeros_like(emb);
  const at::Tensor g = grad_loss.to(acc_type(emb.scalar_type())).contiguous();
  const cuda::TripletCsr csr = cuda::triplet_csr(anchor, positive, negative, B, cuda::error_word_ptr(emb.device()));
  // Each row's segments (geometry.h triplet_row_segments) and their global numbering, in ATen ops that stay
  // on the device: the kernels size their grids by the bound, not by a count read back.
  const at::Tensor entries = csr.row_ptr.slice(0, 1) - csr.row_ptr.slice(0, 0, B);
  const int64_t S = kTripletSegment;
  const at::Tensor segments = at::where(entries > S, at::floor_divide(entries + (S - 1), S), at::ones_like(entries));
  const at::Tensor seg_ptr = at::cat({at::zeros({1}, entries.options()), at::cumsum(segments, 0)});
  const int64_t bound = cuda::triplet_segment_bound(B, T);
  // Every row is written once: by its one segment's warp, or by the combine kernel.
  at::Tensor grad = at::empty_like(emb);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_loss_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor partial = at::empty({bound, D}, g.options());
    const cuda::TripletBackwardArgs<scalar_t, acc_t> args{emb.data_ptr<scalar_t>(),
                                                          B,
                                                          D,
                                                          anchor.data_ptr<int64_t>(),
                                                          positive.data_ptr<int64_t>(),
                                                          negative.data_ptr<int64_t>(),
                                                          g.data_ptr<acc_t>(),
                                                          loss.data_ptr<acc_t>(),
                                                          d_ap.data_ptr<acc_t>(),
                                                          d_an.data_ptr<acc_t>(),
                                                          squared,
                                                          csr.row_ptr.data_ptr<int64_t>(),
                                                          csr.entry.data_ptr<int64_t>(),
                                                          seg_ptr.data_ptr<int64_t>(),
                                                          partial.data_ptr<acc_t>(),
                                                          grad.data_ptr<scalar_t>()};
    const cuda::Launch l = cuda::triplet_backward_launch(bound);
    cuda::triplet_backward_kernel<scalar_t, acc_t>
        <<<cuda::grid_of(l), cuda::block_of(l), 0, cuda::current_stream()>>>(args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const cuda::Launch c = cuda::triplet_combine_launch(B, D);
    cuda::triplet_combine_kernel<scalar_t, acc_t><<<cuda::grid_of(c), cuda::block_of(c), 0, cuda::current_stream()>>>(
        seg_ptr.data_ptr<int64_t>(), partial.data_ptr<acc_t>(), B, D, grad.data_ptr<scalar_t>());
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
