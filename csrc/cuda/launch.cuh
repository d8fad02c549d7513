// Launcher helpers shared by the .cu files: the current stream, the launch shapes of cuda/geometry.h as
// CUDA's dim3, and the miners' NaN/Inf flags.
#pragma once
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "checks.h"
#include "aten/label_groups.h"
#include "aten/pairwise_sq_dist.h"
#include "cuda/geometry.h"

namespace fx::cuda {

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline dim3 grid_of(const Launch& l) { return dim3(l.grid_x, l.grid_y); }
inline dim3 block_of(const Launch& l) { return dim3(l.block_x, l.block_y); }

// The fused miners' embedding check, without a sync: a device flag that label_groups_cuda folds into
// its one read-back (NaN/Inf embeddings, or norms whose distances could overflow).
inline at::Tensor embeddings_unsafe_flag(const at::Tensor& emb) {
  return norms_unsafe_flag(emb.to(acc_type(emb.scalar_type())).square().sum(1));
}

// The *_from_sq_dist ops' check: their mining kernel sets the flag on a NaN/Inf distance it reads;
// reading it back is one more small sync (the fused miners check their embeddings up front instead).
inline void raise_if_flagged(const char* op, const at::Tensor& flag) {
  if (flag.item<int>() != 0) fail_non_finite(op);
}

}  // namespace fx::cuda
