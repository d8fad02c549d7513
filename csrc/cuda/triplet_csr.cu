// The triplet backward's CSR on CUDA: an LSD radix sort of the entries on their row, one per-tile counting
// sort per digit (geometry.h, triplet_csr_plan; kernels/triplet_csr.cuh), then row_ptr by binary search.
#include "cuda/triplet_csr.h"

#include <ATen/ATen.h>

#include <utility>

#include "cuda/geometry.h"
#include "cuda/kernels/triplet_csr.cuh"
#include "cuda/launch.cuh"

namespace fx::cuda {

TripletCsr triplet_csr(const at::Tensor& anchor, const at::Tensor& positive, const at::Tensor& negative, int64_t B,
                       int32_t* error_word) {
  const CsrPlan plan = triplet_csr_plan(anchor.size(0), B);
  const auto opts = anchor.options();
  CsrArgs c{anchor.data_ptr<int64_t>(),
            positive.data_ptr<int64_t>(),
            negative.data_ptr<int64_t>(),
            B,
            plan.entries,
            plan.tiles,
            0,
            plan.digit_bits};
  const Launch tiles = triplet_csr_tiles_launch(plan);
  at::Tensor in, out = at::empty({plan.entries}, opts);
  for (int pass = 0; pass < plan.passes; ++pass) {
    c.shift = pass * plan.digit_bits;
    at::Tensor counts = at::zeros({plan.radix() * plan.tiles}, opts);
    const int64_t* in_ptr = pass == 0 ? nullptr : in.data_ptr<int64_t>();
    triplet_csr_count_kernel<<<grid_of(tiles), block_of(tiles), 0, current_stream()>>>(
        c, in_ptr, counts.data_ptr<int64_t>(), pass == 0 ? error_word : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // Exclusive scan: ATen's int64 cumsum (it scans inputs past INT_MAX elements in chunks), minus the counts.
    at::Tensor offsets = at::cumsum(counts, 0).sub_(counts);
    triplet_csr_scatter_kernel<<<grid_of(tiles), block_of(tiles), 0, current_stream()>>>(
        c, in_ptr, offsets.data_ptr<int64_t>(), out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (pass + 1 < plan.passes) {
      if (!in.defined()) in = at::empty({plan.entries}, opts);
      std::swap(in, out);
    }
  }
  TripletCsr csr;
  csr.entry = out;
  csr.row_ptr = at::empty({B + 1}, opts);
  const Launch rows = triplet_csr_rows_launch(B);
  triplet_csr_rows_kernel<<<grid_of(rows), block_of(rows), 0, current_stream()>>>(c, csr.entry.data_ptr<int64_t>(),
                                                                                  csr.row_ptr.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return csr;
}

}  // namespace fx::cuda
