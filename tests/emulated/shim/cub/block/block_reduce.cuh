// Stand-in for cub/block/block_reduce.cuh under the CUDA emulator (tests/emulated/cuda_emu.h).
#pragma once
#include "emu_cub.h"
