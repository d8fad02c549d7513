#include "aten/pairwise_sq_dist.h"

#include <ATen/Context.h>

#include <limits>

#include "checks.h"

namespace fx {

void check_pairwise_inputs(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                           const std::optional<at::Tensor>& y) {
  check_embeddings(op, x_name, x);
  if (y) {
    check_embeddings(op, y_name, *y);
    TORCH_CHECK_TYPE(y->scalar_type() == x.scalar_type(), op, ": ", y_name, " has dtype ", y->scalar_type(), " but ",
                     x_name, " has ", x.scalar_type());
    check_device(op, y_name, *y, x_name, x);
    TORCH_CHECK_VALUE(y->size(1) == x.size(1), op, ": ", y_name, " has width ", y->size(1), " but ", x_name, " has ",
                      x.size(1));
  }
}

at::Tensor packed_as(const at::Tensor& t, at::ScalarType type) {
  return t.scalar_type() == type ? t.contiguous() : t.to(type).contiguous();
}

PairwiseParts pairwise_gram(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                            const std::optional<at::Tensor>& y) {
  check_pairwise_inputs(op, x_name, x, y_name, y);
  const auto acc = acc_type(x.scalar_type());
  PairwiseParts parts;
  parts.symmetric = !y.has_value();
  const at::Tensor xa = packed_as(x, acc);
  const at::Tensor ya = parts.symmetric ? xa : packed_as(*y, acc);
  if (parts.symmetric) return symmetric_gram(xa, xa.square().sum(1));
  parts.out = gram(xa, ya);
  parts.x_norm = xa.square().sum(1);
  parts.y_norm = ya.square().sum(1);
  return parts;
}

at::Tensor gram(const at::Tensor& xa, const at::Tensor& ya) {
  at::Tensor out = at::empty({xa.size(0), ya.size(0)}, xa.options());
  if (out.numel() > 0) {
    // Full fp32 whatever torch.backends.cuda.matmul.allow_tf32 / set_float32_matmul_precision say: TF32's
    // ~1e-3 relative error would change which triplets the miners choose, silently and unlike the CPU.
    // The guard is thread-local and leaves the global setting as the user left it.
    const at::NoTF32Guard full_precision;
    at::mm_out(out, xa, ya.t());
  }
  return out;
}

PairwiseParts symmetric_gram(const at::Tensor& xa, const at::Tensor& x_norm) {
  PairwiseParts parts;
  parts.symmetric = true;
  parts.out = gram(xa, xa);
  parts.x_norm = parts.y_norm = x_norm;
  return parts;
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

double safe_norm_limit(at::ScalarType dtype) {
  return dtype == at::kDouble ? std::numeric_limits<double>::max() / 4
                              : static_cast<double>(std::numeric_limits<float>::max()) / 4;
}

}  // namespace fx
