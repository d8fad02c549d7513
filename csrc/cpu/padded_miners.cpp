// The capacity= miners on the CPU: the exact miner (through the dispatcher), then its triplets padded to
// `capacity` (CUDA has its own sync-free kernels: cuda/semi_hard.cu, cuda/batch_hard.cu).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "checks.h"
#include "shared/triplets.h"

namespace fx {
namespace {

using Padded = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The first `capacity` triplets, -1 past them, and their number as a 0-d int64 tensor. Mined triplets all
// have a negative >= 0, so the compaction keeps every one (and this path tests compact_triplets_into).
Padded pad_triplets(const Triplets& t, int64_t capacity) {
  const auto& [a, p, n] = t;
  return compact_triplets_into(a, p, n, capacity);
}

Padded semi_hard_triplets_padded(const at::Tensor& emb, const at::Tensor& labels, std::optional<double> margin,
                                 bool squared, bool drop_fallback, int64_t capacity) {
  check_capacity("semi_hard_triplets", capacity);
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("facenet_ext::semi_hard_triplets", "")
          .typed<Triplets(const at::Tensor&, const at::Tensor&, std::optional<double>, bool, bool)>();
  return pad_triplets(op.call(emb, labels, margin, squared, drop_fallback), capacity);
}

Padded batch_hard_triplets_padded(const at::Tensor& emb, const at::Tensor& labels, int64_t capacity) {
  check_capacity("batch_hard_triplets", capacity);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("facenet_ext::batch_hard_triplets", "")
                             .typed<Triplets(const at::Tensor&, const at::Tensor&)>();
  return pad_triplets(op.call(emb, labels), capacity);
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("semi_hard_triplets_padded", &semi_hard_triplets_padded);
  m.impl("batch_hard_triplets_padded", &batch_hard_triplets_padded);
}

}  // namespace fx
