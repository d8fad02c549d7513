// Launch geometry of every CUDA kernel, in plain host C++ (no CUDA, no ATen): block sizes, grid sizes,
// dynamic shared-memory bytes, chunk sizes and the 32/64-bit index choice. The launchers (csrc/cuda/*.cu)
// and the emulated kernel tests (tests/emulated/) both call these, so a test launches exactly what the
// launcher would.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "rules/macros.h"
#include "rules/triplet_rules.h"

namespace fx::cuda {

struct Launch {
  unsigned grid_x = 1, grid_y = 1;
  unsigned block_x = 1, block_y = 1;
  size_t smem = 0;  // dynamic shared-memory bytes
};

// ---- block sizes (the kernels' __launch_bounds__ and cub instantiations use the same constants) ------
constexpr int kSemiHardThreads = 128;
constexpr int kSemiHardMaxChunk = 1024;  // positives per shared-memory pass (~21 KB float, ~33 KB double)
constexpr int kAllSemiHardWarps = 4;
constexpr int kAllSemiHardLossThreads = 256;
constexpr int kBatchHardThreads = 128;
constexpr int kGroupThreads = 1024;
constexpr int kTripletWarps = 8;
constexpr int kDistTile = 32;
constexpr int kDistRows = 8;  // block = kDistTile x kDistRows threads, each thread does 4 rows of the tile
constexpr int kCrossDistThreads = 256;
constexpr int kL2PoolThreads = 256;

// Grid-stride kernels: enough blocks to fill the device, never more than the work needs.
inline unsigned grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535LL * 8));
}

// ---- semi-hard miner: one block per anchor, positives in shared-memory chunks -------------------------
inline int semi_hard_chunk(int64_t max_positives) {
  return static_cast<int>(std::min<int64_t>(max_positives, kSemiHardMaxChunk));
}

// Bytes before the bucket keys: thresholds, their sorted copy (elem_size each) and ranks (int32), 8-aligned.
FX_HD size_t semi_hard_keys_offset(int chunk, size_t elem_size) {
  return (size_t(chunk) * (2 * elem_size + sizeof(int32_t)) + 7) & ~size_t(7);
}

// float: one 64-bit key per bucket; double: 64-bit distance bits and an int32 index per bucket.
inline size_t semi_hard_smem_bytes(int chunk, size_t elem_size) {
  const size_t per_bucket = elem_size == 4 ? sizeof(uint64_t) : sizeof(uint64_t) + sizeof(int32_t);
  return semi_hard_keys_offset(chunk, elem_size) + size_t(chunk + 1) * per_bucket;
}

inline Launch semi_hard_launch(int64_t B, int64_t max_positives, size_t elem_size) {
  Launch l;
  l.grid_x = static_cast<unsigned>(B);
  l.block_x = kSemiHardThreads;
  l.smem = semi_hard_smem_bytes(semi_hard_chunk(max_positives), elem_size);
  return l;
}

// ---- one block per anchor ------------------------------------------------------------------------------
inline Launch per_anchor_launch(int64_t B, int threads) {
  Launch l;
  l.grid_x = static_cast<unsigned>(B);
  l.block_x = static_cast<unsigned>(threads);
  return l;
}
inline Launch all_semi_hard_launch(int64_t B) { return per_anchor_launch(B, kAllSemiHardWarps * 32); }
inline Launch all_semi_hard_loss_launch(int64_t B) { return per_anchor_launch(B, kAllSemiHardLossThreads); }
inline Launch batch_hard_launch(int64_t B) { return per_anchor_launch(B, kBatchHardThreads); }
inline Launch label_groups_launch() { return per_anchor_launch(1, kGroupThreads); }

// ---- distances -----------------------------------------------------------------------------------------
inline Launch symmetric_dist_launch(int64_t B) {
  Launch l;
  l.grid_x = l.grid_y = static_cast<unsigned>((B + kDistTile - 1) / kDistTile);
  l.block_x = kDistTile;
  l.block_y = kDistRows;
  return l;
}
inline Launch cross_dist_launch(int64_t B, int64_t N) {
  Launch l;
  l.grid_x =
      static_cast<unsigned>(std::min<int64_t>((B * N + kCrossDistThreads - 1) / kCrossDistThreads, 65535LL * 16));
  l.block_x = kCrossDistThreads;
  return l;
}

// ---- triplet loss: a warp per triplet (forward), a warp per embedding row (backward) -------------------
inline Launch triplet_forward_launch(int64_t T) {
  Launch l;
  l.grid_x = grid_for(T, kTripletWarps);
  l.block_x = kTripletWarps * 32;
  return l;
}

// ---- triplet backward: the row index (CSR) and heavy rows ----------------------------------------------
// kTripletSegment and triplet_row_segments (rules/triplet_rules.h): the segments the CPU backward sums
// in too, so both give the same bits.
// At most B + ceil(3T / kTripletSegment) segments in all (each row's count is at most entries / S + 1):
// the partial-sum scratch and the segment pass's grid are sized by this bound, not by a count read back.
inline int64_t triplet_segment_bound(int64_t B, int64_t T) {
  return B + (3 * T + kTripletSegment - 1) / kTripletSegment;
}
inline Launch triplet_backward_launch(int64_t segment_bound) { return triplet_forward_launch(segment_bound); }
constexpr int kTripletCombineThreads = 256;
inline Launch triplet_combine_launch(int64_t B, int64_t D) {
  Launch l;
  l.grid_x = grid_for(B * D, kTripletCombineThreads);
  l.block_x = kTripletCombineThreads;
  return l;
}

// The CSR by an LSD radix sort of the 3T entries on their row (rows outside [0, B) take key B, so they
// sort last and row_ptr[B] excludes them). Each pass: the entries cut into tiles of kCsrTileEntries, one
// thread per tile counts its keys' digits into its own column of a [radix, tiles] int64 matrix; an
// exclusive scan of the matrix (digit-major) gives each (digit, tile) its first output slot; the thread
// walks its tile again and writes in order, so every pass is stable. No sort, no atomics on counts, no
// host sync. Memory, int64 elements: two entry buffers of 3T, and the counts and their scan, each
// radix * tiles <= 2^kCsrMaxDigitBits * ceil(3T / kCsrTileEntries) <= 3T + 256 with these constants: O(T).
constexpr int64_t kCsrTileEntries = 256;
constexpr int kCsrMaxDigitBits = 8;
constexpr int kCsrThreads = 256;
struct CsrPlan {
  int64_t entries = 0, tiles = 0;
  int passes = 1, digit_bits = 1;
  int64_t radix() const { return int64_t(1) << digit_bits; }
};
// Keys lie in [0, B]: enough bits for B itself, split evenly over the fewest passes of <= 8 bits.
inline CsrPlan triplet_csr_plan(int64_t T, int64_t B) {
  CsrPlan p;
  p.entries = 3 * T;
  p.tiles = std::max<int64_t>((p.entries + kCsrTileEntries - 1) / kCsrTileEntries, 1);
  int bits = 1;
  while (bits < 63 && (B >> bits) != 0) ++bits;
  p.passes = (bits + kCsrMaxDigitBits - 1) / kCsrMaxDigitBits;
  p.digit_bits = (bits + p.passes - 1) / p.passes;
  return p;
}
inline Launch triplet_csr_tiles_launch(const CsrPlan& p) {
  Launch l;
  l.grid_x = grid_for(p.tiles, kCsrThreads);
  l.block_x = kCsrThreads;
  return l;
}
inline Launch triplet_csr_rows_launch(int64_t B) {
  Launch l;
  l.grid_x = grid_for(B + 1, kCsrThreads);
  l.block_x = kCsrThreads;
  return l;
}

// ---- L2 pooling: a thread per output (forward) or input (backward), grid-stride -------------------------
inline Launch l2_pool_launch(int64_t total) {
  Launch l;
  l.grid_x = grid_for(total, kL2PoolThreads);
  l.block_x = kL2PoolThreads;
  return l;
}
// 32-bit offsets when every term the kernels compute fits in int32: the input and output element counts,
// and along each axis the window arithmetic (o*s - p, o*s - p + k, i + p, (i + p) / s), whose magnitudes
// are all below in + out*s + k + 2p. Sizes alone are not enough: a stride of 2^32 with a 1-pixel output
// would become 0 in 32 bits.
struct L2PoolAxis {
  int64_t in, out, k, s, p;
};
inline bool l2_pool_axis_fits_int32(const L2PoolAxis& a) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  for (const int64_t v : {a.in, a.out, a.k, a.s, a.p})
    if (v > kMax) return false;
  return a.in + a.out * a.s + a.k + 2 * a.p <= kMax;  // each term < 2^31: no int64 overflow
}
inline bool l2_pool_fits_int32(int64_t input_numel, int64_t output_numel, const L2PoolAxis& h, const L2PoolAxis& w) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  return input_numel <= kMax && output_numel <= kMax && l2_pool_axis_fits_int32(h) && l2_pool_axis_fits_int32(w);
}

}  // namespace fx::cuda
