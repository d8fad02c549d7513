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

#include "common/macros.h"

namespace fx {

FX_HD uint32_t ordered_bits(float d) {
  const float v = d + 0.0f;
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

FX_HD float from_ordered_bits(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

FX_HD uint64_t ordered_bits(double d) {
  const double v = d + 0.0;
  uint64_t u;
  memcpy(&u, &v, sizeof(u));
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

FX_HD double from_ordered_bits(uint64_t k) {
  const uint64_t u = (k & 0x8000000000000000ull) ? (k & 0x7FFFFFFFFFFFFFFFull) : ~k;
  double d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

}  // namespace fx
