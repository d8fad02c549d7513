// Argument checks shared by every registered op. A direct torch.ops.facenet_ext.* call is validated
// here in full (the Python wrappers' checks are a convenience, not the guard), and each fault raises the
// class the Python wrappers raise for it: ValueError for shapes, lengths, values and devices
// (TORCH_CHECK_VALUE), TypeError for dtypes (TORCH_CHECK_TYPE), IndexError for indices out of range
// (TORCH_CHECK_INDEX). Every message names the op and the argument.
#pragma once
#include <ATen/ATen.h>

namespace fx {

// t.dim() == dim; `shape` describes the expected layout in the message, e.g. "[B, D]".
void check_dim(const char* op, const char* name, const at::Tensor& t, int64_t dim, const char* shape);
void check_floating(const char* op, const char* name, const at::Tensor& t);
void check_integer(const char* op, const char* name, const at::Tensor& t);  // any integer dtype, not bool
void check_dtype(const char* op, const char* name, const at::Tensor& t, at::ScalarType expected);
void check_length(const char* op, const char* name, const at::Tensor& t, int64_t expected, const char* of_what);
void check_device(const char* op, const char* name, const at::Tensor& t, const char* like_name, const at::Tensor& like);

// Embeddings: 2-D [B, D] floating point, D >= 1 (B may be 0).
void check_embeddings(const char* op, const char* name, const at::Tensor& emb);
// Labels: 1-D integer, `expected` long, on the device of `like` (named like_name in the message).
void check_labels(const char* op, const char* name, const at::Tensor& labels, int64_t expected, const at::Tensor& like,
                  const char* like_name);
// A margin: finite, >= 0, and representable in `dtype` (the dtype the op compares in).
void check_margin(const char* op, double margin, at::ScalarType dtype);

// capacity= of the padded miners: >= 0.
void check_capacity(const char* op, int64_t capacity);

// The dtype per-element arithmetic on `t` accumulates in: float32 for float16/bfloat16, else t's own.
at::ScalarType acc_type(at::ScalarType t);

}  // namespace fx
