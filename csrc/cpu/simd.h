// Hot CPU loops compiled twice, for AVX2 and for the baseline x86-64 the build targets, the variant picked
// once at load time (GCC function multi-versioning): a generic build still runs 8 float lanes wide on
// the machines that have them. Only for non-template functions (GCC's rule): templates put their body in
// an always-inline function and clone one thin overload per type.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FX_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FX_TARGET_CLONES
#endif

#define FX_ALWAYS_INLINE __attribute__((always_inline)) inline
