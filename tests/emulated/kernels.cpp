// Every kernel of csrc/cuda/kernels/, launched under the CUDA emulator (cuda_emu.h, force-included) with
// the geometry the .cu launchers use (csrc/cuda/geometry.h), behind a plain C ABI that the Python tests
// call through ctypes with pointers into torch CPU tensors. Each entry returns 0, or 1 with the
// emulator's diagnostic in emu_last_error(). The launchers' ATen steps (sorts, scans, compaction) stay
// in the Python tests, which mirror them.
#include <cstdint>
#include <string>

#include "cuda/geometry.h"
#include "cuda/kernels/all_semi_hard.cuh"
#include "cuda/kernels/all_semi_hard_loss.cuh"
#include "cuda/kernels/batch_hard.cuh"
#include "cuda/kernels/l2_pool2d.cuh"
#include "cuda/kernels/label_groups.cuh"
#include "cuda/kernels/pairwise_sq_dist.cuh"
#include "cuda/kernels/semi_hard.cuh"
#include "cuda/kernels/triplet_csr.cuh"
#include "cuda/kernels/triplet_loss.cuh"

namespace {

using fx::cuda::Launch;

// bfloat16 as c10::BFloat16 stores it: the top half of a float, rounded to nearest even (NaN kept quiet).
struct BFloat16 {
  uint16_t bits;
  BFloat16() = default;
  explicit BFloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    bits = f != f ? uint16_t(0x7FC0) : uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
  explicit operator float() const {
    const uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

enum Dtype { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };

std::string& last_error() {
  static std::string e;
  return e;
}

template <typename F>
int guarded(F body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    last_error() = e.what();
    return 1;
  }
}

template <typename Kernel, typename... Args>
void launch(const Launch& l, Kernel kernel, Args... args) {
  emu::launch(dim3(l.grid_x, l.grid_y), dim3(l.block_x, l.block_y), l.smem, kernel, args...);
}

// Calls body(T{}) for the floating dtype code (float32/float64 only unless kHalf).
template <bool kHalf, typename F>
void dispatch(int dtype, F body) {
  switch (dtype) {
    case kF32:
      return body(float{});
    case kF64:
      return body(double{});
    case kF16:
      if constexpr (kHalf) return body(_Float16{});
      break;
    case kBF16:
      if constexpr (kHalf) return body(BFloat16{});
      break;
  }
  throw std::runtime_error("dtype code " + std::to_string(dtype) + " not taken by this kernel");
}

template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<_Float16> {
  using type = float;
};
template <>
struct Acc<BFloat16> {
  using type = float;
};

}  // namespace

// The label-group arrays (shared/label_groups.h), as the tests allocate them.
struct EmuGroups {
  int32_t *anchor_gid, *ref_gid, *members, *group_start;
  int64_t* pair_offset;
};

extern "C" {

const char* emu_last_error() { return last_error().c_str(); }

// 0: thread order, 1: reverse, 2: shuffled with `seed`.
void emu_set_schedule(int mode, uint64_t seed) {
  emu::config().schedule = static_cast<emu::Schedule>(mode);
  emu::config().seed = seed;
}

// norms_f / norms_d (at most one non-null), norm_limit, error_word: the fused miners' norm check.
int emu_label_groups(const int64_t* sorted, const int64_t* order, const int64_t* labels, int64_t B, int64_t N,
                     int exclude_self, EmuGroups g, int64_t* summary, const float* norms_f, const double* norms_d,
                     double norm_limit, int32_t* error_word) {
  return guarded([&] {
    fx::cuda::GroupArgs args{
        sorted,    order,         labels,        B,      N, exclude_self != 0, g.anchor_gid, g.ref_gid,
        g.members, g.group_start, g.pair_offset, summary};
    args.norms_f = norms_f;
    args.norms_d = norms_d;
    args.norm_limit = norm_limit;
    args.error_word = error_word;
    launch(fx::cuda::label_groups_launch(), fx::cuda::label_groups_kernel, args);
  });
}

// max_positives < 0: the summary was not read (the launcher's largest chunk). ordered, capacity, out_base
// and kept: cuda/kernels/semi_hard.cuh's output modes.
int emu_semi_hard(int dtype, const void* dist, int64_t ld, int64_t B, int64_t N, EmuGroups g, int64_t max_positives,
                  int exclude_self, int has_margin, double margin, int squared, int drop, int64_t* out_a,
                  int64_t* out_p, int64_t* out_n, int* non_finite, int ordered, int64_t capacity,
                  const int64_t* out_base, int64_t* kept) {
  return guarded([&] {
    dispatch<false>(dtype, [&](auto zero) {
      using T = decltype(zero);
      if (max_positives < 0) max_positives = fx::cuda::kSemiHardMaxChunk;
      const Launch l = fx::cuda::semi_hard_launch(B, max_positives, sizeof(T));
      fx::cuda::SemiHardArgs args{ld,
                                  N,
                                  g.anchor_gid,
                                  g.ref_gid,
                                  g.members,
                                  g.group_start,
                                  g.pair_offset,
                                  exclude_self != 0,
                                  has_margin != 0,
                                  squared != 0,
                                  drop != 0,
                                  fx::cuda::semi_hard_chunk(max_positives),
                                  out_a,
                                  out_p,
                                  out_n,
                                  non_finite};
      args.ordered = ordered != 0;
      args.capacity = capacity;
      args.out_base = out_base;
      args.kept = kept;
      launch(l, fx::cuda::semi_hard_kernel<T>, static_cast<const T*>(dist), static_cast<T>(margin), args);
    });
  });
}

// fill == 0: counts[num_pairs] per slot (and the NaN/Inf flag); fill == 1: writes at out_offset[slot].
int emu_all_semi_hard(int dtype, int fill, const void* dist, int64_t ld, int64_t B, int64_t N, EmuGroups g,
                      int exclude_self, double margin, int squared, int64_t* count, const int64_t* out_offset,
                      int64_t* out_a, int64_t* out_p, int64_t* out_n, int* non_finite) {
  return guarded([&] {
    dispatch<false>(dtype, [&](auto zero) {
      using T = decltype(zero);
      fx::cuda::AllSemiHardArgs args{
          ld,           N,     g.anchor_gid, g.ref_gid, g.members, g.group_start, g.pair_offset, exclude_self != 0,
          squared != 0, count, out_offset,   out_a,     out_p,     out_n,         non_finite};
      const auto* d = static_cast<const T*>(dist);
      if (fill)
        launch(fx::cuda::all_semi_hard_launch(B), fx::cuda::all_semi_hard_kernel<T, true>, d, static_cast<T>(margin),
               args);
      else
        launch(fx::cuda::all_semi_hard_launch(B), fx::cuda::all_semi_hard_kernel<T, false>, d, static_cast<T>(margin),
               args);
    });
  });
}

int emu_batch_hard(int dtype, const void* dist, int64_t ld, int64_t B, int64_t N, EmuGroups g, int exclude_self,
                   int64_t* out_p, int64_t* out_n, int* non_finite) {
  return guarded([&] {
    dispatch<false>(dtype, [&](auto zero) {
      using T = decltype(zero);
      launch(fx::cuda::batch_hard_launch(B), fx::cuda::batch_hard_kernel<T>, static_cast<const T*>(dist), ld, N,
             g.anchor_gid, g.ref_gid, g.pair_offset, exclude_self != 0, out_p, out_n, non_finite);
    });
  });
}

int emu_all_semi_hard_loss(int dtype, const void* dist, const void* x, const void* norm, int64_t B, int64_t D,
                           EmuGroups g, double margin, int squared, void* coef, double* anchor_sums,
                           int64_t* anchor_counts) {
  return guarded([&] {
    dispatch<false>(dtype, [&](auto zero) {
      using T = decltype(zero);
      const fx::cuda::AllSemiHardLossArgs<T> args{static_cast<const T*>(dist),
                                                  static_cast<const T*>(x),
                                                  static_cast<const T*>(norm),
                                                  B,
                                                  D,
                                                  g.anchor_gid,
                                                  g.ref_gid,
                                                  g.members,
                                                  g.group_start,
                                                  g.pair_offset,
                                                  static_cast<T>(margin),
                                                  squared != 0,
                                                  static_cast<T*>(coef),
                                                  anchor_sums,
                                                  anchor_counts};
      launch(fx::cuda::all_semi_hard_loss_launch(B), fx::cuda::all_semi_hard_loss_kernel<T>, args);
    });
  });
}

// out: the Gram matrix on entry, the squared distances on return. y_norm == null: the symmetric epilogue.
int emu_dist_epilogue(int dtype, void* out, const void* x_norm, const void* y_norm, int64_t B, int64_t N) {
  return guarded([&] {
    dispatch<false>(dtype, [&](auto zero) {
      using T = decltype(zero);
      if (!y_norm)
        launch(fx::cuda::symmetric_dist_launch(B), fx::cuda::symmetric_dist_epilogue<T>, static_cast<T*>(out),
               static_cast<const T*>(x_norm), B);
      else
        launch(fx::cuda::cross_dist_launch(B, N), fx::cuda::cross_dist_epilogue<T>, static_cast<T*>(out),
               static_cast<const T*>(x_norm), static_cast<const T*>(y_norm), B, N);
    });
  });
}

// loss, d_ap, d_an: [T] in the accumulation dtype (float for float16/bfloat16). error_word: int32 [1].
int emu_triplet_forward(int dtype, const void* x, int64_t B, int64_t D, const int64_t* A, const int64_t* P,
                        const int64_t* N, int64_t T, double margin, int squared, void* loss, void* d_ap, void* d_an,
                        int32_t* error_word) {
  return guarded([&] {
    dispatch<true>(dtype, [&](auto zero) {
      using S = decltype(zero);
      using acc_t = typename Acc<S>::type;
      launch(fx::cuda::triplet_forward_launch(T), fx::cuda::triplet_forward_kernel<S, acc_t>, static_cast<const S*>(x),
             B, D, A, P, N, T, static_cast<acc_t>(margin), squared != 0, static_cast<acc_t*>(loss),
             static_cast<acc_t*>(d_ap), static_cast<acc_t*>(d_an), error_word);
    });
  });
}

// rules/triplet_rules.h kTripletSegment: the entries per backward segment.
int64_t emu_triplet_segment() { return fx::kTripletSegment; }

// geometry.h triplet_csr_plan: plan = {entries, tiles, passes, digit_bits}.
void emu_triplet_csr_plan(int64_t T, int64_t B, int64_t* plan) {
  const fx::cuda::CsrPlan p = fx::cuda::triplet_csr_plan(T, B);
  plan[0] = p.entries;
  plan[1] = p.tiles;
  plan[2] = p.passes;
  plan[3] = p.digit_bits;
}

// One kernel of cuda/triplet_csr.cu for radix pass `pass`: 0 count (into counts, zeroed; error_word on
// pass 0 only), 1 scatter (offsets advanced in place, into out), 2 row_ptr (from the sorted entries `in`).
int emu_triplet_csr(int kernel, const int64_t* A, const int64_t* P, const int64_t* N, int64_t T, int64_t B, int pass,
                    const int64_t* in, int64_t* work, int64_t* out, int32_t* error_word) {
  return guarded([&] {
    const fx::cuda::CsrPlan p = fx::cuda::triplet_csr_plan(T, B);
    const fx::cuda::CsrArgs c{A, P, N, B, p.entries, p.tiles, pass * p.digit_bits, p.digit_bits};
    if (kernel == 0)
      launch(fx::cuda::triplet_csr_tiles_launch(p), fx::cuda::triplet_csr_count_kernel, c, in, work, error_word);
    else if (kernel == 1)
      launch(fx::cuda::triplet_csr_tiles_launch(p), fx::cuda::triplet_csr_scatter_kernel, c, in, work, out);
    else
      launch(fx::cuda::triplet_csr_rows_launch(B), fx::cuda::triplet_csr_rows_kernel, c, in, out);
  });
}

// The segment pass, then the combine pass (cuda/triplet_loss.cu). partial: [triplet_segment_bound, D] acc.
int emu_triplet_backward(int dtype, const void* x, int64_t B, int64_t D, const int64_t* A, const int64_t* P,
                         const int64_t* N, int64_t T, const void* grad_loss, const void* loss, const void* d_ap,
                         const void* d_an, int squared, const int64_t* row_ptr, const int64_t* entry,
                         const int64_t* seg_ptr, void* partial, void* grad) {
  return guarded([&] {
    dispatch<true>(dtype, [&](auto zero) {
      using S = decltype(zero);
      using acc_t = typename Acc<S>::type;
      const fx::cuda::TripletBackwardArgs<S, acc_t> args{static_cast<const S*>(x),
                                                         B,
                                                         D,
                                                         A,
                                                         P,
                                                         N,
                                                         static_cast<const acc_t*>(grad_loss),
                                                         static_cast<const acc_t*>(loss),
                                                         static_cast<const acc_t*>(d_ap),
                                                         static_cast<const acc_t*>(d_an),
                                                         squared != 0,
                                                         row_ptr,
                                                         entry,
                                                         seg_ptr,
                                                         static_cast<acc_t*>(partial),
                                                         static_cast<S*>(grad)};
      launch(fx::cuda::triplet_backward_launch(fx::cuda::triplet_segment_bound(B, T)),
             fx::cuda::triplet_backward_kernel<S, acc_t>, args);
      launch(fx::cuda::triplet_combine_launch(B, D), fx::cuda::triplet_combine_kernel<S, acc_t>, seg_ptr,
             static_cast<const acc_t*>(partial), B, D, static_cast<S*>(grad));
    });
  });
}

// dims: C, H, W, OH, OW, kh, kw, sh, sw, ph, pw. index64: force 64-bit offsets (else the launcher's choice).
// grad_strides: n, c, h, w of grad_out (backward only).
int emu_l2_pool2d(int dtype, int backward, int index64, const int64_t* dims, int64_t batch, const void* x,
                  const void* y, void* out, const void* grad_out, const int64_t* grad_strides) {
  return guarded([&] {
    dispatch<true>(dtype, [&](auto zero) {
      using S = decltype(zero);
      using acc_t = typename Acc<S>::type;
      const int64_t C = dims[0], H = dims[1], W = dims[2], OH = dims[3], OW = dims[4];
      const int64_t total = backward ? batch * C * H * W : batch * C * OH * OW;
      const Launch l = fx::cuda::l2_pool_launch(total);
      auto run = [&](auto index_zero) {
        using I = decltype(index_zero);
        const fx::cuda::L2PoolDims<I> d{I(dims[0]), I(dims[1]), I(dims[2]), I(dims[3]), I(dims[4]), I(dims[5]),
                                        I(dims[6]), I(dims[7]), I(dims[8]), I(dims[9]), I(dims[10])};
        if (backward) {
          const fx::cuda::GradStrides gs{grad_strides[0], grad_strides[1], grad_strides[2], grad_strides[3]};
          launch(l, fx::cuda::l2_pool2d_backward_kernel<S, acc_t, I>, static_cast<const S*>(grad_out), gs,
                 static_cast<const S*>(x), static_cast<const S*>(y), static_cast<S*>(out), total, d);
        } else {
          launch(l, fx::cuda::l2_pool2d_forward_kernel<S, acc_t, I>, static_cast<const S*>(x), static_cast<S*>(out),
                 total, d);
        }
      };
      const fx::cuda::L2PoolAxis axis_h{H, OH, dims[5], dims[7], dims[9]}, axis_w{W, OW, dims[6], dims[8], dims[10]};
      if (!index64 && fx::cuda::l2_pool_fits_int32(batch * C * H * W, batch * C * OH * OW, axis_h, axis_w))
        run(int32_t{});
      else
        run(int64_t{});
    });
  });
}

// cuda/geometry.h's 32/64-bit choice for L2 pooling (the launchers' and the harness's).
int emu_l2_pool_fits_int32(int64_t input_numel, int64_t output_numel, const int64_t* h, const int64_t* w) {
  return fx::cuda::l2_pool_fits_int32(input_numel, output_numel, {h[0], h[1], h[2], h[3], h[4]},
                                      {w[0], w[1], w[2], w[3], w[4]})
             ? 1
             : 0;
}

}  // extern "C"
