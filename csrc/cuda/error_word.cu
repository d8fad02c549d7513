// The per-device error word (cuda/error_word.h) and the op that takes it: facenet_ext::take_errors.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <mutex>
#include <vector>

#include "cuda/error_word.h"

namespace fx::cuda {

at::Tensor error_word(const at::Device& device) {
  static std::mutex mutex;
  static std::vector<at::Tensor> words;  // by device index; never freed (one int32 per GPU)
  const std::lock_guard<std::mutex> lock(mutex);
  const auto index = static_cast<size_t>(device.index());
  if (words.size() <= index) words.resize(index + 1);
  if (!words[index].defined()) {
    const c10::cuda::CUDAGuard guard(device);
    words[index] = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(device));
  }
  return words[index];
}

namespace {

// A copy of the word of `like`'s device, and the word cleared: both queued on the current stream, so
// the copy holds every bit set by work queued before it. The caller's read of the copy is the sync.
at::Tensor take_errors_cuda(const at::Tensor& like) {
  const c10::cuda::CUDAGuard guard(like.device());
  at::Tensor word = error_word(like.device());
  at::Tensor bits = word.clone();
  word.zero_();
  return bits;
}

}  // namespace

TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) { m.impl("take_errors", &take_errors_cuda); }

}  // namespace fx::cuda
