#!/usr/bin/env bash
# The emulated CUDA kernel tests (tests/test_emulator.py, tests/test_emulated_kernels.py) with the kernels
# and the emulator built under AddressSanitizer and UndefinedBehaviorSanitizer. The sanitizer runtimes
# must be loaded before Python (LD_PRELOAD): the instrumented library is loaded later, through ctypes.
# Leak detection is off: the Python interpreter and torch keep allocations alive at exit by design.
# Usage: tools/emulated_sanitized.sh [PYTHON] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
shift || true
CXX=${CXX:-c++}
asan=$("$CXX" -print-file-name=libasan.so)
ubsan=$("$CXX" -print-file-name=libubsan.so)
export FACENET_EXT_EMU_SANITIZE=1
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
LD_PRELOAD="$asan:$ubsan" "$PY" -m pytest -q -p no:cacheprovider tests/test_emulator.py tests/test_emulated_kernels.py "$@"
