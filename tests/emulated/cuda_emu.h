// A small emulation of CUDA's execution model, so that the kernels in csrc/cuda/kernels/ run on a CPU in
// the test suite (test code only: never built into the wheel). Force-included (g++ -include) before a
// kernel header, with tests/emulated/shim/ first on the include path for the few CUDA headers they use.
//
// What it models:
// - one fiber per CUDA thread (its own stack; fiber_switch.s swaps them, x86-64 only); the blocks of a
//   grid run one after another;
// - threadIdx, blockIdx, blockDim, gridDim;
// - static __shared__ variables (function statics, shared by every thread of the block) and dynamic shared
//   memory allocated with exactly the launch's byte count, so ASan catches an overflow;
// - __syncthreads as a real barrier of every thread of the block;
// - __shfl_sync, __shfl_up/down/xor_sync, __ballot_sync, __syncwarp as real rendezvous of the lanes named by
//   the mask, which must all arrive at the same call site with the same mask;
// - atomics (plain read-modify-write: fibers never interleave inside one), CUDA_KERNEL_ASSERT;
// - cub::BlockReduce / BlockScan stand-ins (shim/cub/), whose BlockReduce result is poisoned outside
//   thread 0, as cub leaves it undefined there;
// - a thread schedule that runs each runnable thread until it blocks, in thread order, reverse order or
//   a seeded shuffle, so a missing barrier shows up as a wrong result under some order;
// - diagnostics that fail the launch: deadlock, lanes of one warp meeting at different call sites or with
//   different masks, a mask naming an exited (or missing) lane, a barrier that exited threads never reach,
//   a block size that cub was not instantiated for, a failed CUDA_KERNEL_ASSERT.
//
// What it does not model: the memory model (races between threads that a real GPU could reorder; here a
// thread runs until it blocks, so a race shows only as an order dependence), real cub (its reduction
// order for floating-point sums), occupancy, launch limits beyond the block size, and timing.
#pragma once

#include <math.h>  // isfinite, sqrt, sqrtf at global scope, as CUDA's device math provides them

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <source_location>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#define FX_CUDA_EMULATED 1

// ---- CUDA keywords -----------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static  // one instance, shared by every fiber (blocks run one at a time)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace emu {

// Raised inside the emulator (never inside a fiber's C++ frames that outlive it) and caught by launch().
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Op { kNone, kShfl, kShflUp, kShflDown, kShflXor, kBallot, kSyncWarp };
enum class State { kRunnable, kBarrier, kWarp, kExited };
enum class Schedule { kForward = 0, kReverse = 1, kShuffled = 2 };

struct Site {
  const char* file = "";
  unsigned line = 0;
  bool operator==(const Site& o) const { return line == o.line && std::strcmp(file, o.file) == 0; }
};

struct Thread {
  void* sp = nullptr;              // saved stack pointer while the fiber is switched out
  unsigned char* stack = nullptr;  // one of Machine::stacks
  dim3 tid;
  int linear = 0;
  State state = State::kRunnable;
  // A pending warp call: its kind, mask, call site, operand (as bytes) and argument (lane / delta).
  Op op = Op::kNone;
  unsigned mask = 0;
  Site site;
  uint64_t value = 0;
  int arg = 0;
  uint64_t result = 0;
  Site barrier_site;
};

struct Machine {
  dim3 grid, block, block_idx;
  std::vector<Thread> threads;
  std::unique_ptr<unsigned char[]> dynamic_smem;  // exactly the launch's bytes (ASan bounds a new[])
  void* scheduler_sp = nullptr;
  Thread* current = nullptr;
  std::string error;  // set by a fiber that must stop the launch
  Schedule schedule = Schedule::kForward;
  uint64_t seed = 0;
  std::function<void()> body;
  // Fiber stacks, kept across blocks and launches (allocating and clearing 1024 of them per block cost
  // more than the kernels). Uninitialised: a fiber's frames start wherever it writes them.
  std::vector<std::unique_ptr<unsigned char[]>> stacks;
  size_t stack_bytes = 0;
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  const void* main_bottom = nullptr;  // the scheduler's stack, as ASan reports it on the first switch
  size_t main_size = 0;
#endif
};

inline Machine& machine() {
  static Machine m;
  return m;
}
inline Thread& self() { return *machine().current; }

inline std::string where(const Site& s) { return std::string(s.file) + ":" + std::to_string(s.line); }

}  // namespace emu

// tests/emulated/fiber_switch.s: saves the callee-saved registers on the current stack, stores the stack
// pointer in *save_sp and resumes the stack at to_sp.
extern "C" void emu_fiber_switch(void** save_sp, void* to_sp);

#if defined(__SANITIZE_ADDRESS__)
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
#endif

namespace emu {

// From a fiber back to the scheduler (the fiber resumes when the scheduler switches to it again).
inline void yield_to_scheduler() {
  Machine& m = machine();
  Thread& t = self();
#if defined(__SANITIZE_ADDRESS__)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(t.state == State::kExited ? nullptr : &fake, m.main_bottom, m.main_size);
  emu_fiber_switch(&t.sp, m.scheduler_sp);
  __sanitizer_finish_switch_fiber(fake, &m.main_bottom, &m.main_size);
#else
  emu_fiber_switch(&t.sp, m.scheduler_sp);
#endif
}

// A fiber found a fault: record it and never run again (the launch is abandoned).
[[noreturn]] inline void fail(const std::string& why) {
  Machine& m = machine();
  if (m.error.empty()) m.error = why;
  self().state = State::kExited;
  yield_to_scheduler();
  __builtin_unreachable();
}

}  // namespace emu

// ---- built-in variables --------------------------------------------------------------------------------
#define threadIdx (::emu::self().tid)
#define blockIdx (::emu::machine().block_idx)
#define blockDim (::emu::machine().block)
#define gridDim (::emu::machine().grid)

#define CUDA_KERNEL_ASSERT(cond)                                                                   \
  ((cond) ? (void)0                                                                                \
          : ::emu::fail(std::string("CUDA_KERNEL_ASSERT(" #cond ") failed at ") + __FILE__ + ":" + \
                        std::to_string(__LINE__)))

// ---- barriers and warp calls ---------------------------------------------------------------------------
inline void __syncthreads(std::source_location loc = std::source_location::current()) {
  emu::Thread& t = emu::self();
  t.state = emu::State::kBarrier;
  t.barrier_site = {loc.file_name(), loc.line()};
  emu::yield_to_scheduler();
}

namespace emu {

template <typename T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp calls move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

inline uint64_t warp_call(Op op, unsigned mask, uint64_t value, int arg, int width, const std::source_location& loc) {
  Thread& t = self();
  const int lane = t.linear & 31;
  if (!(mask >> lane & 1u))
    fail("lane " + std::to_string(lane) + " calls a warp function at " + loc.file_name() + ":" +
         std::to_string(loc.line()) + " with a mask that does not name it");
  if (width != 32) fail("warp calls with width != 32 are not emulated");
  t.op = op;
  t.mask = mask;
  t.site = {loc.file_name(), loc.line()};
  t.value = value;
  t.arg = arg;
  t.state = State::kWarp;
  yield_to_scheduler();
  return t.result;
}

}  // namespace emu

template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32, std::source_location loc = std::source_location::current()) {
  return emu::from_bits<T>(emu::warp_call(emu::Op::kShfl, mask, emu::to_bits(v), src, width, loc));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32,
                 std::source_location loc = std::source_location::current()) {
  return emu::from_bits<T>(emu::warp_call(emu::Op::kShflUp, mask, emu::to_bits(v), int(d), width, loc));
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32,
                   std::source_location loc = std::source_location::current()) {
  return emu::from_bits<T>(emu::warp_call(emu::Op::kShflDown, mask, emu::to_bits(v), int(d), width, loc));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32,
                  std::source_location loc = std::source_location::current()) {
  return emu::from_bits<T>(emu::warp_call(emu::Op::kShflXor, mask, emu::to_bits(v), m, width, loc));
}
inline unsigned __ballot_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  return unsigned(emu::warp_call(emu::Op::kBallot, mask, pred ? 1 : 0, 0, 32, loc));
}
inline void __syncwarp(unsigned mask = 0xFFFFFFFFu, std::source_location loc = std::source_location::current()) {
  emu::warp_call(emu::Op::kSyncWarp, mask, 0, 0, 32, loc);
}
// The lanes of the caller's warp that have not exited (a real GPU reports the converged lanes, which
// depends on the scheduler; no kernel here relies on it).
inline unsigned __activemask() {
  emu::Machine& m = emu::machine();
  const int base = emu::self().linear & ~31;
  unsigned mask = 0;
  for (int l = 0; l < 32 && base + l < int(m.threads.size()); ++l)
    if (m.threads[base + l].state != emu::State::kExited) mask |= 1u << l;
  return mask;
}

// ---- bit casts, counts, atomics, min/max ---------------------------------------------------------------
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline unsigned __float_as_uint(float f) { return emu::from_bits<unsigned>(emu::to_bits(f)); }
inline float __uint_as_float(unsigned u) { return emu::from_bits<float>(emu::to_bits(u)); }
inline int __float_as_int(float f) { return emu::from_bits<int>(emu::to_bits(f)); }
inline float __int_as_float(int u) { return emu::from_bits<float>(emu::to_bits(u)); }
inline long long __double_as_longlong(double d) { return emu::from_bits<long long>(emu::to_bits(d)); }
inline double __longlong_as_double(long long b) { return emu::from_bits<double>(emu::to_bits(b)); }

template <typename T>
T atomicMin(T* p, T v) {
  const T old = *p;
  if (v < old) *p = v;
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  const T old = *p;
  if (v > old) *p = v;
  return old;
}
template <typename T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicOr(T* p, T v) {
  const T old = *p;
  *p = old | v;
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}
template <typename T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
T max(T a, T b) {
  return a < b ? b : a;
}

namespace emu {

// Dynamic shared memory of the current block (csrc/cuda/kernels/shared_memory.cuh asks for it).
inline unsigned char* dynamic_shared_memory() {
  Machine& m = machine();
  return m.dynamic_smem.get();
}

// The result a completed warp call hands lane `lane`.
inline uint64_t warp_result(const std::vector<Thread*>& lanes, int lane, unsigned mask) {
  const Thread& t = *lanes[lane];
  auto value_of = [&](int src) -> uint64_t {
    // A source lane outside the mask: CUDA leaves the value undefined; the caller's own value stands in.
    if (src < 0 || src > 31 || !(mask >> src & 1u)) return t.value;
    return lanes[src]->value;
  };
  switch (t.op) {
    case Op::kShfl:
      return value_of(t.arg & 31);
    case Op::kShflUp:
      return lane - t.arg >= 0 ? value_of(lane - t.arg) : t.value;
    case Op::kShflDown:
      return lane + t.arg <= 31 ? value_of(lane + t.arg) : t.value;
    case Op::kShflXor:
      return value_of(lane ^ t.arg);
    case Op::kBallot: {
      uint64_t b = 0;
      for (int l = 0; l < 32; ++l)
        if (mask >> l & 1u && lanes[l]->value) b |= 1ull << l;
      return b;
    }
    default:
      return 0;
  }
}

// Completes warp calls whose named lanes have all arrived; returns whether any did. Throws on a call
// that can never complete correctly.
inline bool complete_warp_calls(Machine& m) {
  bool progressed = false;
  const int n = int(m.threads.size());
  for (int base = 0; base < n; base += 32) {
    std::vector<Thread*> lanes(32, nullptr);
    for (int l = 0; l < 32 && base + l < n; ++l) lanes[l] = &m.threads[base + l];
    for (int l = 0; l < 32; ++l) {
      Thread* t = lanes[l];
      if (!t || t->state != State::kWarp) continue;
      bool all_here = true;
      for (int k = 0; k < 32; ++k) {
        if (!(t->mask >> k & 1u)) continue;
        const Thread* u = lanes[k];
        const std::string at = where(t->site);
        if (!u)
          throw Failure("warp call at " + at + ": mask names lane " + std::to_string(k) + " of warp " +
                        std::to_string(base / 32) + ", which the block does not have");
        if (u->state == State::kExited)
          throw Failure("warp call at " + at + ": mask names lane " + std::to_string(k) + ", which has exited");
        if (u->state != State::kWarp) {
          all_here = false;
          continue;
        }
        if (!(u->site == t->site) || u->op != t->op)
          throw Failure("lanes " + std::to_string(l) + " and " + std::to_string(k) + " of warp " +
                        std::to_string(base / 32) + " meet at different warp calls: " + at + " and " + where(u->site));
        if (u->mask != t->mask)
          throw Failure("lanes of warp " + std::to_string(base / 32) + " call " + at + " with different masks");
      }
      if (!all_here) continue;
      const unsigned mask = t->mask;
      std::vector<uint64_t> results(32);
      for (int k = 0; k < 32; ++k)
        if (mask >> k & 1u) results[k] = warp_result(lanes, k, mask);
      for (int k = 0; k < 32; ++k) {
        if (!(mask >> k & 1u)) continue;
        lanes[k]->result = results[k];
        lanes[k]->state = State::kRunnable;
        lanes[k]->op = Op::kNone;
      }
      progressed = true;
    }
  }
  return progressed;
}

// Releases a barrier every live thread waits at; returns whether it did.
inline bool complete_barrier(Machine& m) {
  int waiting = 0, exited = 0;
  const Thread* first = nullptr;
  for (const Thread& t : m.threads) {
    if (t.state == State::kExited) ++exited;
    if (t.state != State::kBarrier) continue;
    ++waiting;
    if (!first) first = &t;
    if (!(t.barrier_site == first->barrier_site))
      throw Failure("threads " + std::to_string(first->linear) + " and " + std::to_string(t.linear) +
                    " wait at different __syncthreads: " + where(first->barrier_site) + " and " +
                    where(t.barrier_site));
  }
  if (waiting == 0 || waiting + exited != int(m.threads.size())) return false;
  if (exited > 0)
    throw Failure("__syncthreads at " + where(first->barrier_site) + " is never reached by " + std::to_string(exited) +
                  " thread(s) that exited");
  for (Thread& t : m.threads)
    if (t.state == State::kBarrier) t.state = State::kRunnable;
  return true;
}

inline std::string describe_deadlock(const Machine& m) {
  std::string s = "deadlock: no thread can run;";
  int shown = 0;
  for (const Thread& t : m.threads) {
    if (t.state == State::kExited || t.state == State::kRunnable) continue;
    if (shown++ == 6) {
      s += " ...";
      break;
    }
    s +=
        " thread " + std::to_string(t.linear) +
        (t.state == State::kBarrier ? " at __syncthreads " + where(t.barrier_site) : " at warp call " + where(t.site)) +
        ";";
  }
  return s;
}

[[noreturn]] inline void fiber_entry() {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &machine().main_bottom, &machine().main_size);
#endif
  machine().body();
  self().state = State::kExited;
  yield_to_scheduler();  // never resumed
  __builtin_unreachable();
}

// A new fiber's stack, laid out as emu_fiber_switch leaves a switched-out one: the control words, six
// zeroed callee-saved registers, then fiber_entry as the return address (entered with the stack
// pointer 8 bytes off 16-byte alignment, as after a call).
inline void* initial_stack(unsigned char* stack, size_t bytes) {
  uint64_t* p = reinterpret_cast<uint64_t*>(uintptr_t(stack + bytes) & ~uintptr_t(15));
  *--p = 0;  // fiber_entry's own return address: it never returns
  *--p = reinterpret_cast<uintptr_t>(&fiber_entry);
  for (int i = 0; i < 6; ++i) *--p = 0;
  *--p = (uint64_t(0x037F) << 32) | 0x1F80;  // default x87 control word and MXCSR
  return p;
}

inline void run_block(Machine& m, size_t stack_bytes) {
  const int n = int(m.block.x * m.block.y * m.block.z);
  m.threads.assign(n, Thread{});
  for (int i = 0; i < n; ++i) {
    Thread& t = m.threads[i];
    t.linear = i;
    t.tid = dim3(i % m.block.x, (i / m.block.x) % m.block.y, i / (m.block.x * m.block.y));
    if (m.stack_bytes != stack_bytes) {
      m.stacks.clear();
      m.stack_bytes = stack_bytes;
    }
    while (int(m.stacks.size()) <= i) m.stacks.emplace_back(new unsigned char[stack_bytes]);
    t.stack = m.stacks[i].get();
#if defined(__SANITIZE_ADDRESS__)
    // A fiber abandoned by a failed launch leaves its frames' redzones poisoned on the reused stack.
    __asan_unpoison_memory_region(t.stack, stack_bytes);
#endif
    t.sp = initial_stack(t.stack, stack_bytes);
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = m.schedule == Schedule::kReverse ? n - 1 - i : i;
  if (m.schedule == Schedule::kShuffled) {
    std::mt19937_64 rng(m.seed ^ (uint64_t(m.block_idx.x) * 0x9E3779B97F4A7C15ull + m.block_idx.y));
    std::shuffle(order.begin(), order.end(), rng);
  }
  for (;;) {
    bool ran = false;
    for (int i : order) {
      Thread& t = m.threads[i];
      if (t.state != State::kRunnable) continue;
      m.current = &t;
#if defined(__SANITIZE_ADDRESS__)
      __sanitizer_start_switch_fiber(&m.fake_stack, t.stack, m.stack_bytes);
      emu_fiber_switch(&m.scheduler_sp, t.sp);
      __sanitizer_finish_switch_fiber(m.fake_stack, nullptr, nullptr);
#else
      emu_fiber_switch(&m.scheduler_sp, t.sp);
#endif
      m.current = nullptr;
      if (!m.error.empty()) throw Failure(m.error);
      ran = true;
    }
    const bool warps = complete_warp_calls(m);
    const bool barrier = complete_barrier(m);
    if (std::all_of(m.threads.begin(), m.threads.end(), [](const Thread& t) { return t.state == State::kExited; }))
      return;
    if (!ran && !warps && !barrier) throw Failure(describe_deadlock(m));
  }
}

struct Config {
  Schedule schedule = Schedule::kForward;
  uint64_t seed = 0;
#if defined(__SANITIZE_ADDRESS__)
  size_t stack_bytes = 256 * 1024;  // ASan's redzones enlarge every frame
#else
  size_t stack_bytes = 64 * 1024;
#endif
};
inline Config& config() {
  static Config c;
  return c;
}

// kernel<<<grid, block, smem>>>(args...), run to completion on this CPU thread. Throws emu::Failure.
template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, Kernel kernel, Args... args) {
  Machine& m = machine();
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > 1024) throw Failure("block of " + std::to_string(threads) + " threads");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) throw Failure("empty grid");
  m.grid = grid;
  m.block = block;
  m.error.clear();
  m.schedule = config().schedule;
  m.seed = config().seed;
  m.body = [&] { kernel(args...); };
  struct Reset {
    Machine& m;
    ~Reset() {
      m.body = nullptr;
      m.threads.clear();
      m.dynamic_smem.reset();
    }
  } reset{m};
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        m.block_idx = dim3(x, y, z);
        // Fresh and poisoned per block: a kernel that reads what it did not write sees 0xA5 bytes.
        m.dynamic_smem.reset(smem ? new unsigned char[smem] : nullptr);
        if (smem) std::memset(m.dynamic_smem.get(), 0xA5, smem);
        run_block(m, config().stack_bytes);
      }
}

}  // namespace emu
