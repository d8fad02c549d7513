// Small tensor helpers both backends' host code calls.
#pragma once
#include <ATen/ATen.h>

namespace fx {

// An uninitialised tensor of `dtype` on `like`'s device (on the CPU without a dispatcher hop).
at::Tensor empty_like_device(at::IntArrayRef size, const at::Tensor& like, at::ScalarType dtype);

// `t` in dtype `type`, packed: t itself when it already is (no copy, no ATen call).
at::Tensor packed_as(const at::Tensor& t, at::ScalarType type);

// The miners read distance rows with unit stride (any row stride, including 0); other layouts are
// copied once.
inline at::Tensor row_major(const at::Tensor& d) { return d.dim() == 2 && d.stride(1) != 1 ? d.contiguous() : d; }

}  // namespace fx
