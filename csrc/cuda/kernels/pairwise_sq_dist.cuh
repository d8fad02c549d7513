// Distance epilogues over a Gram matrix G = x y^T held in `out` (written by cuBLAS), rewritten in place.
#pragma once
#include <cstdint>

#include "rules/pairwise_rules.h"
#include "cuda/geometry.h"

namespace fx::cuda {

// Symmetric case. Block (bx, by) owns tile pair (ti = by, tj = bx) with ti <= tj: it reads only the
// upper-triangle Gram tile G[ti, tj] and writes both D[ti, tj] and D[tj, ti] (the transpose through
// shared memory, so both writes are coalesced). Blocks below the diagonal exit at once, so every element
// is read and written by exactly one block: exact symmetry, zero diagonal, no races.
template <typename T>
__global__ void symmetric_dist_epilogue(T* __restrict__ out, const T* __restrict__ norm, int64_t B) {
  const int64_t ti = blockIdx.y, tj = blockIdx.x;
  if (ti > tj) return;
  __shared__ T tile[kDistTile][kDistTile + 1];  // +1: transposed reads hit distinct banks
  const int64_t i0 = ti * kDistTile, j0 = tj * kDistTile;
  const int tx = threadIdx.x;
  for (int r = threadIdx.y; r < kDistTile; r += kDistRows) {
    const int64_t i = i0 + r, j = j0 + tx;
    if (i < B && j < B) tile[r][tx] = sq_dist_from_gram(norm[i], norm[j], out[i * B + j]);
  }
  __syncthreads();
  for (int r = threadIdx.y; r < kDistTile; r += kDistRows) {
    const int64_t i = i0 + r, j = j0 + tx;
    if (i < B && j < B) {
      // On the diagonal tile the lower half mirrors the upper half; the diagonal itself is exactly 0.
      T v = tile[r][tx];
      if (ti == tj) v = tx > r ? tile[r][tx] : (tx < r ? tile[tx][r] : T(0));
      out[i * B + j] = v;
    }
    if (ti != tj) {
      const int64_t it = j0 + r, jt = i0 + tx;  // element (it, jt) of the mirrored tile = tile[tx][r]
      if (it < B && jt < B) out[it * B + jt] = tile[tx][r];
    }
  }
}

template <typename T>
__global__ void cross_dist_epilogue(T* __restrict__ out, const T* __restrict__ x_norm, const T* __restrict__ y_norm,
                                    int64_t B, int64_t N) {
  const int64_t total = B * N;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = k / N, j = k - i * N;
    out[k] = sq_dist_from_gram(x_norm[i], y_norm[j], out[k]);
  }
}

}  // namespace fx::cuda
