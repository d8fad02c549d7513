"""Compile every csrc/cuda/*.cu with nvcc for sm_80 and sm_90 against the installed torch's headers.

Runs on machines without a GPU (CI): a CUDA typo fails here instead of on the first GPU user. The CPU
torch wheel ships the CUDA headers; C10_CUDA_NO_CMAKE_CONFIGURE_FILE skips the one generated header
it lacks (it only sets DLL export macros).

The nvcc flags and the C++ standard come from cmake/nvcc_flags.txt, the file CMakeLists.txt reads too,
and the host compiler is the C++ compiler CMake would use ($CXX, else c++). Under CI=true a missing nvcc
is a failure: the check exists to run there.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import exported_symbols  # tools/, next to this file
import torch.utils.cpp_extension as cpp

ROOT = Path(__file__).resolve().parents[1]
FLAGS_FILE = ROOT / "cmake" / "nvcc_flags.txt"
ARCHS = ("80", "90")


def shared_flags() -> list[str]:
    """cmake/nvcc_flags.txt: one flag a line, '#' comment lines skipped (CMake's REGEX "^[^#]")."""
    return [line for line in FLAGS_FILE.read_text().splitlines() if line and not line.startswith("#")]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def nvcc_command(src: Path, obj: Path) -> list[str]:
    # -O1: a compile check, not a build (CMake's Release build uses -O3).
    cmd = [
        os.environ.get("NVCC", "nvcc"),
        "-c",
        str(src),
        "-o",
        str(obj),
        *shared_flags(),
        "-O1",
        f"-ccbin={os.environ.get('CXX', 'c++')}",
        "-Xcompiler=-fPIC",
        "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE",
        "-DTORCH_EXTENSION_NAME=_C",
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        "-DFACENET_EXT_WITH_CUDA=1",
        f"-I{ROOT / 'csrc'}",
        "-Werror=all-warnings",
    ]
    for inc in cpp.include_paths():
        cmd += ["-isystem", inc]
    for arch in ARCHS:
        cmd += [f"-gencode=arch=compute_{arch},code=sm_{arch}"]
    return cmd


def main() -> int:
    nvcc = os.environ.get("NVCC", "nvcc")
    if shutil.which(nvcc) is None:
        if in_ci():
            print(f"cuda-check: FAILED: {nvcc} not found, and CI=true needs the CUDA compile check to run")
            return 1
        print(f"cuda-check: {nvcc} not found; skipping the CUDA compile check (a failure under CI=true)")
        return 0
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    if not sources:
        print("cuda-check: no .cu files")
        return 0
    with tempfile.TemporaryDirectory() as tmp:

        def compile_one(src: Path):
            proc = subprocess.run(nvcc_command(src, Path(tmp) / (src.stem + ".o")), capture_output=True, text=True)
            return src, proc

        failed = 0
        with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for src, proc in pool.map(compile_one, sources):
                status = "ok" if proc.returncode == 0 else "FAILED"
                print(f"cuda-check: {src.relative_to(ROOT)} (sm_{', sm_'.join(ARCHS)}): {status}", flush=True)
                if proc.returncode != 0:
                    failed += 1
                    print(proc.stdout + proc.stderr)
        print(f"cuda-check: {len(sources) - failed} passed, {failed} failed")
        if failed:
            return 1
        return check_exports(sorted(Path(tmp).glob("*.o")), Path(tmp) / "cuda_objects.so")


def check_exports(objects: list[Path], lib: Path) -> int:
    """Link the CUDA objects as CMake links _C (same export map) and require that they export nothing.

    The one check of the CUDA objects' linkage that needs no GPU and no CUDA torch: the references to
    torch stay undefined, which a shared library allows.
    """
    cmd = [
        os.environ.get("CXX", "c++"),
        "-shared",
        "-o",
        str(lib),
        *map(str, objects),
        f"-Wl,--version-script={ROOT / 'cmake' / 'exports.map'}",
        "-Wl,--exclude-libs,ALL",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"cuda-check: linking the objects FAILED\n{proc.stdout}{proc.stderr}")
        return 1
    exported = exported_symbols.unexpected_exports(lib)
    print(f"cuda-check: linked CUDA objects: {exported_symbols.summary(lib)}")
    for name in exported[:20]:
        print(f"cuda-check:   exports {name}")
    return 1 if exported else 0


if __name__ == "__main__":
    sys.exit(main())
