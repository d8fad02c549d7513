// Stand-in for c10/macros/Macros.h under the CUDA emulator: the kernels take CUDA_KERNEL_ASSERT from it,
// which tests/emulated/cuda_emu.h defines.
#pragma once
