"""build_info(): what the extension was built with matches what loaded it."""

import torch

import facenet_ext as fx


def test_build_info():
    info = fx.build_info()
    # Same torch at build and run time, or the C++ ABI of the registered ops is not guaranteed.
    assert info["torch_version_built_against"] == torch.__version__ == info["torch_version_runtime"]
    assert isinstance(info["cuda_kernels"], bool) and isinstance(info["openmp"], bool)
    assert info["cuda_available"] == torch.cuda.is_available()
    assert info["threads"] == torch.get_num_threads() >= 1
    assert (info["cuda_runtime_built_against"] is None) == (not info["cuda_kernels"])


def test_build_config_matches_the_compiled_version():
    # __init__.py checks the running torch against _build_config before loading _C; it must say what _C says.
    from facenet_ext._build_config import TORCH_VERSION

    assert TORCH_VERSION == fx.build_info()["torch_version_built_against"]
