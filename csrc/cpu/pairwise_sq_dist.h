// The CPU's pairwise_sq_dist (the whole op, for the fused miners, which name their own op and argument)
// and the squared norms and NaN/Inf checks it and the fused all-semi-hard loss share.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <optional>

namespace fx {

at::Tensor pairwise_sq_dist_cpu_impl(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                                     const std::optional<at::Tensor>& y);

// Squared norms of the rows of a packed [n, D] matrix, summed in index order (the norms the CPU distances
// use); false if one is not finite.
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

// Raises ValueError for a non-finite squared norm of `t`, naming the cause: NaN/Inf entries in `t`, or
// finite entries whose squared norm overflows the accumulation dtype (then Gram-expanded distances would
// be inf - inf = NaN). Called only once a norm was found non-finite.
[[noreturn]] void fail_norms_non_finite(const char* op, const char* name, const at::Tensor& t);

// Raises ValueError when `t` holds a NaN or Inf (the fused miners' check when no distance is computed, so
// a batch that forms no triplet still reports bad embeddings).
void check_finite_embeddings(const char* op, const char* name, const at::Tensor& t);

}  // namespace fx
