#include "triplet_csr.h"

#include <vector>

namespace fx {

void check_triplet_emb(const char* op, const at::Tensor& emb) {
  TORCH_CHECK(emb.dim() == 2, op, ": emb must be 2-D [B, D], got shape ", emb.sizes());
  TORCH_CHECK(at::isFloatingType(emb.scalar_type()), op, ": emb must be floating point, got ", emb.scalar_type());
}

void check_triplet_indices(const char* op, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, const at::Device& device) {
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"anchor", &anchor}, {"positive", &positive}, {"negative", &negative}};
  for (const auto& [name, t] : all) {
    TORCH_CHECK(t->dim() == 1, op, ": ", name, " indices must be 1-D, got shape ", t->sizes());
    TORCH_CHECK(t->scalar_type() == at::kLong, op, ": ", name, " indices must be int64, got ", t->scalar_type());
    TORCH_CHECK(t->size(0) == anchor.size(0), op, ": anchor/positive/negative lengths differ (", anchor.size(0),
                ", ", positive.size(0), ", ", negative.size(0), ")");
    TORCH_CHECK(t->device() == device, op, ": ", name, " indices are on ", t->device(), ", embeddings on ", device);
  }
}

at::ScalarType triplet_acc_type(at::ScalarType emb_type) { return emb_type == at::kDouble ? at::kDouble : at::kFloat; }

TripletCsr triplet_csr(const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative, int64_t B) {
  const at::Tensor rows = at::stack({anchor, positive, negative}, 1).reshape(-1);  // row of entry 3 t + role
  TripletCsr csr;
  if (rows.device().is_cpu()) {
    // Counting sort: O(3T + B), stable by construction, far cheaper than a comparison sort on a CPU.
    const int64_t n = rows.numel();
    const int64_t* r = rows.data_ptr<int64_t>();
    csr.row_ptr = at::zeros({B + 1}, rows.options());
    csr.entry = at::empty({n}, rows.options());
    int64_t* ptr = csr.row_ptr.data_ptr<int64_t>();
    int64_t* entry = csr.entry.data_ptr<int64_t>();
    for (int64_t k = 0; k < n; ++k) ++ptr[r[k] + 1];
    for (int64_t i = 0; i < B; ++i) ptr[i + 1] += ptr[i];
    std::vector<int64_t> next(ptr, ptr + B);
    for (int64_t k = 0; k < n; ++k) entry[next[r[k]]++] = k;
    return csr;
  }
  // Stable sort: within a row, entries stay in (role, triplet) order. Row starts by binary search
  // rather than bincount, which would read the maximum back to the host.
  auto [sorted_rows, entry] = at::sort(rows, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  csr.entry = entry;
  csr.row_ptr = at::searchsorted(sorted_rows, at::arange(B + 1, rows.options()));
  return csr;
}

}  // namespace fx
