// The bits of the per-device error word (cuda/error_word.h). A kernel that meets bad input it cannot
// report without a host sync (a NaN/Inf distance under capacity=, an index outside [0, B)) sets its bit
// with atomicOr and writes NaN where the bad input would have gone, instead of a device assert, which
// would leave the CUDA context unusable for the rest of the process. fx.check_errors() reads the word
// (one sync), clears it and raises the documented exception. Plain constants: kernels and the emulated
// tests include this file without ATen.
#pragma once
#include <cstdint>

namespace fx::cuda {

constexpr int32_t kErrorNonFinite = 1;   // ValueError: NaN/Inf embeddings or distances
constexpr int32_t kErrorIndexRange = 2;  // IndexError: a triplet index outside [0, B)

}  // namespace fx::cuda
