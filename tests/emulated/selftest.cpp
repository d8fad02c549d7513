// Small kernels that test the emulator itself (tests/test_emulator.py): that its warp calls, barriers and
// cub stand-ins compute what CUDA's do, and that each diagnostic fires on the fault it names.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <cstdint>
#include <string>

namespace {

constexpr int kThreads = 64;  // two warps

// out[6 * tid + k]: shfl from lane 3, up by 1, down by 1, xor 5, the ballot of odd values, syncwarp marker.
__global__ void warp_calls_kernel(const int* in, int* out) {
  const int tid = threadIdx.x;
  const int v = in[tid];
  int* o = out + 6 * tid;
  o[0] = __shfl_sync(0xFFFFFFFFu, v, 3);
  o[1] = __shfl_up_sync(0xFFFFFFFFu, v, 1);
  o[2] = __shfl_down_sync(0xFFFFFFFFu, v, 1);
  o[3] = __shfl_xor_sync(0xFFFFFFFFu, v, 5);
  o[4] = static_cast<int>(__ballot_sync(0xFFFFFFFFu, v & 1));
  __syncwarp();
  // Half-warp masks: lanes 0-15 and 16-31 meet separately at the same call site.
  const unsigned half = (tid & 31) < 16 ? 0x0000FFFFu : 0xFFFF0000u;
  o[5] = static_cast<int>(__ballot_sync(half, 1));
}

// out[3 * tid]: BlockReduce sum (defined in thread 0 only), inclusive and exclusive BlockScan sums.
__global__ void cub_kernel(const int64_t* in, int64_t* out) {
  using Reduce = cub::BlockReduce<int64_t, kThreads>;
  using Scan = cub::BlockScan<int64_t, kThreads>;
  __shared__ union {
    Reduce::TempStorage reduce;
    Scan::TempStorage scan;
  } tmp;
  const int tid = threadIdx.x;
  out[3 * tid] = Reduce(tmp.reduce).Sum(in[tid]);
  __syncthreads();
  int64_t inclusive, exclusive, total;
  Scan(tmp.scan).InclusiveSum(in[tid], inclusive, total);
  __syncthreads();
  Scan(tmp.scan).ExclusiveSum(in[tid], exclusive, total);
  out[3 * tid + 1] = inclusive;
  out[3 * tid + 2] = exclusive;
}

// Each thread writes its value to shared memory and reads its right neighbour's. With the barrier the
// result is the neighbour's value under any schedule; without it, it depends on the schedule.
template <bool kBarrier>
__global__ void neighbour_kernel(const int* in, int* out) {
  __shared__ int slot[kThreads];
  const int tid = threadIdx.x;
  slot[tid] = in[tid];
  if (kBarrier) __syncthreads();
  out[tid] = slot[(tid + 1) % kThreads];
}

__global__ void deadlock_kernel() {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    __shfl_sync(0xFFFFFFFFu, 1, 0);
  }
}

__global__ void divergent_sites_kernel() {
  if ((threadIdx.x & 31) < 16) {
    __shfl_sync(0xFFFFFFFFu, 1, 0);
  } else {
    __shfl_sync(0xFFFFFFFFu, 2, 0);
  }
}

__global__ void exited_lane_kernel() {
  if (threadIdx.x == 7) return;
  __shfl_sync(0xFFFFFFFFu, 1, 0);
}

__global__ void barrier_after_exit_kernel() {
  if (threadIdx.x == 40) return;
  __syncthreads();
}

__global__ void dynamic_smem_kernel(int64_t index) {
  unsigned char* smem = ::emu::dynamic_shared_memory();
  if (threadIdx.x == 0) smem[index] = 1;  // index == the launch's byte count: one past the end
}

__global__ void assert_kernel(int bad) { CUDA_KERNEL_ASSERT(bad == 0); }

template <typename F>
int guarded(F body, std::string& error) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    error = e.what();
    return 1;
  }
}

std::string& selftest_error() {
  static std::string e;
  return e;
}

}  // namespace

extern "C" {

const char* emu_selftest_error() { return selftest_error().c_str(); }

int emu_selftest_warp_calls(const int* in, int* out) {
  return guarded([&] { emu::launch(dim3(1), dim3(kThreads), 0, warp_calls_kernel, in, out); }, selftest_error());
}

int emu_selftest_cub(const int64_t* in, int64_t* out) {
  return guarded([&] { emu::launch(dim3(1), dim3(kThreads), 0, cub_kernel, in, out); }, selftest_error());
}

int emu_selftest_neighbour(int barrier, const int* in, int* out) {
  return guarded(
      [&] {
        if (barrier)
          emu::launch(dim3(1), dim3(kThreads), 0, neighbour_kernel<true>, in, out);
        else
          emu::launch(dim3(1), dim3(kThreads), 0, neighbour_kernel<false>, in, out);
      },
      selftest_error());
}

// 0 deadlock, 1 divergent call sites, 2 exited lane in a mask, 3 barrier after an exit, 4 a cub block size
// that differs from the launch's, 5 a failed CUDA_KERNEL_ASSERT.
int emu_selftest_fault(int which) {
  return guarded(
      [&] {
        switch (which) {
          case 0:
            return emu::launch(dim3(1), dim3(kThreads), 0, deadlock_kernel);
          case 1:
            return emu::launch(dim3(1), dim3(kThreads), 0, divergent_sites_kernel);
          case 2:
            return emu::launch(dim3(1), dim3(kThreads), 0, exited_lane_kernel);
          case 3:
            return emu::launch(dim3(1), dim3(kThreads), 0, barrier_after_exit_kernel);
          case 4: {
            static int64_t in[2 * kThreads], out[6 * kThreads];
            return emu::launch(dim3(1), dim3(2 * kThreads), 0, cub_kernel, (const int64_t*)in, (int64_t*)out);
          }
          case 5:
            return emu::launch(dim3(2), dim3(kThreads), 0, assert_kernel, 1);
        }
      },
      selftest_error());
}

// Writes byte `index` of a `bytes`-byte dynamic shared memory (under ASan, index == bytes must abort).
int emu_selftest_dynamic_smem(int64_t bytes, int64_t index) {
  return guarded([&] { emu::launch(dim3(1), dim3(32), size_t(bytes), dynamic_smem_kernel, index); }, selftest_error());
}

}  // extern "C"
