// Triplet margin loss on the GPU. Forward: one warp per triplet, butterfly (shfl_xor) sums in a fixed
// order. Backward: one warp per embedding row, walking that row's CSR entries (triplet_csr.h) in order:
// every gradient element is summed in the same order on every run, with no float atomics.
#pragma once
#include <cstdint>

#include "common/triplet_rules.h"

namespace fx::cuda {

constexpr int kTripletWarps = 8;

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kTripletWarps * 32)
    triplet_forward_kernel(const scalar_t* __restrict__ x, int64_t D, const int64_t* __restrict__ A,
                           const int64_t* __restrict__ P, const int64_t* __restrict__ N, int64_t T, acc_t margin,
                           bool squared, acc_t* __restrict__ loss, acc_t* __restrict__ d_ap, acc_t* __restrict__ d_an) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kTripletWarps;
  for (int64_t t = blockIdx.x * int64_t(kTripletWarps) + (threadIdx.x >> 5); t < T; t += warps) {
    const scalar_t *xa = x + A[t] * D, *xp = x + P[t] * D, *xn = x + N[t] * D;
    acc_t sp = 0, sn = 0;
    for (int64_t k = lane; k < D; k += 32) {
      const acc_t va = static_cast<acc_t>(xa[k]);
      const acc_t u = va - static_cast<acc_t>(xp[k]), v = va - static_cast<acc_t>(xn[k]);
      sp += u * u;
      sn += v * v;
    }
    sp = warp_sum(sp);
    sn = warp_sum(sn);
    if (lane == 0) {
      const acc_t dp = squared ? sp : fx_sqrt(sp), dn = squared ? sn : fx_sqrt(sn);
      d_ap[t] = dp;
      d_an[t] = dn;
      loss[t] = hinge(dp, dn, margin);
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kTripletWarps * 32)
    triplet_backward_kernel(const scalar_t* __restrict__ x, int64_t B, int64_t D, const int64_t* __restrict__ A,
                            const int64_t* __restrict__ P, const int64_t* __restrict__ N, int64_t T,
                            const acc_t* __restrict__ grad_loss, const acc_t* __restrict__ loss,
                            const acc_t* __restrict__ d_ap, const acc_t* __restrict__ d_an, bool squared,
                            const int64_t* __restrict__ row_ptr, const int64_t* __restrict__ entry,
                            scalar_t* __restrict__ grad) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kTripletWarps;
  for (int64_t i = blockIdx.x * int64_t(kTripletWarps) + (threadIdx.x >> 5); i < B; i += warps) {
    for (int64_t k = lane; k < D; k += 32) {
      acc_t acc = 0;
      for (int64_t e = row_ptr[i]; e < row_ptr[i + 1]; ++e) {
        const int64_t code = entry[e], t = code % T;
        const RowWeights<acc_t> w =
            triplet_row_weights<acc_t>(static_cast<int>(code / T), grad_loss[t], loss[t], d_ap[t], d_an[t], squared);
        if (w.wp == acc_t(0) && w.wn == acc_t(0)) continue;
        const acc_t va = static_cast<acc_t>(x[A[t] * D + k]);
        acc += w.wp * (va - static_cast<acc_t>(x[P[t] * D + k])) + w.wn * (va - static_cast<acc_t>(x[N[t] * D + k]));
      }
      grad[i * D + k] = static_cast<scalar_t>(acc);
    }
  }
}

}  // namespace fx::cuda
