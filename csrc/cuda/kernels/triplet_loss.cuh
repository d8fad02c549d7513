// Triplet margin loss on the GPU. Forward: one warp per triplet, butterfly (shfl_xor) sums in a fixed
// order. Backward: each row's CSR entries (cuda/triplet_csr.h) cut into segments of kTripletSegment
// (geometry.h); one warp per segment sums its entries in CSR order, then a second kernel adds a row's
// segment sums in segment order. Every gradient element is summed in the same order on every run, with no
// float atomics, and in the CPU backward's order (cpu/triplet_loss.cpp), so both give the same bits; a row
// in thousands of triplets spreads over many warps.
//
// Indices outside [0, B) are not asserted (a device assert leaves the CUDA context unusable for the
// rest of the process): the forward sets kErrorIndexRange in the error word (cuda/error_word.h; raised
// by fx.check_errors()) and writes NaN loss, d_ap and d_an for that triplet without reading any row. The
// backward never reads out of range either: the CSR leaves out-of-range rows out, and each in-range row
// of a bad triplet gets NaN (the triplet's gradient there is undefined, and NaN makes that visible
// rather than silently dropping the triplet).
#pragma once
#include <cstdint>
#include <limits>

#include "rules/triplet_rules.h"
#include "cuda/error_bits.h"
#include "cuda/geometry.h"

namespace fx::cuda {

__device__ __forceinline__ bool triplet_in_range(int64_t a, int64_t p, int64_t n, int64_t B) {
  const auto b = static_cast<uint64_t>(B);
  return static_cast<uint64_t>(a) < b && static_cast<uint64_t>(p) < b && static_cast<uint64_t>(n) < b;
}

template <typename acc_t>
__device__ __forceinline__ acc_t quiet_nan() {
  return std::numeric_limits<acc_t>::quiet_NaN();  // constexpr: usable on the device (--expt-relaxed-constexpr)
}

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
                           bool squared, acc_t* __restrict__ loss, acc_t* __restrict__ d_ap, acc_t* __restrict__ d_an,
                           int32_t* __restrict__ error_word) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kTripletWarps;
  for (int64_t t = blockIdx.x * int64_t(kTripletWarps) + (threadIdx.x >> 5); t < T; t += warps) {
    if (!triplet_in_range(A[t], P[t], N[t], B)) {  // warp-uniform: every lane reads the same t
      if (lane == 0) {
        atomicOr(error_word, kErrorIndexRange);
        loss[t] = d_ap[t] = d_an[t] = quiet_nan<acc_t>();
      }
      continue;
    }
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
// segment's entries (one sweep for the usual D <= 128).
constexpr int kDimsPerLane = 4;

template <typename scalar_t, typename acc_t>
struct TripletBackwardArgs {
  const scalar_t* x;
  int64_t B, D;
  const int64_t *A, *P, *N;
  const acc_t *grad_loss, *loss, *d_ap, *d_an;
  bool squared;
  const int64_t *row_ptr, *entry;  // the CSR (cuda/triplet_csr.h)
  const int64_t* seg_ptr;          // [B + 1]: row i's segments are [seg_ptr[i], seg_ptr[i + 1])
  acc_t* partial;                  // [triplet_segment_bound(B, T), D]: segment sums of multi-segment rows
  scalar_t* grad;                  // [B, D]
};

// The row whose segments hold global segment g: the last i with seg_ptr[i] <= g (g < seg_ptr[B]).
__device__ __forceinline__ int64_t segment_row(const int64_t* seg_ptr, int64_t B, int64_t g) {
  int64_t lo = 0, hi = B;  // invariant: seg_ptr[lo] <= g < seg_ptr[hi]
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (seg_ptr[mid] <= g)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

// One warp per segment: the sum of its entries, in CSR order, from 0. A row with one segment (the usual
// case) writes its gradient row directly; otherwise the sum goes to partial[g] for the combine kernel.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kTripletWarps * 32)
    triplet_backward_kernel(const TripletBackwardArgs<scalar_t, acc_t> b) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kTripletWarps, D = b.D, B = b.B;
  const int64_t segments = b.seg_ptr[B];
  for (int64_t g = blockIdx.x * int64_t(kTripletWarps) + (threadIdx.x >> 5); g < segments; g += warps) {
    // Warp-uniform: every lane searches for the same g.
    const int64_t i = segment_row(b.seg_ptr, B, g);
    const bool single = b.seg_ptr[i + 1] - b.seg_ptr[i] == 1;
    const int64_t begin = b.row_ptr[i] + (g - b.seg_ptr[i]) * kTripletSegment;
    const int64_t end = begin + kTripletSegment < b.row_ptr[i + 1] ? begin + kTripletSegment : b.row_ptr[i + 1];
    for (int64_t k0 = 0; k0 < D; k0 += 32 * kDimsPerLane) {
      acc_t acc[kDimsPerLane] = {};
      for (int64_t e0 = begin; e0 < end; e0 += 32) {
        // Each lane fetches one entry's metadata, so 32 dependent-load chains overlap; the warp then
        // applies the entries one by one in CSR order (the same order as the CPU kernel).
        RowWeights<acc_t> w{acc_t(0), acc_t(0)};
        int64_t ia = i, ip = i, in = i;
        if (e0 + lane < end) {
          const int64_t code = b.entry[e0 + lane], t = code / 3;
          if (triplet_in_range(b.A[t], b.P[t], b.N[t], B)) {
            w = triplet_row_weights<acc_t>(static_cast<int>(code % 3), b.grad_loss[t], b.loss[t], b.d_ap[t], b.d_an[t],
                                           b.squared);
            ia = b.A[t];
            ip = b.P[t];
            in = b.N[t];
          } else {
            // Row i is in range, another row of triplet t is not: NaN, read from row i only.
            w = {quiet_nan<acc_t>(), acc_t(0)};
          }
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
              const acc_t va = static_cast<acc_t>(b.x[ra * D + k]);
              acc[c] +=
                  wp * (va - static_cast<acc_t>(b.x[rp * D + k])) + wn * (va - static_cast<acc_t>(b.x[rn * D + k]));
            }
          }
        }
      }
#pragma unroll
      for (int c = 0; c < kDimsPerLane; ++c) {
        const int64_t k = k0 + lane + 32 * c;
        if (k < D) {
          if (single)
            b.grad[i * D + k] = static_cast<scalar_t>(acc[c]);
          else
            b.partial[g * D + k] = acc[c];
        }
      }
    }
  }
}

// Rows with several segments: their segment sums added in segment order, from 0 (the CPU's association).
// One thread per gradient element.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kTripletCombineThreads)
    triplet_combine_kernel(const int64_t* __restrict__ seg_ptr, const acc_t* __restrict__ partial, int64_t B, int64_t D,
                           scalar_t* __restrict__ grad) {
  const int64_t stride = int64_t(gridDim.x) * kTripletCombineThreads;
  for (int64_t idx = blockIdx.x * int64_t(kTripletCombineThreads) + threadIdx.x; idx < B * D; idx += stride) {
    const int64_t i = idx / D, k = idx - i * D;
    const int64_t first = seg_ptr[i], last = seg_ptr[i + 1];
    if (last - first <= 1) continue;  // written by triplet_backward_kernel
    acc_t acc = 0;
    for (int64_t g = first; g < last; ++g) acc += partial[g * D + k];
    grad[idx] = static_cast<scalar_t>(acc);
  }
}

}  // namespace fx::cuda
