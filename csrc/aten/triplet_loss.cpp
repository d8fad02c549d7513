#include "aten/triplet_loss.h"

#include "checks.h"

namespace fx {

namespace {
void check_indices(const char* op, const at::Tensor& emb, const at::Tensor& anchor, const at::Tensor& positive,
                   const at::Tensor& negative) {
  const std::pair<const char*, const at::Tensor*> all[] = {
      {"anchor", &anchor}, {"positive", &positive}, {"negative", &negative}};
  for (const auto& [name, t] : all) {
    check_dim(op, name, *t, 1, "[T]");
    check_dtype(op, name, *t, at::kLong);
    TORCH_CHECK_VALUE(t->size(0) == anchor.size(0), op, ": anchor/positive/negative lengths differ (", anchor.size(0),
                      ", ", positive.size(0), ", ", negative.size(0), ")");
    check_device(op, name, *t, "emb", emb);
  }
}
}  // namespace

void check_triplet_forward(const char* op, const at::Tensor& emb, const at::Tensor& anchor, const at::Tensor& positive,
                           const at::Tensor& negative, double margin) {
  check_embeddings(op, "emb", emb);
  check_indices(op, emb, anchor, positive, negative);
  check_margin(op, margin, acc_type(emb.scalar_type()));
}

void check_triplet_backward(const char* op, const at::Tensor& grad_loss, const at::Tensor& emb,
                            const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative,
                            const at::Tensor& loss, const at::Tensor& d_ap, const at::Tensor& d_an) {
  check_embeddings(op, "emb", emb);
  check_indices(op, emb, anchor, positive, negative);
  const int64_t T = anchor.size(0);
  const auto acc = acc_type(emb.scalar_type());
  const std::pair<const char*, const at::Tensor*> per_triplet[] = {
      {"grad_loss", &grad_loss}, {"loss", &loss}, {"d_ap", &d_ap}, {"d_an", &d_an}};
  for (const auto& [name, t] : per_triplet) {
    check_dim(op, name, *t, 1, "[T]");
    if (t == &grad_loss) {
      check_floating(op, name, *t);
    } else {
      check_dtype(op, name, *t, acc);
    }
    check_length(op, name, *t, T, "the triplet indices");
    check_device(op, name, *t, "emb", emb);
  }
}

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

}  // namespace fx
