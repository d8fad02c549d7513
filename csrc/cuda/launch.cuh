// Launcher helpers shared by the .cu files: the current stream, the launch shapes of cuda/geometry.h as
// CUDA's dim3.
#pragma once
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "checks.h"
#include "cuda/geometry.h"

namespace fx::cuda {

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline dim3 grid_of(const Launch& l) { return dim3(l.grid_x, l.grid_y); }
inline dim3 block_of(const Launch& l) { return dim3(l.block_x, l.block_y); }

}  // namespace fx::cuda
