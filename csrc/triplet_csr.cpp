#include "triplet_csr.h"

namespace fx {

TripletCsr triplet_csr(const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative, int64_t B) {
  const at::Tensor rows = at::cat({anchor, positive, negative});
  TripletCsr csr;
  // Stable sort: within a row, entries stay in (role, triplet) order.
  csr.entry = std::get<1>(at::sort(rows, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  const at::Tensor counts = at::bincount(rows, /*weights=*/{}, /*minlength=*/B);
  csr.row_ptr = at::cat({at::zeros({1}, counts.options()), counts.cumsum(0)});
  return csr;
}

}  // namespace fx
