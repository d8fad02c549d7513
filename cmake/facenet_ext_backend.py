"""PEP 517 build backend: scikit-build-core, after checking that the torch to build against is importable.

facenet_ext compiles against the torch that will load it (same C++ ABI, same version). pip's default
build isolation hides that torch, and listing torch in [build-system] requires would make pip download a
second, multi-GB torch whose version and CUDA build need not match the installed one; torch extension
projects (flash-attn, apex, fairscale, GPTQModel) answer this by documenting
`pip install --no-build-isolation`. This backend keeps that choice and makes the plain `pip install .`
stop at its first hook with one line that says what to run and why, instead of a ModuleNotFoundError
inside CMake's output. Building an sdist needs no torch and is not checked.

Nothing here imports scikit-build-core until a hook runs, so the check needs only the standard library.
"""

from __future__ import annotations

import importlib.util
import re
import site
import sys
import sysconfig
from pathlib import Path

_INSTALL = "pip install --no-build-isolation ."


def _site_dirs() -> list[str]:
    # Where pip installs for this interpreter, whether or not build isolation left it on sys.path.
    paths = sysconfig.get_paths()
    return [paths["purelib"], paths["platlib"], site.getusersitepackages()]


def installed_torch_version(site_dirs: list[str] | None = None) -> str | None:
    """The version of a torch installed for this interpreter, importable or not."""
    for folder in site_dirs if site_dirs is not None else _site_dirs():
        version_py = Path(folder) / "torch" / "version.py"
        if version_py.is_file():
            match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", version_py.read_text(), re.M)
            return match.group(1) if match else "(unknown version)"
    return None


def torch_problem(site_dirs: list[str] | None = None) -> str | None:
    """None if torch is importable here; else the one line that tells the user what to do."""
    if importlib.util.find_spec("torch") is not None:
        return None
    hidden = installed_torch_version(site_dirs)
    if hidden is not None:
        return (
            f"facenet_ext: pip's build isolation hides the installed torch {hidden}, and the extension "
            f"must compile against the torch it will run with: run `{_INSTALL}`"
        )
    return (
        "facenet_ext: building needs torch and none is installed: install torch first "
        f"(https://pytorch.org/get-started/locally/), then run `{_INSTALL}`"
    )


def _require_torch() -> None:
    problem = torch_problem()
    if problem is not None:
        print(problem, file=sys.stderr, flush=True)
        raise SystemExit(1)  # no traceback: the line above is the whole message


def _skbuild():
    from scikit_build_core import build

    return build


def get_requires_for_build_wheel(config_settings=None):
    _require_torch()  # pip's first hook for a wheel: stop before any CMake output
    return _skbuild().get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings=None):
    _require_torch()
    return _skbuild().get_requires_for_build_editable(config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _require_torch()  # frontends may skip the optional get_requires hook
    return _skbuild().build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _require_torch()
    return _skbuild().build_editable(wheel_directory, config_settings, metadata_directory)


def __getattr__(name: str):
    # The other hooks (sdist, metadata) need no torch: scikit-build-core's, unchanged.
    return getattr(_skbuild(), name)
