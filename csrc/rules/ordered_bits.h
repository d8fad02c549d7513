// Unsigned keys that order like the floating-point values they encode, negative values included: the
// sign bit set means negative, so all bits flip; otherwise the sign bit is set. -0 is first normalised
// to +0 (adding +0.0), so the two zeros share a key. NaN is not ordered (the miners reject it).
//
// Both miners pack (distance, index) pairs into one integer for a branchless or atomic minimum. Raw IEEE
// bits order only non-negative values: every negative one would sort above every positive one. Negative
// entries do reach the miners (*_from_sq_dist takes any finite matrix, and the streaming and cross-batch
// paths write -1 on purpose).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "rules/macros.h"

namespace fx {

template <typename T>  // float or double
using OrderedKey = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T>
FX_HD OrderedKey<T> ordered_bits(T d) {
  using U = OrderedKey<T>;
  constexpr U kSign = U(1) << (8 * sizeof(U) - 1);
  const T v = d + T(0);
  U u;
  memcpy(&u, &v, sizeof(u));
  return (u & kSign) ? ~u : (u | kSign);
}

template <typename T>
FX_HD T from_ordered_bits(OrderedKey<T> k) {
  using U = OrderedKey<T>;
  constexpr U kSign = U(1) << (8 * sizeof(U) - 1);
  const U u = (k & kSign) ? (k & ~kSign) : ~k;
  T d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

}  // namespace fx
