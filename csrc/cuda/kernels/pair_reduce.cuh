// (distance, index) pairs reduced across a block with cub::BlockReduce; ties go to the smaller index,
// matching the CPU miners' "increasing index, strict comparison" scans.
#pragma once
#include <cstdint>

#include "rules/mining_rules.h"

namespace fx::cuda {

template <typename T>
struct DistIndex {
  T d;
  int32_t j;  // -1: empty
};

struct Nearest {  // min distance, ties to the smaller index
  template <typename T>
  __device__ DistIndex<T> operator()(const DistIndex<T>& u, const DistIndex<T>& v) const {
    if (u.j < 0) return v;
    if (v.j < 0) return u;
    return lex_less(v.d, int64_t(v.j), u.d, int64_t(u.j)) ? v : u;
  }
};

struct Farthest {  // max distance, ties to the smaller index
  template <typename T>
  __device__ DistIndex<T> operator()(const DistIndex<T>& u, const DistIndex<T>& v) const {
    if (u.j < 0) return v;
    if (v.j < 0) return u;
    return (v.d > u.d || (v.d == u.d && v.j < u.j)) ? v : u;
  }
};

}  // namespace fx::cuda
