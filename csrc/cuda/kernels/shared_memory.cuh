// The block's dynamic shared memory (the launch's third <<<>>> argument), 16-byte aligned. One accessor,
// so that the CUDA emulator of the tests (tests/emulated/cuda_emu.h) can hand out its own buffer.
#pragma once

namespace fx::cuda {

#if defined(FX_CUDA_EMULATED)
__device__ __forceinline__ unsigned char* dynamic_shared_memory() { return ::emu::dynamic_shared_memory(); }
#else
__device__ __forceinline__ unsigned char* dynamic_shared_memory() {
  extern __shared__ __align__(16) unsigned char smem[];
  return smem;
}
#endif

}  // namespace fx::cuda
