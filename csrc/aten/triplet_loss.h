// Device-generic helpers of the triplet loss: input checks. (Each backend builds its own index of which
// triplets touch each row: cpu/triplet_loss.cpp by a counting sort, cuda/triplet_csr.h on the device.)
#pragma once
#include <ATen/ATen.h>

namespace fx {

// The forward's arguments: emb 2-D floating; anchor/positive/negative 1-D int64 of equal length on
// emb's device; margin finite, >= 0 and representable in the accumulation dtype. Index range is checked
// by the kernels (CPU: check_triplet_index_range, IndexError; CUDA: NaN and a bit in the device error word
// that fx.check_errors() raises, see kernels/triplet_loss.cuh), which costs no host sync.
void check_triplet_forward(const char* op, const at::Tensor& emb, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, double margin);

// The backward's arguments: the forward's, plus grad_loss (floating) and loss, d_ap, d_an (the
// forward's outputs: accumulation dtype), each 1-D of length T on emb's device.
void check_triplet_backward(const char* op, const at::Tensor& grad_loss, const at::Tensor& emb,
                            const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative,
                            const at::Tensor& loss, const at::Tensor& d_ap, const at::Tensor& d_an);

// CPU: raises IndexError unless every (contiguous, int64) index lies in [0, B).
void check_triplet_index_range(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                               const at::Tensor& negative, int64_t B);

}  // namespace fx
