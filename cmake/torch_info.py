"""Print CMake `set()` lines describing the installed torch.

We ask Python instead of calling find_package(Torch): TorchConfig.cmake drags in its own CUDA
detection (NVTX, nvrtc hashes, kineto) that breaks across wheel/toolkit combinations, while all we
need is the include path, the library folder, the C++ ABI flag and whether torch was built with CUDA.
"""

import os

import torch
import torch.utils.cpp_extension as cpp

lines = {
    "TORCH_VERSION": torch.__version__,
    "TORCH_INCLUDE_DIRS": ";".join(cpp.include_paths()),
    "TORCH_LIBRARY_DIR": os.path.join(os.path.dirname(torch.__file__), "lib"),
    "TORCH_CXX11_ABI": str(int(torch._C._GLIBCXX_USE_CXX11_ABI)),
    "TORCH_CUDA_VERSION": torch.version.cuda or "",
}
for key, value in lines.items():
    print(f'set({key} "{value}")')
