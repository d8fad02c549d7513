#include "checks.h"

#include <cmath>
#include <limits>

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

}  // namespace fx
