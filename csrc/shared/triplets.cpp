#include "shared/triplets.h"

#include "shared/tensors.h"

namespace fx {

Triplets empty_triplets(const at::Tensor& like) {
  return {empty_like_device({0}, like, at::kLong), empty_like_device({0}, like, at::kLong),
          empty_like_device({0}, like, at::kLong)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> compact_triplets_into(const at::Tensor& a,
                                                                                 const at::Tensor& p,
                                                                                 const at::Tensor& n, int64_t size) {
  const int64_t S = n.size(0);
  const auto opts = n.options().dtype(at::kLong);
  if (S == 0) {
    const at::Tensor none = at::full({size}, -1, opts);
    return {none, none.clone(), none.clone(), at::zeros({}, opts)};
  }
  const at::Tensor kept_through = n.ge(0).to(at::kLong).cumsum(0);  // kept slots up to and including each
  const at::Tensor found = kept_through.select(0, S - 1).clone();
  // Output j holds the (j + 1)-th kept slot: the first slot whose running count reaches j + 1.
  const at::Tensor want = at::arange(1, size + 1, opts);
  const at::Tensor src = at::searchsorted(kept_through, want).clamp_max_(S - 1);
  const at::Tensor valid = want.le(found);
  const auto take = [&](const at::Tensor& t) { return at::where(valid, t.index_select(0, src), -1); };
  return {take(a), take(p), take(n), found};
}

}  // namespace fx
