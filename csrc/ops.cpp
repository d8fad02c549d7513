// The schemas of every facenet_ext op, declared once. Backends register kernels in
// cpu/*.cpp (CPU) and cuda/*.cu (CUDA); python/facenet_ext/ops.py adds fake kernels and autograd.
#include <torch/library.h>

TORCH_LIBRARY(facenet_ext, m) {
  // ||x_i - y_j||^2, clamped >= 0; exactly symmetric with a zero diagonal when y is None.
  m.def("pairwise_sq_dist(Tensor x, Tensor? y) -> Tensor");

  // The miners, fused: named like their public Python functions (fx.semi_hard_triplets, ...), so that a
  // native error names the function the user called; every other name uses the stem "semihard".
  // Embeddings [B, D] and labels [B] in, int64 (anchor, positive, negative) out, in
  // one native call (label groups, distances only if some anchor can form a triplet, mining,
  // compaction, the NaN/Inf check). Sorted as their *_from_sq_dist twins below.
  m.def(
      "semi_hard_triplets(Tensor emb, Tensor labels, float? margin, bool squared, bool drop_fallback) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("batch_hard_triplets(Tensor emb, Tensor labels) -> (Tensor, Tensor, Tensor)");
  m.def(
      "all_semi_hard_triplets(Tensor emb, Tensor labels, float margin, bool squared) "
      "-> (Tensor, Tensor, Tensor)");

  // The fused miners with capacity=: exactly `capacity` slots, the first min(found, capacity) holding the
  // triplets above in the same order and the rest -1, and found (0-d int64: every triplet mined). Static
  // shapes; on CUDA no host sync (NaN/Inf embeddings set the error word's bit instead of raising).
  m.def(
      "semi_hard_triplets_padded(Tensor emb, Tensor labels, float? margin, bool squared, bool drop_fallback, "
      "int capacity) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("batch_hard_triplets_padded(Tensor emb, Tensor labels, int capacity) -> (Tensor, Tensor, Tensor, Tensor)");

  // Miners over a squared-distance matrix sq_dist[B, N] between anchors (labels[B]) and a reference
  // set (ref_labels[N]). exclude_self: the reference set is the anchors themselves, so j == a is skipped.
  // Each returns int64 (anchor, positive, negative) sorted by (anchor, positive[, negative]).
  m.def(
      "semi_hard_from_sq_dist(Tensor sq_dist, Tensor labels, Tensor ref_labels, bool exclude_self, "
      "float? margin, bool squared, bool drop_fallback) -> (Tensor, Tensor, Tensor)");
  m.def(
      "batch_hard_from_sq_dist(Tensor sq_dist, Tensor labels, Tensor ref_labels, bool exclude_self) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "all_semi_hard_from_sq_dist(Tensor sq_dist, Tensor labels, Tensor ref_labels, bool exclude_self, "
      "float margin, bool squared) -> (Tensor, Tensor, Tensor)");

  // Per-triplet margin loss with distances recomputed exactly from emb: (loss[T], d_ap[T], d_an[T]).
  m.def(
      "triplet_loss_forward(Tensor emb, Tensor anchor, Tensor positive, Tensor negative, float margin, "
      "bool squared) -> (Tensor, Tensor, Tensor)");
  // Gradient wrt emb, O(T*D), accumulated per row in a fixed order (deterministic, no float atomics).
  m.def(
      "triplet_loss_backward(Tensor grad_loss, Tensor emb, Tensor anchor, Tensor positive, "
      "Tensor negative, Tensor loss, Tensor d_ap, Tensor d_an, bool squared) -> Tensor");

  // triplet_loss(mining="all_semihard") without the triplet list: O(B^2) memory for up to B^2 K triplets.
  // Returns (sums [3]: loss over the active triplets, sum of D_ap and of D_an over all triplets, in the
  // accumulation dtype; counts int64 [2]: triplets, active triplets; coef [B, B] when with_grad, else
  // [0, 0]: the gradient of the summed loss is sum_j (C_aj + C_ja)(x_a - x_j) for each row a). The
  // triplets are exactly all_semi_hard_triplets' (the same Gram distances and window test).
  m.def(
      "all_semi_hard_loss(Tensor emb, Tensor labels, float margin, bool squared, bool with_grad) "
      "-> (Tensor, Tensor, Tensor)");

  // The error bits CUDA kernels recorded on like's device since the last take (cuda/error_bits.h), as
  // int32 [1], and the device's word cleared; fx.check_errors() turns them into exceptions. No CPU
  // kernel: CPU ops raise at once.
  m.def("take_errors(Tensor like) -> Tensor");

  // y = sqrt(sum over the window of x^2) with zero padding (FaceNet NN2's L2 pooling).
  m.def("l2_pool2d(Tensor x, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode) -> Tensor");
  m.def(
      "l2_pool2d_backward(Tensor grad_out, Tensor x, Tensor out, int[2] kernel_size, int[2] stride, "
      "int[2] padding, bool ceil_mode) -> Tensor");
}
