// Device-generic helpers of the triplet loss: input checks, and which mined triplets touch each
// embedding row, in a fixed order. The backward pass sums each row's contributions in this order, so
// gradients are bit-for-bit reproducible run to run (no float atomics) and cost O(T * D).
#pragma once
#include <ATen/ATen.h>

namespace fx {

struct TripletCsr {
  at::Tensor row_ptr;  // int64 [B + 1]
  at::Tensor entry;    // int64 [3T]: k = 3 t + role, role 0 = anchor, 1 = positive, 2 = negative
                       // (dividing by the constant 3 compiles to a multiply, unlike dividing by T)
};

// The forward's arguments: emb 2-D floating; anchor/positive/negative 1-D int64 of equal length on
// emb's device; margin finite, >= 0 and representable in the accumulation dtype. Index range is checked
// by the kernels (CPU: check_triplet_index_range; CUDA: a device assert), which costs no host sync.
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

// The CUDA backward's CSR (a stable device sort; the CPU builds its own by a counting sort on raw arrays).
TripletCsr triplet_csr(const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative, int64_t B);

}  // namespace fx
