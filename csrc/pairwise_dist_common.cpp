#include "pairwise_dist_common.h"

namespace fx {

static at::ScalarType accumulation_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

PairwiseParts pairwise_gram(const at::Tensor& x, const std::optional<at::Tensor>& y) {
  TORCH_CHECK(x.dim() == 2, "pairwise_sq_dist: x must be 2-D [B, D], got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "pairwise_sq_dist: x must be floating point, got ",
              x.scalar_type());
  if (y) {
    TORCH_CHECK(y->dim() == 2, "pairwise_sq_dist: y must be 2-D [N, D], got shape ", y->sizes());
    TORCH_CHECK(y->scalar_type() == x.scalar_type(), "pairwise_sq_dist: y has dtype ", y->scalar_type(),
                " but x has ", x.scalar_type());
    TORCH_CHECK(y->device() == x.device(), "pairwise_sq_dist: y is on ", y->device(), " but x is on ", x.device());
    TORCH_CHECK(y->size(1) == x.size(1), "pairwise_sq_dist: y has width ", y->size(1), " but x has ", x.size(1));
  }
  const auto acc = accumulation_type(x.scalar_type());
  PairwiseParts parts;
  parts.symmetric = !y.has_value();
  const at::Tensor xa = x.to(acc).contiguous();
  const at::Tensor ya = parts.symmetric ? xa : y->to(acc).contiguous();
  parts.out = at::empty({xa.size(0), ya.size(0)}, xa.options());
  if (parts.out.numel() > 0) at::mm_out(parts.out, xa, ya.t());
  parts.x_norm = xa.square().sum(1);
  parts.y_norm = parts.symmetric ? parts.x_norm : ya.square().sum(1);
  return parts;
}

}  // namespace fx
