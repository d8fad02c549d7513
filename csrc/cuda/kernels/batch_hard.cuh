// Batch-hard mining on the GPU: one block per anchor reduces its row to (farthest positive, closest
// negative) with cub::BlockReduce, ties to the smaller index like the CPU scan.
#pragma once
#include <cub/block/block_reduce.cuh>

#include <cstdint>

#include "cuda/kernels/pair_reduce.cuh"
#include "cuda/geometry.h"

namespace fx::cuda {

template <typename T>
__global__ void __launch_bounds__(kBatchHardThreads)
    batch_hard_kernel(const T* __restrict__ dist, int64_t ld, int64_t N, const int32_t* __restrict__ anchor_gid,
                      const int32_t* __restrict__ ref_gid, const int64_t* __restrict__ pair_offset, bool exclude_self,
                      int64_t* __restrict__ out_p, int64_t* __restrict__ out_n, int* non_finite) {
  const int64_t a = blockIdx.x;
  if (pair_offset[a + 1] == pair_offset[a]) {  // no positive or no negative: no triplet, no work
    if (threadIdx.x == 0) out_p[a] = out_n[a] = -1;
    return;
  }
  const int32_t gid = anchor_gid[a];
  const T* row = dist + a * ld;
  DistIndex<T> pos{T(0), -1}, neg{T(0), -1};
  bool bad = false;
  for (int64_t j = threadIdx.x; j < N; j += kBatchHardThreads) {
    const DistIndex<T> cand{row[j], static_cast<int32_t>(j)};
    bad |= !isfinite(cand.d);
    if (ref_gid[j] == gid) {
      if (!(exclude_self && j == a)) pos = Farthest{}(pos, cand);
    } else {
      neg = Nearest{}(neg, cand);
    }
  }
  using Reduce = cub::BlockReduce<DistIndex<T>, kBatchHardThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const DistIndex<T> p = Reduce(storage).Reduce(pos, Farthest{});
  __syncthreads();  // storage is reused
  const DistIndex<T> n = Reduce(storage).Reduce(neg, Nearest{});
  if (threadIdx.x == 0) {
    out_p[a] = p.j;
    out_n[a] = p.j >= 0 ? n.j : -1;
  }
  if (bad && non_finite) *non_finite = 1;  // null: the caller checked its inputs
}

}  // namespace fx::cuda
