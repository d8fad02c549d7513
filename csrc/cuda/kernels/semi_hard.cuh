// FaceNet semi-hard mining on the GPU: one block per anchor, one pass over its distance row.
//
// The block sorts the anchor's positive distances (the thresholds) in shared memory by rank counting,
// then streams the row once: every negative lands in the bucket "number of thresholds below it"
// (branchless binary search, rules/mining_rules.h) and the bucket keeps its closest negative with an
// atomicMin on a packed (distance, index) key. A suffix minimum over the buckets answers every positive.
// Anchors with more positives than fit in shared memory are handled in chunks of positives, one pass
// each. Results equal the CPU kernel's exactly: both compute the same argmin with the same tie rule.
//
// Output modes (SemiHardArgs):
//  - slot: the triplet of positive q goes to slot pair_offset[a] + q, empty (-1) when the margin or
//    "drop" rejects it; slots at or past `capacity` are not written.
//  - ordered (`ordered`): only kept triplets are written, at out_base[a] + (kept triplets of earlier
//    positives of this anchor), found by a block scan in positive order; positions at or past `capacity`
//    are not written. With `kept` set the pass also (or only, when out_a is null) writes the anchor's
//    kept count, so a launcher can count, scan the counts and fill without reading anything back.
#pragma once
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <cstdint>
#include <type_traits>

#include "rules/label_rules.h"
#include "rules/mining_rules.h"
#include "cuda/geometry.h"
#include "cuda/kernels/mining_keys.cuh"
#include "cuda/kernels/pair_reduce.cuh"
#include "cuda/kernels/shared_memory.cuh"

namespace fx::cuda {

// Per-bucket closest negative. float: one packed 64-bit key, one pass. double: the distance's ordered
// bits (kernels/mining_keys.cuh) then, in a second pass, the smallest index among the negatives at
// exactly that distance.
template <typename T>
struct BucketMin;

template <>
struct BucketMin<float> {
  static constexpr bool kTwoPass = false;
  key64* key;
  __device__ void init(int c) { key[c] = kEmptyMinKey; }
  __device__ void offer(int c, float d, int32_t j) { atomicMin(&key[c], min_key(d, j)); }
  __device__ void offer_index(int, float, int32_t) {}
  __device__ void absorb(int c, int from) { key[c] = key[from] < key[c] ? key[from] : key[c]; }
  __device__ DistIndex<float> get(int c) const { return {key_dist(key[c]), min_key_index(key[c])}; }
};

template <>
struct BucketMin<double> {
  static constexpr bool kTwoPass = true;
  key64* bits;
  int32_t* index;
  __device__ void init(int c) {
    bits[c] = kEmptyMinKey;
    index[c] = INT32_MAX;
  }
  __device__ static key64 to_bits(double d) { return key64(ordered_bits(d)); }
  __device__ void offer(int c, double d, int32_t) { atomicMin(&bits[c], to_bits(d)); }
  __device__ void offer_index(int c, double d, int32_t j) {
    if (to_bits(d) == bits[c]) atomicMin(&index[c], j);
  }
  __device__ void absorb(int c, int from) {
    if (bits[from] < bits[c] || (bits[from] == bits[c] && index[from] < index[c])) {
      bits[c] = bits[from];
      index[c] = index[from];
    }
  }
  __device__ DistIndex<double> get(int c) const {
    if (bits[c] == kEmptyMinKey) return {0.0, -1};
    return {from_ordered_bits<double>(uint64_t(bits[c])), index[c]};
  }
};

struct SemiHardArgs {
  int64_t ld, N;
  const int32_t *anchor_gid, *ref_gid, *members, *group_start;
  const int64_t* pair_offset;
  bool exclude_self, has_margin, squared, drop;
  int chunk;                          // positives per shared-memory chunk
  int64_t *out_a, *out_p, *out_n;     // null in a counting pass
  int* non_finite;                    // set to 1 when a distance read is NaN/Inf; null: the caller checked its inputs
  bool ordered = false;               // ordered mode (see the header) instead of slot mode
  int64_t capacity = INT64_MAX;       // output positions >= capacity are not written
  const int64_t* out_base = nullptr;  // ordered mode: [B] first output position of each anchor
  int64_t* kept = nullptr;            // ordered mode: [B] kept triplets per anchor, or null
};

template <typename T>
__global__ void __launch_bounds__(kSemiHardThreads)
    semi_hard_kernel(const T* __restrict__ dist, T margin, SemiHardArgs args) {
  const int64_t a = blockIdx.x;
  const int64_t slot0 = args.pair_offset[a];
  const int K = static_cast<int>(args.pair_offset[a + 1] - slot0);
  if (K == 0) return;  // (a counting pass's caller zeroes `kept`)
  // Nothing this anchor could write fits (block-uniform). A counting pass (no outputs) always runs.
  const int64_t first_out = args.ordered ? (args.out_base ? args.out_base[a] : 0) : slot0;
  if (args.out_a && first_out >= args.capacity) return;
  const int tid = threadIdx.x;
  const int32_t gid = args.anchor_gid[a];
  const int32_t gs = args.group_start[gid], ge = args.group_start[gid + 1];
  const T* row = dist + a * args.ld;

  // Position of the anchor among its group's members (sorted by index), skipped when exclude_self.
  const int32_t self_pos = args.exclude_self ? self_position(args.members, gs, ge, a) : INT32_MAX;

  unsigned char* smem = dynamic_shared_memory();
  const int chunk = args.chunk;
  T* thr = reinterpret_cast<T*>(smem);
  T* sorted = thr + chunk;
  int32_t* rank_of = reinterpret_cast<int32_t*>(sorted + chunk);
  unsigned char* tail = smem + semi_hard_keys_offset(chunk, sizeof(T));
  BucketMin<T> buckets;
  if constexpr (std::is_same_v<T, float>) {
    buckets.key = reinterpret_cast<key64*>(tail);
  } else {
    buckets.bits = reinterpret_cast<key64*>(tail);
    buckets.index = reinterpret_cast<int32_t*>(buckets.bits + chunk + 1);
  }

  using Reduce = cub::BlockReduce<DistIndex<T>, kSemiHardThreads>;
  using Scan = cub::BlockScan<int64_t, kSemiHardThreads>;
  __shared__ typename Reduce::TempStorage reduce_storage;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ DistIndex<T> farthest;
  int64_t kept = 0;  // ordered mode: kept triplets of the positives done so far (block-uniform)

  // A NaN/Inf among the distances this thread reads. The whole row is checked, as on the CPU: positives
  // and negatives below, and the anchor's own entry here (excluded from mining, not from the check).
  bool bad = args.exclude_self && tid == 0 && !isfinite(row[a]);
  for (int c0 = 0; c0 < K; c0 += chunk) {
    const int kc = min(chunk, K - c0);
    for (int q = tid; q < kc; q += kSemiHardThreads) {
      const int32_t pos = c0 + q;
      thr[q] = row[args.members[gs + pos + (pos >= self_pos ? 1 : 0)]];
      bad |= !isfinite(thr[q]);
    }
    for (int c = tid; c <= kc; c += kSemiHardThreads) buckets.init(c);
    __syncthreads();
    for (int q = tid; q < kc; q += kSemiHardThreads) {  // stable rank: ties keep positive order
      const T t = thr[q];
      int r = 0;
      for (int s = 0; s < kc; ++s) r += (thr[s] < t || (thr[s] == t && s < q)) ? 1 : 0;
      rank_of[q] = r;
    }
    __syncthreads();
    for (int q = tid; q < kc; q += kSemiHardThreads) sorted[rank_of[q]] = thr[q];
    __syncthreads();

    DistIndex<T> far{T(0), -1};
    for (int64_t j = tid; j < args.N; j += kSemiHardThreads) {
      if (args.ref_gid[j] == gid) continue;
      const T d = row[j];
      bad |= !isfinite(d);
      buckets.offer(count_below(sorted, kc, d), d, static_cast<int32_t>(j));
      far = Farthest{}(far, DistIndex<T>{d, static_cast<int32_t>(j)});
    }
    __syncthreads();
    if constexpr (BucketMin<T>::kTwoPass) {
      for (int64_t j = tid; j < args.N; j += kSemiHardThreads) {
        if (args.ref_gid[j] == gid) continue;
        const T d = row[j];
        buckets.offer_index(count_below(sorted, kc, d), d, static_cast<int32_t>(j));
      }
      __syncthreads();
    }
    const DistIndex<T> far_all = Reduce(reduce_storage).Reduce(far, Farthest{});
    if (tid == 0) {
      farthest = far_all;
      for (int c = kc - 1; c >= 0; --c) buckets.absorb(c, c + 1);  // suffix minimum
    }
    __syncthreads();

    // Rounds of kSemiHardThreads positives in positive order; the bound is block-uniform, so every
    // thread reaches the ordered mode's scan.
    for (int r0 = 0; r0 < kc; r0 += kSemiHardThreads) {
      const int q = r0 + tid;
      const int32_t pos = c0 + q;
      int32_t p = -1;
      int64_t n = -1;
      if (q < kc) {
        p = args.members[gs + pos + (pos >= self_pos ? 1 : 0)];
        DistIndex<T> best = buckets.get(rank_of[q] + 1);
        if (best.j < 0 && !args.drop) best = farthest;  // TF-Addons: the farthest negative
        n = best.j;
        if (n >= 0 && args.has_margin && !inside_margin(thr[q], best.d, margin, args.squared)) n = -1;
      }
      int64_t at = slot0 + pos;  // slot mode
      bool write = q < kc;
      if (args.ordered) {
        int64_t rank, round_kept;
        Scan(scan_storage).ExclusiveSum(int64_t(n >= 0), rank, round_kept);
        at = first_out + kept + rank;
        write = n >= 0;
        kept += round_kept;
        __syncthreads();  // scan_storage is reused by the next round
      }
      if (write && args.out_a && at < args.capacity) {
        args.out_a[at] = a;
        args.out_p[at] = p;
        args.out_n[at] = n;
      }
    }
    __syncthreads();  // the next chunk reuses shared memory
  }
  if (args.kept && tid == 0) args.kept[a] = kept;
  if (bad && args.non_finite) *args.non_finite = 1;  // every writer stores the same value
}

}  // namespace fx::cuda
