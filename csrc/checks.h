// Argument checks shared by every registered op. A direct torch.ops.facenet_ext.* call is validated
// here in full (the Python wrappers' checks are a convenience, not the guard), and each fault raises the
// class the Python wrappers raise for it: ValueError for shapes, lengths, values and devices
// (TORCH_CHECK_VALUE), TypeError for dtypes (TORCH_CHECK_TYPE), IndexError for indices out of range
// (TORCH_CHECK_INDEX). Every message names the op and the argument.
//
// First the building blocks, then one check per op family, which both backends call before any work.
#pragma once
#include <ATen/ATen.h>

#include <optional>

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

// ---- per op family ------------------------------------------------------------------------------------

// pairwise_sq_dist: x (and y: 2-D floating, same width, dtype, device). Messages name `op` and the
// arguments as x_name / y_name (the fused miners call their embeddings "emb").
void check_pairwise_inputs(const char* op, const char* x_name, const at::Tensor& x, const char* y_name,
                           const std::optional<at::Tensor>& y);

// The *_from_sq_dist miners. The margin is compared in the matrix's dtype.
void check_mining_inputs(const char* op, const at::Tensor& sq_dist, const at::Tensor& labels,
                         const at::Tensor& ref_labels, bool exclude_self, std::optional<double> margin);

// The fused miners (embeddings in, triplets out) and the fused all-semi-hard loss.
void check_fused_mining_inputs(const char* op, const at::Tensor& emb, const at::Tensor& labels,
                               std::optional<double> margin);

// Raised by the *_from_sq_dist ops when a distance they read is NaN or Inf (found while mining).
[[noreturn]] void fail_non_finite(const char* op);

// triplet_loss_forward: emb 2-D floating; anchor/positive/negative 1-D int64 of equal length on emb's
// device; margin finite, >= 0 and representable in the accumulation dtype. The index range is checked by
// the kernels (CPU: IndexError; CUDA: NaN and a bit in the device error word that fx.check_errors()
// raises, see cuda/kernels/triplet_loss.cuh), which costs no host sync.
void check_triplet_forward(const char* op, const at::Tensor& emb, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, double margin);

// triplet_loss_backward: the forward's arguments, plus grad_loss (floating) and loss, d_ap, d_an (the
// forward's outputs: accumulation dtype), each 1-D of length T on emb's device.
void check_triplet_backward(const char* op, const at::Tensor& grad_loss, const at::Tensor& emb,
                            const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative,
                            const at::Tensor& loss, const at::Tensor& d_ap, const at::Tensor& d_an);

// l2_pool2d: checks x (4-D floating) and the int[2] arguments with torch's pooling rules and returns the
// geometry both backends launch with.
struct L2PoolGeometry {
  int64_t N, C, H, W;  // input [N, C, H, W]
  int64_t OH, OW;      // output [N, C, OH, OW]
  int64_t kh, kw, sh, sw, ph, pw;
};
L2PoolGeometry l2_pool_geometry(const char* op, const at::Tensor& x, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode);
// l2_pool2d_backward: also that grad_out and out have the forward's output shape, and x's dtype and device.
L2PoolGeometry l2_pool_backward_geometry(const char* op, const at::Tensor& grad_out, const at::Tensor& x,
                                         const at::Tensor& out, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                         at::IntArrayRef padding, bool ceil_mode);

}  // namespace fx
