#!/usr/bin/env bash
# A right-sized first run on a lent GPU (docs/gpu.md): at most ~5 minutes of device
# time, in this order: environment, build for the device's arch, linkage dump, the crash repro, CUDA-CPU
# parity on small exact cases with the op coverage check, the CUDA-graph tests, B = 1800 timings with
# launch and sync counts, then compute-sanitizer on the parity cases (timings first: a sanitizer that
# runs out the budget costs no numbers). One summary line per stage ("smoke: <stage>: ..."); every
# stage's output is in $OUT.
#
#   OUT=/path bash tools/gpu_smoke.sh
#
# Needs only the working tree and the machine's python3 with torch (CUDA), nvcc, cmake, ninja, pybind11,
# scikit-build-core and pytest: no network, nothing from ../shared. Settings (environment):
#   SMOKE_BUDGET_S=300     stop starting stages once this much time has gone (the build counts)
#   SMOKE_ALLOW_CPU=1      run without a GPU: the CPU halves of each stage, to exercise the script
#   SMOKE_SKIP_BUILD=1     use the facenet_ext already installed
#   SMOKE_STAGES=all       or a comma list of: env,build,linkage,crash-repro,parity,cuda-graphs,timing,sanitize
#   SMOKE_ARCHIVE=file     at exit, also pack $OUT into this .tar.gz (one file to fetch)
#   FACENET_EXT_TEST_SEED  the tests' seed (default: a fresh one, printed): every pytest stage uses it
#   BUILD_TIMEOUT=200 SANITIZE_TIMEOUT=50 PYTHON=python3 SMOKE_K=smoke
# Exit status: 0 when every stage that ran passed, 1 otherwise, 2 when there is no GPU (and no
# SMOKE_ALLOW_CPU). On a GPU, a pytest stage in which any test skipped has failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-smoke-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
[[ $PY == */* && $PY != /* ]] && PY="$PWD/$PY"  # stages run some commands from /tmp
BUDGET=${SMOKE_BUDGET_S:-300}
SMOKE_K=${SMOKE_K:-smoke}
STAGES=${SMOKE_STAGES:-all}
LOG="$OUT/smoke.log"
: > "$LOG"
: > "$OUT/summary.txt"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export FACENET_EXT_TEST_SEED=${FACENET_EXT_TEST_SEED:-$((RANDOM * 32768 + RANDOM))}
failed=0
if [[ -n ${SMOKE_ARCHIVE:-} ]]; then
  trap 'tar -czf "$SMOKE_ARCHIVE" -C "$(dirname "$OUT")" "$(basename "$OUT")"' EXIT
fi

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
# stage NAME: whether SMOKE_STAGES selects stage NAME (it says so when it does not).
stage() {
  [[ $STAGES == all || ",$STAGES," == *",$1,"* ]] && return 0
  summary "$1: SKIPPED (not in SMOKE_STAGES=$STAGES)"
  return 1
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
# count WORD LOG: the number before WORD (passed, failed, skipped, error) in pytest's last summary line.
count() {
  local line n
  line=$(grep -E '[0-9]+ (passed|failed|skipped|errors?|deselected)' "$2" | tail -1)
  n=$(grep -oE "[0-9]+ $1" <<< "$line" | head -1)
  n=${n%% *}
  echo "${n:-0}"
}
# pytest_verdict NAME RC LOG [EXTRA]: the summary line of a pytest stage. It fails on a nonzero exit, on
# no test passed, and on a GPU on any skipped test (a skip there means the CUDA half did not run).
pytest_verdict() {
  local name=$1 rc=$2 log=$3 extra=${4:-} passed skipped result
  passed=$(count passed "$log"); skipped=$(count skipped "$log")
  result=$(grep -E '[0-9]+ (passed|failed|skipped|errors?)' "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
  if (( rc != 0 )); then
    fail "$name: FAILED (exit $rc$( ((rc == 124)) && echo ', timed out')): ${result:-no pytest result}${extra}$(replay "$log")"
  elif [[ $DEV == cuda ]] && (( skipped > 0 )); then
    fail "$name: FAILED: ${skipped} skipped on a GPU machine ($(grep -m1 -oE 'SKIPPED \[[0-9]+\] [^ ]+: .*' "$log" | cut -c1-120)): ${result}${extra}"
  elif (( passed == 0 )); then
    fail "$name: FAILED: no test passed: ${result:-no pytest result}${extra}"
  else
    summary "$name: ${result}${extra}"
  fi
}
# replay LOG: how to rerun the first failed test with the same seed, without conftest.
replay() {
  local node
  node=$(grep -m1 -oE '^(FAILED|ERROR) [^ ]+' "$1" | cut -d' ' -f2)
  [[ -z $node ]] && return 0
  # test_cuda_parity.py seeds itself (its own fresh_seed fixture), so it replays without conftest.py.
  printf '; replay: FACENET_EXT_TEST_SEED=%s %s -m pytest%s %q' "$FACENET_EXT_TEST_SEED" "$PY" \
    "$([[ $node == tests/test_cuda_parity.py::* ]] && echo ' --noconftest')" "$node"
}

# ---- 0. device -------------------------------------------------------------------------------------
# One torch import (seconds on a small machine): whether a GPU is visible, and its compute capability.
probe=$("$PY" -c "import torch; c = torch.cuda.is_available(); print(int(c), '%d.%d' % torch.cuda.get_device_capability() if c else 'none')" 2>> "$LOG") || probe="0 none"
read -r gpu arch <<< "$probe"
if [[ $gpu == 1 ]]; then
  DEV=cuda
elif [[ ${SMOKE_ALLOW_CPU:-0} == 1 ]]; then
  DEV=cpu
  export FACENET_EXT_PARITY_DEVICE=cpu  # tests/test_cuda_parity.py's smoke tests then compare cpu with cpu
  summary "device: no GPU; SMOKE_ALLOW_CPU=1, so the CPU halves of each stage run (not a GPU result)"
else
  summary "device: no CUDA device visible to torch; set SMOKE_ALLOW_CPU=1 to exercise the script on a CPU"
  exit 2
fi
summary "seed: FACENET_EXT_TEST_SEED=${FACENET_EXT_TEST_SEED} for every pytest stage (set it to replay this run)"

# ---- 1. environment --------------------------------------------------------------------------------
if stage env; then
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    echo "nvcc: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo none)"
    echo "c++: $(c++ --version 2>/dev/null | head -1)"
    echo "cmake: $(cmake --version 2>/dev/null | head -1)"
    echo "ninja: $(ninja --version 2>/dev/null || echo none)"
    echo "compute-sanitizer: $(command -v compute-sanitizer || echo none)"
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
  summary "env: $(grep -m1 '^device:' "$OUT/env.txt" || echo 'device: cpu'), $(grep -m1 '^torch:' "$OUT/env.txt"), $(grep -m1 '^nvcc:' "$OUT/env.txt"), $(grep -m1 '^c++:' "$OUT/env.txt")"
fi

# ---- 2. build --------------------------------------------------------------------------------------
if [[ ${SMOKE_SKIP_BUILD:-0} == 1 ]]; then
  summary "build: SKIPPED (SMOKE_SKIP_BUILD=1; using the installed facenet_ext)"
elif stage build && have_time build 60; then
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
if stage linkage; then
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
fi

# ---- 4. the crash repro, one process per device ----------------------------------------------------
if stage crash-repro; then
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
fi

# ---- 5. CUDA vs CPU parity on the small exact cases, and which ops they ran -------------------------
pytest_opts=(-q -p no:cacheprovider -ra)
if ! "$PY" -c "import hypothesis" 2> /dev/null; then
  # tests/conftest.py imports hypothesis (its settings profiles); test_cuda_parity.py has its own seed fixture.
  pytest_opts+=(--noconftest)
  log "hypothesis missing: pytest runs with --noconftest"
fi
parity_args=("${pytest_opts[@]}" tests/test_cuda_parity.py)
if stage parity && have_time parity 20; then
  rm -f "$OUT/coverage.json"
  # tools/smoke_coverage.py as a pytest plugin records every facenet_ext op call and its device.
  SMOKE_COVERAGE_JSON="$OUT/coverage.json" PYTHONPATH="$PWD/tools${PYTHONPATH:+:$PYTHONPATH}" \
    run_logged parity timeout "$(limit 90)" "$PY" -m pytest "${parity_args[@]}" -k "$SMOKE_K" -p smoke_coverage
  pytest_verdict parity $? "$OUT/parity.log" "$([[ $DEV == cpu ]] && echo ' (cpu against cpu)')"
  run_logged coverage "$PY" tools/smoke_coverage.py check "$OUT/coverage.json" --device "$DEV" --report "$OUT/coverage.txt"
  rc=$?
  cat "$OUT/coverage.txt" >> "$LOG" 2> /dev/null
  if (( rc == 0 )); then summary "coverage: $(tail -1 "$OUT/coverage.log")"; else fail "coverage: FAILED: $(tail -1 "$OUT/coverage.log") ($OUT/coverage.txt)"; fi
fi

# ---- 6. CUDA graphs ----------------------------------------------------------------------------------
GRAPH_TESTS=${SMOKE_GRAPH_TESTS:-tests/test_cuda_graphs.py}  # written on main; another path only to test this stage
if stage cuda-graphs; then
  if [[ ! -f $GRAPH_TESTS ]]; then
    summary "cuda-graphs: SKIPPED (file absent: $GRAPH_TESTS)"
  elif have_time cuda-graphs 15; then
    run_logged cuda-graphs timeout "$(limit 60)" "$PY" -m pytest "${pytest_opts[@]}" "$GRAPH_TESTS"
    rc=$?
    if [[ $DEV == cpu ]] && (( rc == 0 )) && (( $(count passed "$OUT/cuda-graphs.log") == 0 )); then
      summary "cuda-graphs: $(grep -E '[0-9]+ (passed|skipped)' "$OUT/cuda-graphs.log" | tail -1 | sed -E 's/^=+ //; s/ =+$//') (no GPU: collected, not run)"
    else
      pytest_verdict cuda-graphs "$rc" "$OUT/cuda-graphs.log"
    fi
  fi
fi

# ---- 7. timings and launch/sync counts at B = 1800 -------------------------------------------------
if stage timing && have_time timing 20; then
  (cd /tmp && run_logged timing timeout "$(limit 60)" "$PY" "$OLDPWD/tools/smoke_timing.py" --device "$DEV" \
    --reps "$([[ $DEV == cuda ]] && echo 30 || echo 3)" --json "$OUT/timing.json")
  rc=$?
  if (( rc == 0 )); then
    summary "timing: $(grep -m1 '^summary: ' "$OUT/timing.log" | cut -d' ' -f2-)"
  else
    fail "timing: FAILED (exit $rc; $OUT/timing.log)"
  fi
fi

# ---- 8. compute-sanitizer on the parity cases -------------------------------------------------------
# racecheck leaves out the 1039-positive identity (O(K^2) shared-memory accesses tracked per anchor);
# memcheck runs without the caching allocator, so that an access past a tensor's end is past its
# allocation too.
sanitize_k() { if [[ $1 == racecheck ]]; then echo "$SMOKE_K and not more_than_1024_positives"; else echo "$SMOKE_K"; fi; }
sanitize_env() { if [[ $1 == memcheck ]]; then echo PYTORCH_NO_CUDA_MEMORY_CACHING=1; fi; }
if stage sanitize; then
  if [[ $DEV != cuda ]]; then
    # The CPU half: the tests each tool would run (pytest --collect-only, once per distinct selection).
    declare -A collected=()  # selection -> the tool whose log holds its collection
    for tool in memcheck racecheck initcheck; do
      k=$(sanitize_k "$tool") e=$(sanitize_env "$tool")
      if [[ -n ${collected[$k]:-} ]]; then
        cp "$OUT/sanitize-${collected[$k]}.log" "$OUT/sanitize-$tool.log"
      else
        run_logged "sanitize-$tool" "$PY" -m pytest "${parity_args[@]}" --collect-only -k "$k"
        collected[$k]=$tool
      fi
      n=$(grep -oE '^[0-9]+(/[0-9]+)? tests? (collected|selected)' "$OUT/sanitize-$tool.log" | tail -1 | sed -E 's#^([0-9]+)/([0-9]+) tests? .*#\1 of \2 tests#')
      summary "sanitize $tool: SKIPPED (no GPU); would run ${n:-?}: ${e:+$e }compute-sanitizer --tool $tool ... -k '$k'"
    done
  elif ! command -v compute-sanitizer > /dev/null; then
    fail "sanitize: compute-sanitizer not found on PATH"
  else
    for tool in memcheck racecheck initcheck; do
      have_time "sanitize $tool" 25 || continue
      start=$SECONDS
      env_vars=()
      [[ -n $(sanitize_env "$tool") ]] && env_vars=("$(sanitize_env "$tool")")
      run_logged "sanitize-$tool" env "${env_vars[@]}" timeout "$(limit "${SANITIZE_TIMEOUT:-50}")" \
        compute-sanitizer --tool "$tool" --error-exitcode 9 "$PY" -m pytest "${parity_args[@]}" -x -k "$(sanitize_k "$tool")"
      rc=$?
      errors=$(grep -m1 'ERROR SUMMARY' "$OUT/sanitize-$tool.log" || echo 'no ERROR SUMMARY')
      pytest_verdict "sanitize $tool" "$rc" "$OUT/sanitize-$tool.log" \
        " in $((SECONDS - start)) s; ${errors#*========= }${env_vars[*]:+; ${env_vars[*]}}"
    done
  fi
fi

summary "done in ${SECONDS} s on ${DEV}: $( ((failed)) && echo 'FAILURES above' || echo 'every stage that ran passed'); log $LOG"
exit "$failed"
