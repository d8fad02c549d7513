// Triplet margin loss on CPU: forward over mined triplets, backward per embedding row via the CSR.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "common/triplet_rules.h"
#include "triplet_csr.h"

namespace fx {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> triplet_margin_forward_cpu(const at::Tensor& emb_in,
                                                                          const at::Tensor& anchor,
                                                                          const at::Tensor& positive,
                                                                          const at::Tensor& negative, double margin,
                                                                          bool squared) {
  const char* op = "triplet_loss";
  check_triplet_emb(op, emb_in);
  check_triplet_indices(op, anchor, positive, negative, emb_in.device());
  const at::Tensor emb = emb_in.contiguous();
  const int64_t T = anchor.size(0), D = emb.size(1);
  auto out_opts = emb.options().dtype(triplet_acc_type(emb.scalar_type()));
  at::Tensor loss = at::empty({T}, out_opts), d_ap = at::empty({T}, out_opts), d_an = at::empty({T}, out_opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_margin_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* x = emb.data_ptr<scalar_t>();
    const int64_t *A = anchor.data_ptr<int64_t>(), *P = positive.data_ptr<int64_t>(), *N = negative.data_ptr<int64_t>();
    acc_t *L = loss.data_ptr<acc_t>(), *DP = d_ap.data_ptr<acc_t>(), *DN = d_an.data_ptr<acc_t>();
    const acc_t m = static_cast<acc_t>(margin);
    at::parallel_for(0, T, 256, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const scalar_t *xa = x + A[t] * D, *xp = x + P[t] * D, *xn = x + N[t] * D;
        acc_t sp = 0, sn = 0;
        for (int64_t k = 0; k < D; ++k) {
          const acc_t a = xa[k], u = a - acc_t(xp[k]), v = a - acc_t(xn[k]);
          sp += u * u;
          sn += v * v;
        }
        DP[t] = squared ? sp : fx_sqrt(sp);
        DN[t] = squared ? sn : fx_sqrt(sn);
        L[t] = hinge(DP[t], DN[t], m);
      }
    });
  });
  return {loss, d_ap, d_an};
}

at::Tensor triplet_margin_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& emb_in, const at::Tensor& anchor,
                                       const at::Tensor& positive, const at::Tensor& negative, const at::Tensor& loss,
                                       const at::Tensor& d_ap, const at::Tensor& d_an, bool squared) {
  const char* op = "triplet_loss backward";
  check_triplet_emb(op, emb_in);
  check_triplet_indices(op, anchor, positive, negative, emb_in.device());
  const at::Tensor emb = emb_in.contiguous();
  const int64_t B = emb.size(0), D = emb.size(1);
  const auto acc_type = triplet_acc_type(emb.scalar_type());
  const at::Tensor g = grad_loss.to(acc_type).contiguous();
  const TripletCsr csr = triplet_csr(anchor, positive, negative, B);
  at::Tensor grad = at::empty_like(emb);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, emb.scalar_type(), "triplet_margin_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* x = emb.data_ptr<scalar_t>();
    const int64_t *A = anchor.data_ptr<int64_t>(), *P = positive.data_ptr<int64_t>(), *N = negative.data_ptr<int64_t>();
    const acc_t *G = g.data_ptr<acc_t>(), *L = loss.data_ptr<acc_t>(), *DP = d_ap.data_ptr<acc_t>(),
                *DN = d_an.data_ptr<acc_t>();
    const int64_t *row_ptr = csr.row_ptr.data_ptr<int64_t>(), *entry = csr.entry.data_ptr<int64_t>();
    scalar_t* out = grad.data_ptr<scalar_t>();
    at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(D);
      for (int64_t i = begin; i < end; ++i) {
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int64_t e = row_ptr[i]; e < row_ptr[i + 1]; ++e) {
          const int64_t k = entry[e], t = k / 3, role = k % 3;
          const RowWeights<acc_t> w = triplet_row_weights<acc_t>(static_cast<int>(role), G[t], L[t], DP[t], DN[t], squared);
          if (w.wp == acc_t(0) && w.wn == acc_t(0)) continue;
          const scalar_t *xa = x + A[t] * D, *xp = x + P[t] * D, *xn = x + N[t] * D;
          for (int64_t k2 = 0; k2 < D; ++k2) {
            const acc_t a = xa[k2];
            acc[k2] += w.wp * (a - acc_t(xp[k2])) + w.wn * (a - acc_t(xn[k2]));
          }
        }
        for (int64_t k2 = 0; k2 < D; ++k2) out[i * D + k2] = static_cast<scalar_t>(acc[k2]);
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
  m.impl("triplet_margin_forward", &triplet_margin_forward_cpu);
  m.impl("triplet_margin_backward", &triplet_margin_backward_cpu);
}

}  // namespace fx
