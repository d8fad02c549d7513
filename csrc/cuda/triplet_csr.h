// The CUDA triplet backward's row index: which (triplet, role) entries touch each embedding row, grouped
// by row and in increasing k = 3 t + role within a row, the order in which the backward sums (and the
// CPU's counting sort leaves them). Built without a sort (kernels/triplet_csr.cuh): int64 throughout, no
// limit on 3T, no host sync.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace fx::cuda {

struct TripletCsr {
  at::Tensor row_ptr;  // int64 [B + 1]; row_ptr[B] counts the in-range entries only
  at::Tensor entry;    // int64 [3T]: k = 3 t + role, role 0 = anchor, 1 = positive, 2 = negative; entries
                       // with an index outside [0, B) follow row_ptr[B]
};

// anchor/positive/negative: packed int64 [T] on the current CUDA device (T > 0, B > 0). An index outside
// [0, B) sets kErrorIndexRange in *error_word.
TripletCsr triplet_csr(const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative, int64_t B,
                       int32_t* error_word);

}  // namespace fx::cuda
