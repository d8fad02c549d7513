// Triplet index lists as the miners return them, and their sync-free ordered compaction (both backends).
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace fx {

using Triplets = std::tuple<at::Tensor, at::Tensor, at::Tensor>;  // int64 (anchor, positive, negative)

// Three empty int64 index tensors on `like`'s device.
Triplets empty_triplets(const at::Tensor& like);

// Keeps the slots whose negative is >= 0, in slot order, in exactly `size` entries (-1 past the kept
// ones), with no host sync: a scan and a binary search (ATen). Returns (a, p, n, found): found, 0-d int64
// on the device, counts every kept slot (it may exceed `size`). CUDA's batch-hard compacts its per-anchor
// slots with it; the CPU pads its exact miners' output with it (cpu/padded_miners.cpp).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> compact_triplets_into(const at::Tensor& a,
                                                                                 const at::Tensor& p,
                                                                                 const at::Tensor& n, int64_t size);

}  // namespace fx
