// FX_HD marks per-element math that both the CPU kernels (g++) and the CUDA kernels (nvcc) call,
// so the CPU test suite exercises the exact rule the GPU runs.
#pragma once

#if defined(__CUDACC__)
#define FX_HD __host__ __device__ __forceinline__
#else
#define FX_HD inline
#endif

#include <cmath>
#include <cstdint>

namespace fx {

FX_HD float fx_sqrt(float x) { return sqrtf(x); }  // IEEE-rounded on both sides (no fast-math)
FX_HD double fx_sqrt(double x) { return sqrt(x); }

}  // namespace fx
