// The pybind11 module `facenet_ext._C`: importing it also runs the TORCH_LIBRARY registrations
// linked into the same library. It carries only non-tensor helpers.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

#ifdef FACENET_EXT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif
#include <string>

#ifndef FACENET_EXT_CUDA_ARCHS
#define FACENET_EXT_CUDA_ARCHS ""
#endif

namespace py = pybind11;

static py::dict build_info() {
  py::dict info;
  info["torch_version_built_against"] = FACENET_EXT_TORCH_VERSION;
#ifdef FACENET_EXT_WITH_CUDA
  info["cuda_kernels"] = true;
  info["cuda_runtime_built_against"] =
      std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
#else
  info["cuda_kernels"] = false;
  info["cuda_runtime_built_against"] = py::none();
#endif
  info["cuda_archs"] = FACENET_EXT_CUDA_ARCHS;
#ifdef _OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["threads"] = at::get_num_threads();
  info["compiler"] = __VERSION__;
  info["cplusplus"] = static_cast<long>(__cplusplus);  // the standard CMake compiled us as (201703: C++17)
  return info;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "facenet_ext native extension (ops are registered under torch.ops.facenet_ext)";
  m.def("build_info", &build_info, "How this extension was built: torch/CUDA versions, archs, OpenMP, threads");
}
