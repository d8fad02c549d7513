// CUDA's pairwise_sq_dist in two halves, so the fused miners can reuse the norms they already computed:
// the Gram term (cuBLAS, written straight into the output buffer, so the epilogue works in place and no
// second B x N temporary exists) and the epilogue kernel that turns it into distances.
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace fx {

struct PairwiseParts {
  at::Tensor out;     // [B, N], holds x @ y^T on return; the epilogue turns it into distances in place
  at::Tensor x_norm;  // [B] squared norms, accumulation dtype
  at::Tensor y_norm;  // [N] (aliases x_norm when symmetric)
  bool symmetric = false;
};

// Checks the inputs, then the Gram term and the norms with ATen.
PairwiseParts pairwise_gram(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                            const std::optional<at::Tensor>& y);

// x @ y^T of two packed matrices in the accumulation dtype, in full precision (no TF32).
at::Tensor gram(const at::Tensor& xa, const at::Tensor& ya);

// The symmetric parts from a packed matrix in the accumulation dtype and its squared norms, computed by
// the caller (the fused miners compute them once, for their NaN/overflow flag and the distances).
PairwiseParts symmetric_gram(const at::Tensor& xa, const at::Tensor& x_norm);

// Turns parts.out (the Gram term) into the distances in place (the epilogue kernel); returns it.
at::Tensor finish_distances_cuda(PairwiseParts& parts);

// The whole op, for the fused miners (which name their own op and argument).
at::Tensor pairwise_sq_dist_cuda_impl(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                                      const std::optional<at::Tensor>& y);

}  // namespace fx
