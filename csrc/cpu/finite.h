// Non-finite detection on the CPU inside the miners' own passes over their distance rows, so a NaN or
// Inf anywhere they read raises instead of silently breaking the rank order.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fx {

// True when every x[0..n) is finite. Tests the exponent bits (all ones = Inf or NaN) with integer ops,
// which vectorise without -ffast-math, unlike a floating-point reduction.
template <typename T>
inline bool all_finite(const T* x, int64_t n) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr U kExp = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    U bits;
    std::memcpy(&bits, x + j, sizeof(bits));
    bad |= U((bits & kExp) == kExp);
  }
  return bad == 0;
}

}  // namespace fx
