# The two commands a new user runs (see README): `make demo` and `make test`.
# Each creates .venv, installs torch (TORCH_SPEC from pip's configured index, or from TORCH_INDEX),
# builds the extension against it with `pip install --no-build-isolation`, then runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
# Empty: pip's configured index decides which torch wheel (from PyPI on Linux that is the CUDA build).
# For a CPU-only machine: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: demo test test-emulated-sanitized install cuda-check lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Build-time tools and torch first: the build uses the installed torch, never an isolated copy.
$(VENV)/.build-deps: $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(PY) -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" ninja "cmake>=3.25"
	touch $@

install: $(VENV)/.build-deps
	$(PY) -m pip install -q --no-build-isolation ".[test,bench,train]"

demo: install
	$(PY) -m facenet_ext demo

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The emulated CUDA kernel tests again, with the kernels and the emulator under ASan and UBSan (CI runs it).
test-emulated-sanitized: install
	tools/emulated_sanitized.sh $(PY)

# Compile every .cu for sm_80 and sm_90 against the installed torch's headers (no GPU needed).
cuda-check: $(VENV)/.build-deps
	$(PY) tools/cuda_compile_check.py

# ruff (check, format) on the Python files; clang-format on the C++/CUDA ones. Configured in
# pyproject.toml ([tool.ruff]) and .clang-format; pinned in pyproject's `lint` extra.
CXX_SOURCES = $(shell find csrc tests/emulated -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
lint: $(PY)
	$(PY) -m pip install -q $$($(PY) tools/extra_requirements.py lint)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror $(CXX_SOURCES)

bench: install
	$(PY) -m facenet_ext bench

clean:
	rm -rf build $(VENV) .pytest_cache
