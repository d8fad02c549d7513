// Triplet margin loss on CPU: forward over mined triplets, backward per embedding row via the CSR.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include <ATen/ops/empty_cpu_dispatch.h>

#include "checks.h"
#include "rules/triplet_rules.h"
#include "cpu/simd.h"
#include "cpu/grain.h"

namespace fx {

namespace {
// Raises IndexError unless every (contiguous, int64) index lies in [0, B).
void check_triplet_index_range(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                               const at::Tensor& negative, int64_t B) {
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"anchor", &anchor}, {"positive", &positive}, {"negative", &negative}};
  for (const auto& [name, t] : all) {
    const int64_t* v = t->data_ptr<int64_t>();
    const int64_t n = t->numel();
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok &= static_cast<uint64_t>(v[i]) < static_cast<uint64_t>(B);
    TORCH_CHECK_INDEX(ok, op, ": ", name, " indices must lie in [0, ", B, ")");
  }
}

// ||a - b||^2 with kLanes partial sums combined in a fixed order: the compiler may then vectorise the
// loop (a single running sum must be added strictly in order), and the result stays the same on every
// run and every thread count.
template <typename acc_t, typename scalar_t>
FX_ALWAYS_INLINE acc_t squared_distance(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t D) {
  constexpr int kLanes = 8;
  acc_t part[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= D; k += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const acc_t u = acc_t(a[k + l]) - acc_t(b[k + l]);
      part[l] += u * u;
    }
  acc_t s = 0;
  for (; k < D; ++k) {
    const acc_t u = acc_t(a[k]) - acc_t(b[k]);
    s += u * u;
  }
  for (int l = 0; l < kLanes; ++l) s += part[l];
  return s;
}

template <typename scalar_t, typename acc_t>
struct ForwardArgs {
  const scalar_t* x;
  const int64_t *A, *P, *N;
  int64_t D;
  acc_t margin;
  bool squared;
  acc_t *loss, *d_ap, *d_an;
};

// Triplets [begin, end): distances and hinge; false if a distance is not finite.
template <typename scalar_t, typename acc_t>
FX_ALWAYS_INLINE bool forward_triplets_body(const ForwardArgs<scalar_t, acc_t>& f, int64_t begin, int64_t end) {
  bool bad = false;
  const int64_t D = f.D;
  for (int64_t t = begin; t < end; ++t) {
    const scalar_t *xa = f.x + f.A[t] * D, *xp = f.x + f.P[t] * D, *xn = f.x + f.N[t] * D;
    const acc_t sp = squared_distance<acc_t>(xa, xp, D), sn = squared_distance<acc_t>(xa, xn, D);
    bad |= !std::isfinite(sp) || !std::isfinite(sn);
    f.d_ap[t] = f.squared ? sp : fx_sqrt(sp);
    f.d_an[t] = f.squared ? sn : fx_sqrt(sn);
    f.loss[t] = hinge(f.d_ap[t], f.d_an[t], f.margin);
  }
  return !bad;
}

template <typename scalar_t, typename acc_t>
struct BackwardArgs {
  const scalar_t* x;
  const int64_t *A, *P, *N;
  const acc_t* G;  // the gradient of each triplet's loss, read with stride g_stride (0: one expanded value)
  int64_t g_stride;
  const acc_t *L, *DP, *DN;
  int64_t D;
  bool squared;
  const int64_t *row_ptr, *entry;  // CSR: the (triplet, role) entries of each row
  scalar_t* out;
};

// Rows [begin, end) of the gradient, each summed over its CSR entries in a fixed order: in segments of
// kTripletSegment entries, each summed from 0, then the segment sums added in order. That is the CUDA
// backward's association (kernels/triplet_loss.cuh, where each segment has its own warp), so both give
// the same bits. A row with one segment (the usual case) is summed straight into acc, as one running sum.
// acc: 2 D scratch (the row's sum, then a segment's).
template <typename scalar_t, typename acc_t>
FX_ALWAYS_INLINE void backward_rows_body(const BackwardArgs<scalar_t, acc_t>& b, int64_t begin, int64_t end,
                                         acc_t* __restrict__ acc) {
  const int64_t D = b.D;
  for (int64_t i = begin; i < end; ++i) {
    std::fill(acc, acc + D, acc_t(0));
    const int64_t first = b.row_ptr[i], last = b.row_ptr[i + 1];
    const bool segmented = triplet_row_segments(last - first) > 1;
    acc_t* sum = segmented ? acc + D : acc;  // not __restrict__: it may be acc itself
    for (int64_t s = first; s < last; s += kTripletSegment) {
      if (segmented) std::fill(sum, sum + D, acc_t(0));
      const int64_t stop = std::min(s + kTripletSegment, last);
      for (int64_t e = s; e < stop; ++e) {
        const int64_t k = b.entry[e], t = k / 3, role = k % 3;
        const RowWeights<acc_t> w = triplet_row_weights<acc_t>(static_cast<int>(role), b.G[t * b.g_stride], b.L[t],
                                                               b.DP[t], b.DN[t], b.squared);
        if (w.wp == acc_t(0) && w.wn == acc_t(0)) continue;
        const scalar_t* __restrict__ xa = b.x + b.A[t] * D;
        const scalar_t* __restrict__ xp = b.x + b.P[t] * D;
        const scalar_t* __restrict__ xn = b.x + b.N[t] * D;
        // The positive's and the negative's rows carry one term each (the other weight is 0): skipping the
        // zero term reads one row less and gives the same bits (adding a signed zero to a sum that started
        // at +0 changes nothing; no FMA contraction, see CMakeLists.txt). Independent lanes: each loop
        // vectorises.
        if (role == 0) {
          for (int64_t k2 = 0; k2 < D; ++k2) {
            const acc_t a = xa[k2];
            sum[k2] += w.wp * (a - acc_t(xp[k2])) + w.wn * (a - acc_t(xn[k2]));
          }
        } else if (role == 1) {
          for (int64_t k2 = 0; k2 < D; ++k2) sum[k2] += w.wp * (acc_t(xa[k2]) - acc_t(xp[k2]));
        } else {
          for (int64_t k2 = 0; k2 < D; ++k2) sum[k2] += w.wn * (acc_t(xa[k2]) - acc_t(xn[k2]));
        }
      }
      if (segmented)
        for (int64_t k2 = 0; k2 < D; ++k2) acc[k2] += sum[k2];
    }
    for (int64_t k2 = 0; k2 < D; ++k2) b.out[i * D + k2] = static_cast<scalar_t>(acc[k2]);
  }
}

// One AVX2-or-baseline clone per element type (cpu/simd.h).
#define FX_TRIPLET_CLONES(scalar_t, acc_t)                                                                    \
  FX_TARGET_CLONES bool forward_triplets(const ForwardArgs<scalar_t, acc_t>& f, int64_t begin, int64_t end) { \
    return forward_triplets_body(f, begin, end);                                                              \
  }                                                                                                           \
  FX_TARGET_CLONES void backward_rows(const BackwardArgs<scalar_t, acc_t>& b, int64_t begin, int64_t end,     \
                                      acc_t* acc) {                                                           \
    backward_rows_body(b, begin, end, acc);                                                                   \
  }
FX_TRIPLET_CLONES(float, float)
FX_TRIPLET_CLONES(double, double)
FX_TRIPLET_CLONES(at::Half, float)
FX_TRIPLET_CLONES(at::BFloat16, float)
#undef FX_TRIPLET_CLONES

std::tuple<at::Tensor, at::Tensor, at::Tensor> triplet_loss_forward_cpu(const at::Tensor& emb_in,
                                                                        const at::Tensor& anchor_in,
                                                                        const at::Tensor& positive_in,
                                                                        const at::Tensor& negative_in, double margin,
                                                                        bool squared) {
  const char* op = "triplet_loss_forward";
  check_triplet_forward(op, emb_in, anchor_in, positive_in, negative_in, margin);
  // Every input is read through raw pointers as packed: strided or expanded views are packed first.
  const at::Tensor emb = emb_in.contiguous(), anchor = anchor_in.contiguous(), positive = positive_in.contiguous(),
                   negative = negative_in.contiguous();
  check_triplet_index_range(op, anchor, positive, negative, emb.size(0));
  const int64_t T = anchor.size(0), D = emb.size(1);
  auto out_opts = emb.options().dtype(acc_type(emb.scalar_type()));
  at::Tensor loss = at::cpu::empty({T}, out_opts), d_ap = at::cpu::empty({T}, out_opts),
             d_an = at::cpu::empty({T}, out_opts);
  // A NaN/Inf in a row a triplet reads (or a squared distance that overflows) raises rather than
  // returning a NaN loss; found in the pass that computes the distances.
  std::atomic<bool> non_finite{false};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_loss_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const ForwardArgs<scalar_t, acc_t> args{emb.data_ptr<scalar_t>(),
                                            anchor.data_ptr<int64_t>(),
                                            positive.data_ptr<int64_t>(),
                                            negative.data_ptr<int64_t>(),
                                            D,
                                            static_cast<acc_t>(margin),
                                            squared,
                                            loss.data_ptr<acc_t>(),
                                            d_ap.data_ptr<acc_t>(),
                                            d_an.data_ptr<acc_t>()};
    at::parallel_for(0, T, grain_for(2 * D), [&](int64_t begin, int64_t end) {
      if (!forward_triplets(args, begin, end)) non_finite.store(true, std::memory_order_relaxed);
    });
  });
  TORCH_CHECK_VALUE(!non_finite.load(), op,
                    ": emb contains NaN or Inf in a row of a triplet (or a squared "
                    "distance overflows its dtype)");
  return {loss, d_ap, d_an};
}

// Which triplet entries touch each row, as a CSR (entry k = 3 t + role), by a counting sort over the
// 3T row indices: O(3T + B), stable (entries stay in (triplet, role) order within a row).
void triplet_rows_csr(const int64_t* A, const int64_t* P, const int64_t* N, int64_t T, int64_t B,
                      std::vector<int64_t>& row_ptr, std::vector<int64_t>& entry) {
  row_ptr.assign(B + 1, 0);
  entry.resize(3 * T);
  const int64_t* roles[3] = {A, P, N};
  for (int64_t t = 0; t < T; ++t)
    for (int r = 0; r < 3; ++r) ++row_ptr[roles[r][t] + 1];
  for (int64_t i = 0; i < B; ++i) row_ptr[i + 1] += row_ptr[i];
  std::vector<int64_t> next(row_ptr.begin(), row_ptr.end() - 1);
  for (int64_t t = 0; t < T; ++t)
    for (int r = 0; r < 3; ++r) entry[next[roles[r][t]]++] = 3 * t + r;
}

at::Tensor triplet_loss_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& emb_in, const at::Tensor& anchor_in,
                                     const at::Tensor& positive_in, const at::Tensor& negative_in,
                                     const at::Tensor& loss_in, const at::Tensor& d_ap_in, const at::Tensor& d_an_in,
                                     bool squared) {
  const char* op = "triplet_loss_backward";
  check_triplet_backward(op, grad_loss, emb_in, anchor_in, positive_in, negative_in, loss_in, d_ap_in, d_an_in);
  const at::Tensor emb = emb_in.contiguous(), anchor = anchor_in.contiguous(), positive = positive_in.contiguous(),
                   negative = negative_in.contiguous(), loss = loss_in.contiguous(), d_ap = d_ap_in.contiguous(),
                   d_an = d_an_in.contiguous();
  const int64_t B = emb.size(0), D = emb.size(1), T = anchor.size(0);
  check_triplet_index_range(op, anchor, positive, negative, B);
  // grad_loss is read through its stride: the gradient of loss.sum() is one number expanded (stride 0).
  const auto acc = acc_type(emb.scalar_type());
  const at::Tensor g = grad_loss.scalar_type() == acc ? grad_loss : grad_loss.to(acc);
  const int64_t g_stride = g.stride(0);
  std::vector<int64_t> row_ptr, entry;
  triplet_rows_csr(anchor.data_ptr<int64_t>(), positive.data_ptr<int64_t>(), negative.data_ptr<int64_t>(), T, B,
                   row_ptr, entry);
  at::Tensor grad = at::cpu::empty({B, D}, emb.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_loss_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const BackwardArgs<scalar_t, acc_t> args{emb.data_ptr<scalar_t>(),
                                             anchor.data_ptr<int64_t>(),
                                             positive.data_ptr<int64_t>(),
                                             negative.data_ptr<int64_t>(),
                                             g.data_ptr<acc_t>(),
                                             g_stride,
                                             loss.data_ptr<acc_t>(),
                                             d_ap.data_ptr<acc_t>(),
                                             d_an.data_ptr<acc_t>(),
                                             D,
                                             squared,
                                             row_ptr.data(),
                                             entry.data(),
                                             grad.data_ptr<scalar_t>()};
    at::parallel_for(0, B, grain_for(B > 0 ? 3 * T * 2 * D / B : 1), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc_row(2 * D);
      backward_rows(args, begin, end, acc_row.data());
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("triplet_loss_forward", &triplet_loss_forward_cpu);
  m.impl("triplet_loss_backward", &triplet_loss_backward_cpu);
}

}  // namespace fx
