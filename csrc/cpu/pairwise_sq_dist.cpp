// pairwise_sq_dist on CPU: BLAS Gram matrix written into the output, then one in-place epilogue.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <ATen/ops/empty_cpu_dispatch.h>
#include <ATen/ops/mm_cpu_dispatch.h>
#include <ATen/ops/t_native.h>

#include <cmath>
#include <vector>

#include "checks.h"
#include "rules/pairwise_rules.h"
#include "cpu/pairwise_sq_dist.h"
#include "shared/tensors.h"
#include "cpu/grain.h"

namespace fx {
namespace {

constexpr int64_t kTile = 64;

// Symmetric case: each tile pair (I <= J) reads only the upper triangle of the Gram matrix and writes
// both D_ij and D_ji from it, so the result is exactly symmetric and the diagonal exactly zero.
// Distinct tile pairs touch disjoint elements, so they run in parallel without races.
template <typename T>
void symmetric_epilogue(T* out, const T* norm, int64_t B) {
  const int64_t tiles = (B + kTile - 1) / kTile;
  const int64_t pairs = tiles * (tiles + 1) / 2;
  at::parallel_for(0, pairs, grain_for(kTile * kTile), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      // k -> (ti, tj) with ti <= tj, enumerating row-major over the upper triangle of tiles.
      int64_t ti = 0, rest = k;
      while (rest >= tiles - ti) rest -= tiles - ti++;
      const int64_t tj = ti + rest;
      const int64_t i0 = ti * kTile, i1 = std::min(B, i0 + kTile);
      const int64_t j0 = tj * kTile, j1 = std::min(B, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t jstart = std::max(j0, i + 1);
        T* row = out + i * B;
        for (int64_t j = jstart; j < j1; ++j) {
          const T d = sq_dist_from_gram(norm[i], norm[j], row[j]);
          row[j] = d;
          out[j * B + i] = d;
        }
        if (ti == tj) row[i] = T(0);
      }
    }
  });
}

template <typename T>
void cross_epilogue(T* out, const T* x_norm, const T* y_norm, int64_t B, int64_t N) {
  at::parallel_for(0, B, grain_for(N), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* row = out + i * N;
      for (int64_t j = 0; j < N; ++j) row[j] = sq_dist_from_gram(x_norm[i], y_norm[j], row[j]);
    }
  });
}

}  // namespace

at::Tensor pairwise_sq_dist_cpu_impl(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                                     const std::optional<at::Tensor>& y) {
  check_pairwise_inputs(op, x_name, x, y_name, y);
  // Straight to the CPU kernels (at::cpu::, at::native::): inputs are checked CPU tensors, and each
  // dispatcher hop would cost more than the work at small B.
  const auto acc = acc_type(x.scalar_type());
  const bool symmetric = !y.has_value();
  const at::Tensor xa = packed_as(x, acc);
  const at::Tensor ya = symmetric ? xa : packed_as(*y, acc);
  const int64_t B = xa.size(0), N = ya.size(0), D = xa.size(1);
  at::Tensor out = at::cpu::empty({B, N}, xa.options());
  AT_DISPATCH_FLOATING_TYPES(acc, "pairwise_sq_dist_cpu", [&] {
    std::vector<scalar_t> x_norm(B), y_norm(symmetric ? 0 : N);
    // NaN/Inf inputs, or finite ones whose squared norms overflow (inf - inf = NaN distances): say which.
    if (!row_norms(xa.data_ptr<scalar_t>(), B, D, x_norm.data())) fail_norms_non_finite(op, x_name, x);
    if (!symmetric && !row_norms(ya.data_ptr<scalar_t>(), N, D, y_norm.data())) fail_norms_non_finite(op, y_name, *y);
    if (out.numel() == 0) return;
    at::cpu::mm_out(out, xa, at::native::t(ya));
    scalar_t* o = out.data_ptr<scalar_t>();
    if (symmetric) {
      symmetric_epilogue<scalar_t>(o, x_norm.data(), B);
    } else {
      cross_epilogue<scalar_t>(o, x_norm.data(), y_norm.data(), B, N);
    }
  });
  return out;
}

void fail_norms_non_finite(const char* op, const char* name, const at::Tensor& t) {
  check_finite_embeddings(op, name, t);
  TORCH_CHECK_VALUE(false, op, ": ", name, " has a squared norm that overflows ", acc_type(t.scalar_type()),
                    "; rescale the embeddings or use float64");
  __builtin_unreachable();
}

void check_finite_embeddings(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(at::isfinite(t).all().item<bool>(), op, ": ", name, " contains NaN or Inf");
}

namespace {
at::Tensor pairwise_sq_dist_cpu(const at::Tensor& x, const std::optional<at::Tensor>& y) {
  return pairwise_sq_dist_cpu_impl("pairwise_sq_dist", "x", x, "y", y);
}
}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) { m.impl("pairwise_sq_dist", &pairwise_sq_dist_cpu); }

}  // namespace fx
