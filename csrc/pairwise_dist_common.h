// Shared front half of pairwise_sq_dist for both backends: argument checks, the accumulation dtype,
// the Gram term written straight into the output buffer (so the epilogue works in place and no
// second B x N temporary exists), and the squared norms.
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

PairwiseParts pairwise_gram(const at::Tensor& x, const std::optional<at::Tensor>& y);

}  // namespace fx
