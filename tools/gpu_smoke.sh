#!/usr/bin/env bash
# A right-sized first run on a lent GPU (README "CI and GPU verification"): at most ~5 minutes of device
# time, in this order: environment, build for the device's arch, linkage dump, the crash repro, CUDA-CPU
# parity on small exact cases, compute-sanitizer on those cases, B = 1800 timings with launch and sync
# counts. One summary line per stage ("smoke: <stage>: ..."); every stage's output is in $OUT.
#
#   OUT=/path bash tools/gpu_smoke.sh
#
# Needs only the working tree and the machine's python3 with torch (CUDA), nvcc, cmake, ninja, pybind11,
# scikit-build-core and pytest: no network, nothing from ../shared. Settings (environment):
#   SMOKE_BUDGET_S=300     stop starting stages once this much time has gone (the build counts)
#   SMOKE_ALLOW_CPU=1      run without a GPU: the CPU halves of each stage, to exercise the script
#   SMOKE_SKIP_BUILD=1     use the facenet_ext already installed
#   BUILD_TIMEOUT=200 SANITIZE_TIMEOUT=50 PYTHON=python3 SMOKE_K=smoke
# Exit status: 0 when every stage that ran passed, 1 otherwise, 2 when there is no GPU (and no
# SMOKE_ALLOW_CPU).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-smoke-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
[[ $PY == */* && $PY != /* ]] && PY="$PWD/$PY"  # stages run some commands from /tmp
BUDGET=${SMOKE_BUDGET_S:-300}
SMOKE_K=${SMOKE_K:-smoke}
LOG="$OUT/smoke.log"
: > "$LOG"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
failed=0

log() { printf '%s\n' "$*" >> "$LOG"; }
summary() { printf 'smoke: %s\n' "$*" | tee -a "$LOG" "$OUT/summary.txt"; }
fail() { failed=1; summary "$*"; }
left() { echo $((BUDGET - SECONDS)); }
# limit WANTED: the seconds a stage may take, capped by what is left of the budget (at least 1).
limit() { local l; l=$(left); if (( l < $1 )); then echo $(( l > 1 ? l : 1 )); else echo "$1"; fi; }
# have_time NAME SECONDS: whether a stage that needs about SECONDS still fits in the budget.
have_time() {
  if (( $(left) < $2 )); then summary "$1: SKIPPED (budget: $(left) s left of ${BUDGET} s)"; return 1; fi
}
# run_logged NAME CMD...: CMD's output goes to $OUT/NAME.log and the main log.
run_logged() {
  local name=$1; shift
  log "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  cat "$OUT/$name.log" >> "$LOG"
  log "== $name: exit $rc"
  return $rc
}
crashed() { (( $1 >= 128 )) && (( $1 != 124 )); }  # killed by a signal (timeout's 124 is a time-out)

# ---- 0. device -------------------------------------------------------------------------------------
gpu=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>> "$LOG") || gpu=0
if [[ $gpu == 1 ]]; then
  DEV=cuda
elif [[ ${SMOKE_ALLOW_CPU:-0} == 1 ]]; then
  DEV=cpu
  summary "device: no GPU; SMOKE_ALLOW_CPU=1, so the CPU halves of each stage run (not a GPU result)"
else
  summary "device: no CUDA device visible to torch; set SMOKE_ALLOW_CPU=1 to exercise the script on a CPU"
  exit 2
fi

# ---- 1. environment --------------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  echo "nvcc: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo none)"
  echo "c++: $(c++ --version 2>/dev/null | head -1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1)"
  echo "ninja: $(ninja --version 2>/dev/null || echo none)"
  echo "nproc: $(nproc)"
  "$PY" - <<'EOF'
import importlib.util, platform, torch
print("python:", platform.python_version())
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "cxx11 abi:", torch._C._GLIBCXX_USE_CXX11_ABI)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device:", p.name, f"cc {p.major}.{p.minor}", f"{p.total_memory / 2**30:.0f} GiB", f"{p.multi_processor_count} SMs")
for mod in ("pybind11", "scikit_build_core", "ninja", "pytest", "hypothesis"):
    print(f"{mod}:", "present" if importlib.util.find_spec(mod) else "MISSING")
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt" >> "$LOG"
arch=$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}.{p[1]}')" 2>/dev/null || echo none)
summary "env: $(grep -m1 '^device:' "$OUT/env.txt" || echo 'device: cpu'), $(grep -m1 '^torch:' "$OUT/env.txt"), $(grep -m1 '^nvcc:' "$OUT/env.txt"), $(grep -m1 '^c++:' "$OUT/env.txt")"

# ---- 2. build --------------------------------------------------------------------------------------
if [[ ${SMOKE_SKIP_BUILD:-0} == 1 ]]; then
  summary "build: SKIPPED (SMOKE_SKIP_BUILD=1; using the installed facenet_ext)"
elif have_time build 60; then
  start=$SECONDS
  if [[ $DEV == cuda ]]; then
    export FACENET_EXT_CUDA=ON TORCH_CUDA_ARCH_LIST=$arch  # this device's arch only: one nvcc pass per file
  fi
  export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
  run_logged build timeout "$(limit "${BUILD_TIMEOUT:-200}")" "$PY" -m pip install --no-build-isolation --no-deps -v .
  rc=$?
  if (( rc == 0 )); then
    summary "build: ok in $((SECONDS - start)) s (arch ${arch}, $(cd /tmp && "$PY" -c "import facenet_ext as fx; i = fx.build_info(); print('cuda kernels', i['cuda_kernels'], i['cuda_archs'] or '')" 2>&1 | tail -1))"
  else
    fail "build: FAILED (exit $rc$( ((rc == 124)) && echo ', timed out') after $((SECONDS - start)) s; $OUT/build.log)"
    tail -30 "$OUT/build.log"
    exit 1
  fi
fi

# ---- 3. linkage ------------------------------------------------------------------------------------
so=$(cd /tmp && "$PY" -c "import facenet_ext; print(facenet_ext._C.__file__)" 2>> "$LOG")
if [[ -z $so ]]; then
  fail "linkage: FAILED: facenet_ext does not import (see $LOG)"
  exit 1
fi
{
  echo "== ldd $so"; ldd "$so"
  echo "== readelf -d (NEEDED)"; readelf -d "$so" | grep NEEDED
  echo "== dynamic symbols"; "$PY" tools/exported_symbols.py "$so"
} > "$OUT/linkage.txt" 2>&1
(cd /tmp && LD_DEBUG=bindings LD_BIND_NOW=1 "$PY" -c "import facenet_ext") 2> "$OUT/ld_debug_bindings.txt" > /dev/null
"$PY" tools/exported_symbols.py --bindings "$so" "$OUT/ld_debug_bindings.txt" >> "$OUT/linkage.txt" 2>&1
cat "$OUT/linkage.txt" >> "$LOG"
symbols=$(grep -m1 "^$(basename "$so"):" "$OUT/linkage.txt" | cut -d: -f2-)
bindings=$(grep -m1 "^std:: bindings" "$OUT/linkage.txt" | sed "s/^std:: bindings of [^:]*: //")
cudart=$(grep -o 'libcudart[^ ]*' "$OUT/linkage.txt" | head -1)
line="linkage:${symbols}; std:: bindings: ${bindings}; cudart: ${cudart:-not linked}"
if grep -q ' 0 exported besides' <<< "$symbols" && grep -q 'elsewhere 0' <<< "$bindings"; then
  summary "$line"
else
  fail "$line: FAILED (exports or std:: bindings outside libstdc++)"
fi

# ---- 4. the crash repro, one process per device ----------------------------------------------------
devices=(cpu)
[[ $DEV == cuda ]] && devices+=(cuda)
for d in "${devices[@]}"; do
  (cd /tmp && run_logged "repro-$d" timeout 60 "$PY" -X faulthandler "$OLDPWD/tools/smoke_repro.py" "$d")
  rc=$?
  msg=$(head -1 "$OUT/repro-$d.log")
  if (( rc == 0 )); then
    summary "crash-repro $d: ok, clean error: $msg"
  elif crashed "$rc"; then
    fail "crash-repro $d: CRASH (exit $rc, signal $((rc - 128))); faulthandler stack in $OUT/repro-$d.log"
  else
    fail "crash-repro $d: FAILED (exit $rc): $(tail -1 "$OUT/repro-$d.log")"
  fi
done

# ---- 5. CUDA vs CPU parity on the small exact cases ------------------------------------------------
pytest_args=(-q -p no:cacheprovider tests/test_cuda_parity.py -k "$SMOKE_K")
if ! "$PY" -c "import hypothesis" 2> /dev/null; then
  # tests/conftest.py imports hypothesis (its settings profiles); the parity tests never use it.
  pytest_args+=(--noconftest)
  log "hypothesis missing: pytest runs with --noconftest"
fi
if have_time parity 20; then
  run_logged parity timeout "$(limit 90)" "$PY" -m pytest "${pytest_args[@]}"
  rc=$?
  result=$(grep -E '(passed|failed|skipped|error)' "$OUT/parity.log" | tail -1)
  if (( rc == 0 )); then summary "parity: ${result}"; else fail "parity: FAILED (exit $rc): ${result}"; fi
fi

# ---- 6. compute-sanitizer on the same cases --------------------------------------------------------
if [[ $DEV != cuda ]]; then
  summary "sanitize: SKIPPED (no GPU)"
elif ! command -v compute-sanitizer > /dev/null; then
  fail "sanitize: compute-sanitizer not found on PATH"
else
  for tool in memcheck racecheck initcheck; do
    have_time "sanitize $tool" 25 || continue
    start=$SECONDS
    run_logged "sanitize-$tool" timeout "$(limit "${SANITIZE_TIMEOUT:-50}")" compute-sanitizer --tool "$tool" \
      --error-exitcode 9 "$PY" -m pytest "${pytest_args[@]}" -x
    rc=$?
    errors=$(grep -m1 'ERROR SUMMARY' "$OUT/sanitize-$tool.log" || echo 'no ERROR SUMMARY')
    result=$(grep -E '(passed|failed)' "$OUT/sanitize-$tool.log" | tail -1)
    line="sanitize $tool: exit $rc in $((SECONDS - start)) s; ${errors#*========= }; ${result:-no pytest result}"
    if (( rc == 0 )); then summary "$line"; elif (( rc == 124 )); then fail "$line: TIMED OUT"; else fail "$line: FAILED"; fi
  done
fi

# ---- 7. timings and launch/sync counts at B = 1800 -------------------------------------------------
if have_time timing 20; then
  (cd /tmp && run_logged timing timeout "$(limit 60)" "$PY" "$OLDPWD/tools/smoke_timing.py" --device "$DEV" \
    --reps "$([[ $DEV == cuda ]] && echo 30 || echo 3)" --json "$OUT/timing.json")
  rc=$?
  if (( rc == 0 )); then
    summary "timing: $(grep ' B=' "$OUT/timing.log" | sed -E 's/ B=[0-9]+ [a-z]+: median/:/; s/ per call//' | paste -sd ';' -)"
  else
    fail "timing: FAILED (exit $rc; $OUT/timing.log)"
  fi
fi

summary "done in ${SECONDS} s on ${DEV}: $( ((failed)) && echo 'FAILURES above' || echo 'every stage that ran passed'); log $LOG"
exit "$failed"
