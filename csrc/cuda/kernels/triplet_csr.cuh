// The triplet backward's row index (CSR) without a sort: which entries k = 3 t + role touch each embedding
// row, grouped by row, in increasing k within a row (the order the CPU's counting sort leaves and the
// backward sums in). An LSD radix sort on the row, each pass a per-tile counting sort (geometry.h,
// triplet_csr_plan): one thread owns a tile of consecutive entries and a column of the [radix, tiles]
// count matrix, so counts need no atomics and the fill, walking the tile in order, is stable. Counts,
// offsets and positions are int64: no INT_MAX limit on 3T (ATen's CUDA sort has one).
//
// An index outside [0, B) takes key B: its entries sort after every row, row_ptr[B] stops before them and
// the backward never reads them. The first pass reports them in the error word (cuda/error_bits.h).
#pragma once
#include <cstdint>

#include "cuda/error_bits.h"
#include "cuda/geometry.h"

namespace fx::cuda {

struct CsrArgs {
  const int64_t *A, *P, *N;  // the triplets' rows (anchor, positive, negative)
  int64_t B, entries;        // entries = 3 T
  int64_t tiles;
  int shift, digit_bits;  // this pass's digit: (key >> shift) & (2^digit_bits - 1)
};

// The row of entry k, or B when that index lies outside [0, B).
__device__ __forceinline__ int64_t csr_key(const CsrArgs& c, int64_t k) {
  const int64_t t = k / 3, role = k - 3 * t;
  const int64_t r = role == 0 ? c.A[t] : (role == 1 ? c.P[t] : c.N[t]);
  return static_cast<uint64_t>(r) < static_cast<uint64_t>(c.B) ? r : c.B;
}

__device__ __forceinline__ int64_t csr_digit(const CsrArgs& c, int64_t key) {
  return (key >> c.shift) & ((int64_t(1) << c.digit_bits) - 1);
}

// Pass input: `in` (the previous pass's output) or, for the first pass, null: entry e is code e.
// counts: [radix, tiles], zeroed; tile m adds its digits to column m only. error_word: non-null on the
// first pass, which sees every entry once.
__global__ void __launch_bounds__(kCsrThreads)
    triplet_csr_count_kernel(CsrArgs c, const int64_t* __restrict__ in, int64_t* __restrict__ counts,
                             int32_t* __restrict__ error_word) {
  const int64_t stride = int64_t(gridDim.x) * kCsrThreads;
  for (int64_t m = blockIdx.x * int64_t(kCsrThreads) + threadIdx.x; m < c.tiles; m += stride) {
    const int64_t begin = m * kCsrTileEntries,
                  end = begin + kCsrTileEntries < c.entries ? begin + kCsrTileEntries : c.entries;
    bool bad = false;
    for (int64_t e = begin; e < end; ++e) {
      const int64_t key = csr_key(c, in ? in[e] : e);
      bad |= key == c.B;
      ++counts[csr_digit(c, key) * c.tiles + m];
    }
    if (bad && error_word) atomicOr(error_word, kErrorIndexRange);
  }
}

// offsets: the exclusive scan of counts (digit-major), advanced in place as tile m writes its column.
__global__ void __launch_bounds__(kCsrThreads)
    triplet_csr_scatter_kernel(CsrArgs c, const int64_t* __restrict__ in, int64_t* __restrict__ offsets,
                               int64_t* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * kCsrThreads;
  for (int64_t m = blockIdx.x * int64_t(kCsrThreads) + threadIdx.x; m < c.tiles; m += stride) {
    const int64_t begin = m * kCsrTileEntries,
                  end = begin + kCsrTileEntries < c.entries ? begin + kCsrTileEntries : c.entries;
    for (int64_t e = begin; e < end; ++e) {
      const int64_t k = in ? in[e] : e;
      out[offsets[csr_digit(c, csr_key(c, k)) * c.tiles + m]++] = k;
    }
  }
}

// row_ptr[i] (i in [0, B]): the first sorted position whose key is >= i, by binary search; every element
// written by one thread, no scan. row_ptr[B] is the end of the in-range entries.
__global__ void __launch_bounds__(kCsrThreads)
    triplet_csr_rows_kernel(CsrArgs c, const int64_t* __restrict__ entry, int64_t* __restrict__ row_ptr) {
  const int64_t stride = int64_t(gridDim.x) * kCsrThreads;
  for (int64_t i = blockIdx.x * int64_t(kCsrThreads) + threadIdx.x; i <= c.B; i += stride) {
    int64_t lo = 0, hi = c.entries;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (csr_key(c, entry[mid]) < i)
        lo = mid + 1;
      else
        hi = mid;
    }
    row_ptr[i] = lo;
  }
}

}  // namespace fx::cuda
