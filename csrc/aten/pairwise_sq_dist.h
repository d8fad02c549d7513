// Shared front half of pairwise_sq_dist for both backends: argument checks, the accumulation dtype,
// the Gram term written straight into the output buffer (so the epilogue works in place and no
// second B x N temporary exists), and the squared norms.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <optional>

namespace fx {

struct PairwiseParts {
  at::Tensor out;     // [B, N], holds x @ y^T on return; the epilogue turns it into distances in place
  at::Tensor x_norm;  // [B] squared norms, accumulation dtype
  at::Tensor y_norm;  // [N] (aliases x_norm when symmetric)
  bool symmetric = false;
};

// Checks x (and y: 2-D floating, same width, dtype, device). Messages name `op` and the arguments as
// x_name / y_name (the fused miners call their embeddings "emb").
void check_pairwise_inputs(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                           const std::optional<at::Tensor>& y);

// `t` in dtype `type`, packed: t itself when it already is (no copy, no ATen call).
at::Tensor packed_as(const at::Tensor& t, at::ScalarType type);

// Checks the inputs, then the Gram term and the norms with ATen (the CUDA path).
PairwiseParts pairwise_gram(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                            const std::optional<at::Tensor>& y);

// x @ y^T of two packed matrices in the accumulation dtype, in full precision (no TF32).
at::Tensor gram(const at::Tensor& xa, const at::Tensor& ya);

// The symmetric parts from a packed matrix in the accumulation dtype and its squared norms, computed by
// the caller (the CUDA fused miners compute them once, for their NaN/overflow flag and the distances).
PairwiseParts symmetric_gram(const at::Tensor& xa, const at::Tensor& x_norm);

// CUDA: turns parts.out (the Gram term) into the distances in place (the epilogue kernel); returns it.
at::Tensor finish_distances_cuda(PairwiseParts& parts);

// CPU: squared norms of the rows of a packed [n, D] matrix, summed in index order (the norms the CPU
// distances use); false if one is not finite.
template <typename T>
bool row_norms(const T* x, int64_t n, int64_t D, T* norm) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    T s = 0;
    for (int64_t k = 0; k < D; ++k) s += x[i * D + k] * x[i * D + k];
    norm[i] = s;
    finite &= std::isfinite(s);
  }
  return finite;
}

// CPU: raises ValueError for a non-finite squared norm of `t`, naming the cause: NaN/Inf entries in
// `t`, or finite entries whose squared norm overflows the accumulation dtype (then Gram-expanded
// distances would be inf - inf = NaN). Called only once a norm was found non-finite.
[[noreturn]] void fail_norms_non_finite(const char* op, const char* name, const at::Tensor& t);

// CPU: raises ValueError when `t` holds a NaN or Inf (the fused miners' check when no distance is
// computed, so a batch that forms no triplet still reports bad embeddings).
void check_finite_embeddings(const char* op, const char* name, const at::Tensor& t);

// The largest squared norm whose distances ||x||^2 + ||y||^2 - 2<x, y> cannot overflow `dtype` (max / 4):
// the CUDA fused miners flag a batch with a larger (or NaN/Inf) norm inside their label-groups kernel.
double safe_norm_limit(at::ScalarType dtype);

// The whole op per backend, for the fused miners (which name their own op and argument).
at::Tensor pairwise_sq_dist_cpu_impl(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                                     const std::optional<at::Tensor>& y);
at::Tensor pairwise_sq_dist_cuda_impl(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                                      const std::optional<at::Tensor>& y);

}  // namespace fx
