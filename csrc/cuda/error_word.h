// The per-device error word: one int32 in device memory per GPU, allocated (zeroed) on first use and
// kept for the life of the process, that kernels OR error bits into (cuda/error_bits.h) when reporting
// would otherwise cost a host sync. Nothing here synchronises: the word is read only by the op
// facenet_ext::take_errors (fx.check_errors()), which copies and clears it on the current stream.
//
// The first use on a device allocates: make one eager call before capturing a CUDA graph (as every
// capture needs a warm-up anyway), so the word does not come from the graph's private memory pool.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "cuda/error_bits.h"

namespace fx::cuda {

// The word of `device` (a CUDA device), int32 [1]; a pointer into it is what kernels take.
at::Tensor error_word(const at::Device& device);
inline int32_t* error_word_ptr(const at::Device& device) { return error_word(device).data_ptr<int32_t>(); }

}  // namespace fx::cuda
