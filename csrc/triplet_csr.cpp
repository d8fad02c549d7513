#include "triplet_csr.h"

namespace fx {

void check_triplet_emb(const char* op, const at::Tensor& emb) {
  TORCH_CHECK(emb.dim() == 2, op, ": emb must be 2-D [B, D], got shape ", emb.sizes());
  TORCH_CHECK(at::isFloatingType(emb.scalar_type()), op, ": emb must be floating point, got ", emb.scalar_type());
}

at::ScalarType triplet_acc_type(at::ScalarType emb_type) { return emb_type == at::kDouble ? at::kDouble : at::kFloat; }

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
