// Triplet margin loss on the GPU. Forward: one warp per triplet, butterfly (shfl_xor) sums in a fixed
// order. Backward: one warp per embedding row, walking that row's CSR entries (aten/triplet_loss.h) in order:
// every gradient element is summed in the same order on every run, with no float atomics.
//
// Indices out of [0, B) stop the kernel with a device-side assert (as ATen's own index kernels do):
// checking them on the host would cost a sync per call.
#pragma once
#include <c10/macros/Macros.h>

#include <cstdint>

#include "common/triplet_rules.h"
#include "cuda/geometry.h"

namespace fx::cuda {

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kTripletWarps * 32)
    triplet_forward_kernel(const scalar_t* __restrict__ x, int64_t B, int64_t D, const int64_t* __restrict__ A,
                           const int64_t* __restrict__ P, const int64_t* __restrict__ N, int64_t T, acc_t margin,
                           bool squared, acc_t* __restrict__ loss, acc_t* __restrict__ d_ap, acc_t* __restrict__ d_an) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kTripletWarps;
  for (int64_t t = blockIdx.x * int64_t(kTripletWarps) + (threadIdx.x >> 5); t < T; t += warps) {
    CUDA_KERNEL_ASSERT(A[t] >= 0 && A[t] < B && P[t] >= 0 && P[t] < B && N[t] >= 0 && N[t] < B);
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

// Dimensions per lane held in registers: a warp covers 32 * kDimsPerLane dimensions per sweep over the
// row's entries (one sweep for the usual D <= 128).
constexpr int kDimsPerLane = 4;

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kTripletWarps * 32)
    triplet_backward_kernel(const scalar_t* __restrict__ x, int64_t B, int64_t D, const int64_t* __restrict__ A,
                            const int64_t* __restrict__ P, const int64_t* __restrict__ N,
                            const acc_t* __restrict__ grad_loss, const acc_t* __restrict__ loss,
                            const acc_t* __restrict__ d_ap, const acc_t* __restrict__ d_an, bool squared,
                            const int64_t* __restrict__ row_ptr, const int64_t* __restrict__ entry,
                            scalar_t* __restrict__ grad) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kTripletWarps;
  for (int64_t i = blockIdx.x * int64_t(kTripletWarps) + (threadIdx.x >> 5); i < B; i += warps) {
    const int64_t begin = row_ptr[i], end = row_ptr[i + 1];
    for (int64_t k0 = 0; k0 < D; k0 += 32 * kDimsPerLane) {
      acc_t acc[kDimsPerLane] = {};
      for (int64_t e0 = begin; e0 < end; e0 += 32) {
        // Each lane fetches one entry's metadata, so 32 dependent-load chains overlap; the warp then
        // applies the entries one by one in CSR order (the same order as the CPU kernel).
        RowWeights<acc_t> w{acc_t(0), acc_t(0)};
        int64_t ia = 0, ip = 0, in = 0;
        if (e0 + lane < end) {
          const int64_t code = entry[e0 + lane], t = code / 3;
          w = triplet_row_weights<acc_t>(static_cast<int>(code % 3), grad_loss[t], loss[t], d_ap[t], d_an[t], squared);
          ia = A[t];
          ip = P[t];
          in = N[t];
          CUDA_KERNEL_ASSERT(ia >= 0 && ia < B && ip >= 0 && ip < B && in >= 0 && in < B);
        }
        const int count = static_cast<int>(end - e0 < 32 ? end - e0 : 32);
        for (int j = 0; j < count; ++j) {
          const acc_t wp = __shfl_sync(0xFFFFFFFFu, w.wp, j), wn = __shfl_sync(0xFFFFFFFFu, w.wn, j);
          const int64_t ra = __shfl_sync(0xFFFFFFFFu, ia, j), rp = __shfl_sync(0xFFFFFFFFu, ip, j),
                        rn = __shfl_sync(0xFFFFFFFFu, in, j);
          if (wp == acc_t(0) && wn == acc_t(0)) continue;  // inactive triplet (warp-uniform)
#pragma unroll
          for (int c = 0; c < kDimsPerLane; ++c) {
            const int64_t k = k0 + lane + 32 * c;
            if (k < D) {
              const acc_t va = static_cast<acc_t>(x[ra * D + k]);
              acc[c] += wp * (va - static_cast<acc_t>(x[rp * D + k])) + wn * (va - static_cast<acc_t>(x[rn * D + k]));
            }
          }
        }
      }
#pragma unroll
      for (int c = 0; c < kDimsPerLane; ++c) {
        const int64_t k = k0 + lane + 32 * c;
        if (k < D) grad[i * D + k] = static_cast<scalar_t>(acc[c]);
      }
    }
  }
}

}  // namespace fx::cuda
