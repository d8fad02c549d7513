// Device-generic helpers of the triplet loss: input checks, and which mined triplets touch each embedding row, in a fixed order.
// The backward pass sums each row's contributions in this order, so gradients are bit-for-bit
// reproducible run to run (no float atomics) and cost O(T * D).
#pragma once
#include <ATen/ATen.h>

namespace fx {

struct TripletCsr {
  at::Tensor row_ptr;  // int64 [B + 1]
  at::Tensor entry;    // int64 [3T]: k = 3 t + role, role 0 = anchor, 1 = positive, 2 = negative
                       // (dividing by the constant 3 compiles to a multiply, unlike dividing by T)
};

// emb must be 2-D floating point; messages name `op`.
void check_triplet_emb(const char* op, const at::Tensor& emb);

// Index tensors of mined triplets: int64, 1-D, equal length, on `device`. Their range is the caller's
// contract (the Python wrapper checks user-supplied indices); checking here would cost a host sync.
void check_triplet_indices(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, const at::Device& device);

// Per-triplet outputs (loss, distances) are float64 for float64 embeddings, float32 otherwise.
at::ScalarType triplet_acc_type(at::ScalarType emb_type);

TripletCsr triplet_csr(const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative, int64_t B);

}  // namespace fx
