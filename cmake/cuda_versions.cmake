# nvcc and torch must share a CUDA major version: objects built by one major against a torch built with
# another fail at load time or, worse, at the first kernel launch with an unreadable error. One line at
# configure time instead. Included by CMakeLists.txt; `cmake -DNVCC_VERSION=.. -DTORCH_CUDA_VERSION=.. -P`
# runs the same check alone (tests/test_build.py).
function(facenet_ext_check_cuda_majors nvcc_version torch_cuda_version)
  string(REGEX MATCH "^[0-9]+" nvcc_major "${nvcc_version}")
  string(REGEX MATCH "^[0-9]+" torch_major "${torch_cuda_version}")
  if(NOT nvcc_major STREQUAL torch_major)
    message(FATAL_ERROR "facenet_ext: nvcc is CUDA ${nvcc_version} but torch was built with CUDA ${torch_cuda_version}: "
                        "use an nvcc of CUDA ${torch_major}.x (CUDACXX=...) or FACENET_EXT_CUDA=OFF")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED NVCC_VERSION)
  facenet_ext_check_cuda_majors("${NVCC_VERSION}" "${TORCH_CUDA_VERSION}")
endif()
