"""How the extension is built and loaded: its export list, where its std:: references bind, the two
messages a user meets when the build and the running torch disagree, and the CUDA compile check.

Each test inspects the installed module or runs a small script in a subprocess; none rebuilds.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import facenet_ext as fx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import cuda_compile_check  # noqa: E402
import exported_symbols  # noqa: E402

C_MODULE = Path(fx._C.__file__)


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


# ---- the module's linkage ---------------------------------------------------------------------------


def test_module_exports_only_its_init_function():
    # Before cmake/exports.map: 28 (typeinfo of c10 exceptions and kernel signatures, std:: mutex bases).
    assert exported_symbols.unexpected_exports(C_MODULE) == []
    assert [name for _, name in exported_symbols.defined(C_MODULE)] == [exported_symbols.INIT_SYMBOL]


def test_std_references_bind_to_libstdcxx_not_to_torch_copies():
    # libtorch_cpu and libc10 export statically linked copies of some libstdc++ code; with libstdc++
    # after them in DT_NEEDED, 5 of our std:: references (basic_ostringstream's constructor, exception_ptr)
    # bound to those copies. LD_BIND_NOW resolves every reference at load, not only the ones called.
    env = dict(os.environ, LD_DEBUG="bindings", LD_BIND_NOW="1")
    proc = _run([sys.executable, "-c", "import facenet_ext"], env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    bindings = exported_symbols.bindings(proc.stderr, C_MODULE)
    assert len(bindings) > 100, "LD_DEBUG=bindings reported too little; the parser is stale"
    to_libstdcxx, elsewhere = exported_symbols.std_bound_elsewhere(bindings)
    assert elsewhere == []
    assert to_libstdcxx > 0


def test_compiled_as_cxx17_like_the_cuda_flags_say():
    standard = next(f for f in cuda_compile_check.shared_flags() if f.startswith("-std="))
    assert standard == "-std=c++17"
    assert fx._C.build_info()["cplusplus"] == 201703


# ---- the two messages ------------------------------------------------------------------------------


def _backend(code: str):
    # As pip's build isolation does (its sitecustomize): site-packages off sys.path, so torch is not
    # importable while sys.prefix is still this environment's.
    script = (
        "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
        f"sys.path.insert(0, 'cmake'); import facenet_ext_backend as b; {code}"
    )
    return _run([sys.executable, "-s", "-c", script], cwd=ROOT)


def test_plain_pip_install_stops_with_one_line_naming_the_command():
    proc = _backend("b.get_requires_for_build_wheel()")
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install --no-build-isolation ." in lines[0]
    assert f"hides the installed torch {torch.__version__}" in lines[0]
    for hook in ("get_requires_for_build_editable()", "build_wheel('/nonexistent')"):
        assert _backend(f"b.{hook}").stderr == proc.stderr


def test_backend_message_without_any_torch():
    proc = _backend("print(b.torch_problem(site_dirs=[]))")
    assert proc.returncode == 0
    assert "none is installed: install torch first" in proc.stdout
    assert "pip install --no-build-isolation ." in proc.stdout


def test_backend_passes_when_torch_is_importable():
    sys.path.insert(0, str(ROOT / "cmake"))
    try:
        import facenet_ext_backend
    finally:
        sys.path.remove(str(ROOT / "cmake"))
    assert facenet_ext_backend.torch_problem() is None


def test_build_requires_never_pull_torch():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert not any(req.lower().startswith("torch") for req in build_system["requires"])
    assert build_system["build-backend"] == "facenet_ext_backend"
    assert (ROOT / build_system["backend-path"][0] / "facenet_ext_backend.py").is_file()


def test_import_refuses_a_build_for_another_torch():
    code = "import torch; torch.__version__ = '0.0.0'; import facenet_ext"
    proc = _run([sys.executable, "-c", code], cwd="/")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    built = fx._C.build_info()["torch_version_built_against"]
    assert last == (
        f"ImportError: facenet_ext: the native extension was built against torch {built}, running "
        "torch 0.0.0: rebuild it in this environment with `pip install --no-build-isolation .`"
    )


# ---- the CUDA compile check ------------------------------------------------------------------------


def _compile_check_without_nvcc(ci: bool):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(NVCC="/nonexistent/nvcc", **({"CI": "true"} if ci else {}))
    return _run([sys.executable, str(ROOT / "tools" / "cuda_compile_check.py")], env=env)


def test_compile_check_fails_in_ci_without_nvcc():
    proc = _compile_check_without_nvcc(ci=True)
    assert proc.returncode == 1 and "FAILED" in proc.stdout


def test_compile_check_skips_without_nvcc_outside_ci():
    proc = _compile_check_without_nvcc(ci=False)
    assert proc.returncode == 0 and "skipping" in proc.stdout


def test_one_copy_of_the_nvcc_flags():
    flags = cuda_compile_check.shared_flags()
    cmd = cuda_compile_check.nvcc_command(Path("x.cu"), Path("x.o"))
    assert all(f in cmd for f in flags)
    assert [f for f in cmd if f.startswith("-std=")] == ["-std=c++17"]
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "cmake/nvcc_flags.txt" in cmake
    for flag in flags:  # CMake takes them from the file, never from a second list
        assert flag not in cmake, flag


@pytest.mark.parametrize(
    "nvcc,torch_cuda,ok", [("13.0.48", "13.0", True), ("12.4.131", "13.0", False), ("13.1.0", "12.8", False)]
)
def test_configure_refuses_an_nvcc_of_another_cuda_major(nvcc, torch_cuda, ok):
    """cmake/cuda_versions.cmake, the check CMakeLists.txt runs before compiling any .cu file."""
    cmake = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")
    if cmake is None:
        pytest.skip("no cmake")
    script = ROOT / "cmake" / "cuda_versions.cmake"
    cmd = [cmake, f"-DNVCC_VERSION={nvcc}", f"-DTORCH_CUDA_VERSION={torch_cuda}", "-P", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, proc.stderr
    if not ok:
        assert f"nvcc is CUDA {nvcc} but torch was built with CUDA {torch_cuda}" in " ".join(proc.stderr.split())
