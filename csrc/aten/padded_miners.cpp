// The capacity= miners' device-generic kernel: the exact miner (through the dispatcher), then padding
// (aten/label_groups.h pad_triplets). On the CPU that is all there is to it; CUDA registers its own
// sync-free kernels (cuda/semihard.cu, cuda/batch_hard.cu), which take precedence over this one.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "aten/label_groups.h"
#include "checks.h"

namespace fx {
namespace {

using Padded = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

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

TORCH_LIBRARY_IMPL(facenet_ext, CompositeExplicitAutograd, m) {
  m.impl("semi_hard_triplets_padded", &semi_hard_triplets_padded);
  m.impl("batch_hard_triplets_padded", &batch_hard_triplets_padded);
}

}  // namespace fx
