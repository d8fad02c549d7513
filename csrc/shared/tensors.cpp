#include "shared/tensors.h"

#include <ATen/ops/empty_cpu_dispatch.h>

namespace fx {

at::Tensor empty_like_device(at::IntArrayRef size, const at::Tensor& like, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().dtype(dtype).device(like.device());
  // On the CPU straight to the allocator: a dispatched at::empty is a profiler event and an overhead
  // that, at small B, rivals the mining itself.
  return like.is_cpu() ? at::cpu::empty(size, opts) : at::empty(size, opts);
}

at::Tensor packed_as(const at::Tensor& t, at::ScalarType type) {
  return t.scalar_type() == type ? t.contiguous() : t.to(type).contiguous();
}

}  // namespace fx
