// How many items an at::parallel_for chunk must hold. at::parallel_for runs a range inline when it has
// at most `grain` items, and a fork/join of the thread pool costs tens of microseconds on a loaded
// machine: at B = 64 the miners and the loss did a few microseconds of work per chunk and spent most of
// their time in fork/join. Chunks of at least kMinChunkWork element-operations (tens of microseconds of
// work) keep small batches on one thread and split large ones finely.
#pragma once
#include <algorithm>
#include <cstdint>

namespace fx {

constexpr int64_t kMinChunkWork = int64_t(1) << 17;

// `work_per_item`: element-operations of one item (e.g. N distances of one anchor row).
inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kMinChunkWork / std::max<int64_t>(1, work_per_item));
}

}  // namespace fx
