#include "checks.h"

#include <cmath>
#include <limits>
#include <utility>

#include "rules/l2_pool_rules.h"

namespace fx {

void check_dim(const char* op, const char* name, const at::Tensor& t, int64_t dim, const char* shape) {
  TORCH_CHECK_VALUE(t.dim() == dim, op, ": ", name, " must be ", dim, "-D ", shape, ", got shape ", t.sizes());
}

void check_floating(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), op, ": ", name,
                   " must be floating point (float16/bfloat16/float32/float64), got ", t.scalar_type());
}

void check_integer(const char* op, const char* name, const at::Tensor& t) {
  const auto s = t.scalar_type();
  TORCH_CHECK_TYPE(at::isIntegralType(s, /*includeBool=*/false), op, ": ", name, " must be an integer tensor, got ", s);
}

void check_dtype(const char* op, const char* name, const at::Tensor& t, at::ScalarType expected) {
  TORCH_CHECK_TYPE(t.scalar_type() == expected, op, ": ", name, " must be ", expected, ", got ", t.scalar_type());
}

void check_length(const char* op, const char* name, const at::Tensor& t, int64_t expected, const char* of_what) {
  TORCH_CHECK_VALUE(t.size(0) == expected, op, ": ", name, " has length ", t.size(0), " but ", of_what, " has ",
                    expected);
}

void check_device(const char* op, const char* name, const at::Tensor& t, const char* like_name,
                  const at::Tensor& like) {
  TORCH_CHECK_VALUE(t.device() == like.device(), op, ": ", name, " is on ", t.device(), " but ", like_name, " is on ",
                    like.device());
}

void check_embeddings(const char* op, const char* name, const at::Tensor& emb) {
  check_dim(op, name, emb, 2, "[batch, dim]");
  check_floating(op, name, emb);
  // As the Python wrappers: with no dimension every distance is 0 and every triplet a tie.
  TORCH_CHECK_VALUE(emb.size(1) > 0, op, ": ", name, " has width 0 (shape ", emb.sizes(),
                    "): every distance would be 0");
}

void check_labels(const char* op, const char* name, const at::Tensor& labels, int64_t expected, const at::Tensor& like,
                  const char* like_name) {
  check_dim(op, name, labels, 1, "[batch]");
  check_integer(op, name, labels);
  TORCH_CHECK_VALUE(labels.size(0) == expected, op, ": ", name, " has length ", labels.size(0), " but ", like_name,
                    " needs ", expected);
  check_device(op, name, labels, like_name, like);
}

void check_margin(const char* op, double margin, at::ScalarType dtype) {
  const double largest = dtype == at::kDouble ? std::numeric_limits<double>::max()
                                              : static_cast<double>(std::numeric_limits<float>::max());
  TORCH_CHECK_VALUE(std::isfinite(margin) && margin >= 0, op, ": margin must be finite and >= 0, got ", margin);
  TORCH_CHECK_VALUE(margin <= largest, op, ": margin ", margin, " does not fit in ", dtype, " (largest finite value ",
                    largest, ")");
}

at::ScalarType acc_type(at::ScalarType t) { return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t; }

void check_capacity(const char* op, int64_t capacity) {
  TORCH_CHECK_VALUE(capacity >= 0, op, ": capacity must be >= 0, got ", capacity);
}

// ---- per op family ------------------------------------------------------------------------------------

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

void check_mining_inputs(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                         const at::Tensor& ref_labels, bool exclude_self, std::optional<double> margin) {
  check_dim(op, "sq_dist", sq_dist, 2, "[B, N]");
  TORCH_CHECK_TYPE(sq_dist.scalar_type() == at::kFloat || sq_dist.scalar_type() == at::kDouble, op,
                   ": sq_dist must be float32 or float64, got ", sq_dist.scalar_type());
  check_labels(op, "labels", labels, sq_dist.size(0), sq_dist, "sq_dist");
  check_labels(op, "ref_labels", ref_labels, sq_dist.size(1), sq_dist, "sq_dist");
  TORCH_CHECK_VALUE(!exclude_self || sq_dist.size(0) == sq_dist.size(1), op,
                    ": exclude_self needs a square distance matrix, got ", sq_dist.sizes());
  TORCH_CHECK_VALUE(sq_dist.size(1) < (int64_t(1) << 31) - 1, op, ": at most 2^31 - 2 reference elements");
  if (margin) check_margin(op, *margin, sq_dist.scalar_type());
}

void check_fused_mining_inputs(const char* op, const at::Tensor& emb, const at::Tensor& labels,
                               std::optional<double> margin) {
  check_embeddings(op, "emb", emb);
  check_labels(op, "labels", labels, emb.size(0), emb, "emb");
  TORCH_CHECK_VALUE(emb.size(0) < (int64_t(1) << 31) - 1, op, ": at most 2^31 - 2 embeddings");
  if (margin) check_margin(op, *margin, acc_type(emb.scalar_type()));
}

void fail_non_finite(const char* op) {
  TORCH_CHECK_VALUE(false, op,
                    ": sq_dist contains NaN or Inf (non-finite embeddings, or squared norms that "
                    "overflow their dtype)");
  __builtin_unreachable();
}

namespace {
void check_indices(const char* op, const at::Tensor& emb, const at::Tensor& anchor, const at::Tensor& positive,
                   const at::Tensor& negative) {
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"anchor", &anchor}, {"positive", &positive}, {"negative", &negative}};
  for (const auto& [name, t] : all) {
    check_dim(op, name, *t, 1, "[T]");
    check_dtype(op, name, *t, at::kLong);
    TORCH_CHECK_VALUE(t->size(0) == anchor.size(0), op, ": anchor/positive/negative lengths differ (", anchor.size(0),
                      ", ", positive.size(0), ", ", negative.size(0), ")");
    check_device(op, name, *t, "emb", emb);
  }
}
}  // namespace

void check_triplet_forward(const char* op, const at::Tensor& emb, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, double margin) {
  check_embeddings(op, "emb", emb);
  check_indices(op, emb, anchor, positive, negative);
  check_margin(op, margin, acc_type(emb.scalar_type()));
}

void check_triplet_backward(const char* op, const at::Tensor& grad_loss, const at::Tensor& emb,
                            const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative,
                            const at::Tensor& loss, const at::Tensor& d_ap, const at::Tensor& d_an) {
  check_embeddings(op, "emb", emb);
  check_indices(op, emb, anchor, positive, negative);
  const int64_t T = anchor.size(0);
  const auto acc = acc_type(emb.scalar_type());
  const std::pair<const char*, const at::Tensor*> per_triplet[] = {
      {"grad_loss", &grad_loss}, {"loss", &loss}, {"d_ap", &d_ap}, {"d_an", &d_an}};
  for (const auto& [name, t] : per_triplet) {
    check_dim(op, name, *t, 1, "[T]");
    if (t == &grad_loss) {
      check_floating(op, name, *t);
    } else {
      check_dtype(op, name, *t, acc);
    }
    check_length(op, name, *t, T, "the triplet indices");
    check_device(op, name, *t, "emb", emb);
  }
}

L2PoolGeometry l2_pool_geometry(const char* op, const at::Tensor& x, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode) {
  check_dim(op, "x", x, 4, "[N, C, H, W]");
  check_floating(op, "x", x);
  TORCH_CHECK_VALUE(x.size(2) >= 1 && x.size(3) >= 1, op, ": x must have non-empty spatial dimensions, got shape ",
                    x.sizes());
  TORCH_CHECK_VALUE(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2, op,
                    ": kernel_size, stride and padding must have two entries each");
  // Output size (OH, OW) is filled in below, once the arguments are known to be valid.
  L2PoolGeometry g{};
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.kh = kernel_size[0];
  g.kw = kernel_size[1];
  g.sh = stride[0];
  g.sw = stride[1];
  g.ph = padding[0];
  g.pw = padding[1];
  TORCH_CHECK_VALUE(g.kh >= 1 && g.kw >= 1, op, ": kernel_size must be >= 1, got ", kernel_size);
  TORCH_CHECK_VALUE(g.sh >= 1 && g.sw >= 1, op, ": stride must be >= 1, got ", stride);
  TORCH_CHECK_VALUE(g.ph >= 0 && g.pw >= 0 && 2 * g.ph <= g.kh && 2 * g.pw <= g.kw, op,
                    ": padding must be >= 0 and at most half of kernel_size, got padding ", padding,
                    " for kernel_size ", kernel_size);
  g.OH = pool_out_size<int64_t>(g.H, g.kh, g.sh, g.ph, ceil_mode);
  g.OW = pool_out_size<int64_t>(g.W, g.kw, g.sw, g.pw, ceil_mode);
  TORCH_CHECK_VALUE(g.OH >= 1 && g.OW >= 1, op, ": output size would be ", g.OH, "x", g.OW, " for input ", g.H, "x",
                    g.W, " (kernel_size ", kernel_size, ", stride ", stride, ", padding ", padding,
                    "): the input is too small");
  return g;
}

L2PoolGeometry l2_pool_backward_geometry(const char* op, const at::Tensor& grad_out, const at::Tensor& x,
                                         const at::Tensor& out, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                         at::IntArrayRef padding, bool ceil_mode) {
  const L2PoolGeometry g = l2_pool_geometry(op, x, kernel_size, stride, padding, ceil_mode);
  const std::vector<int64_t> expected{g.N, g.C, g.OH, g.OW};
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef(expected), op, ": grad_out has shape ", grad_out.sizes(),
                    " but the output has shape ", at::IntArrayRef(expected));
  TORCH_CHECK_VALUE(out.sizes() == at::IntArrayRef(expected), op, ": out has shape ", out.sizes(), " but expected ",
                    at::IntArrayRef(expected));
  for (const at::Tensor* t : {&grad_out, &out}) {
    TORCH_CHECK_TYPE(t->scalar_type() == x.scalar_type(), op, ": grad_out and out must have x's dtype ",
                     x.scalar_type(), ", got ", t->scalar_type());
    TORCH_CHECK_VALUE(t->device() == x.device(), op, ": grad_out and out must be on x's device ", x.device(), ", got ",
                      t->device());
  }
  return g;
}

}  // namespace fx
