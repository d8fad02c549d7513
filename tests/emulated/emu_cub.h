// Stand-ins for the cub block primitives the kernels use, under the CUDA emulator (cuda_emu.h). They keep
// cub's contract, not its algorithm: every thread of the block must call, TempStorage may be reused only
// after a __syncthreads, and BlockReduce's result is defined in thread 0 alone (the others get a poison
// value, 0x7F bytes: a huge number or index, so a kernel that reads it elsewhere computes garbage).
// Reductions run in thread order; real cub uses a tree, so floating-point sums may differ in the last bits.
#pragma once
#include <cstring>
#include <string>

namespace cub {

namespace detail {
inline int linear_thread(int threads) {
  const int block = int(blockDim.x * blockDim.y * blockDim.z);
  if (block != threads)
    emu::fail("a cub block primitive instantiated for " + std::to_string(threads) + " threads runs in a block of " +
              std::to_string(block));
  return int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
template <typename T>
T poison() {
  T v;
  std::memset(static_cast<void*>(&v), 0x7F, sizeof(T));
  return v;
}
}  // namespace detail

struct Sum {
  template <typename T>
  T operator()(const T& a, const T& b) const {
    return a + b;
  }
};

template <typename T, int kThreads>
class BlockReduce {
 public:
  struct TempStorage {
    T slot[kThreads];
  };
  explicit BlockReduce(TempStorage& storage) : s_(storage) {}

  template <typename Op>
  T Reduce(T value, Op op) {
    const int tid = detail::linear_thread(kThreads);
    s_.slot[tid] = value;
    __syncthreads();
    if (tid != 0) return detail::poison<T>();
    T acc = s_.slot[0];
    for (int i = 1; i < kThreads; ++i) acc = op(acc, s_.slot[i]);
    return acc;
  }
  T Sum(T value) { return Reduce(value, cub::Sum{}); }

 private:
  TempStorage& s_;
};

template <typename T, int kThreads>
class BlockScan {
 public:
  struct TempStorage {
    T slot[kThreads];
  };
  explicit BlockScan(TempStorage& storage) : s_(storage) {}

  void InclusiveSum(T in, T& out, T& aggregate) { scan(in, out, aggregate, true); }
  void ExclusiveSum(T in, T& out, T& aggregate) { scan(in, out, aggregate, false); }
  void InclusiveSum(T in, T& out) {
    T aggregate;
    scan(in, out, aggregate, true);
  }
  void ExclusiveSum(T in, T& out) {
    T aggregate;
    scan(in, out, aggregate, false);
  }

 private:
  void scan(T in, T& out, T& aggregate, bool inclusive) {
    const int tid = detail::linear_thread(kThreads);
    s_.slot[tid] = in;
    __syncthreads();
    T prefix = T(0), total = T(0);
    for (int i = 0; i < kThreads; ++i) {
      if (i < tid || (inclusive && i == tid)) prefix = prefix + s_.slot[i];
      total = total + s_.slot[i];
    }
    out = prefix;
    aggregate = total;
  }
  TempStorage& s_;
};

}  // namespace cub
