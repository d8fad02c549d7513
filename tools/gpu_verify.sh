#!/usr/bin/env bash
# GPU verification on a lent machine (see docs/gpu.md): build with CUDA, run the test suite
# on CUDA, compute-sanitizer over the CUDA tests, then the GPU benchmarks. Logs go to $OUT (or ./gpu-out).
# Wheels the machine lacks (pytorch-metric-learning) may be carried in .gpu/whl.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
STAGES=${STAGES:-build,test,sanitize,bench}
export PYTHONUNBUFFERED=1 FACENET_EXT_CUDA=ON TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
fi
has() { [[ ",$STAGES," == *",$1,"* ]]; }
if has build; then
  start=$SECONDS
  python3 -m pip install --no-build-isolation --no-deps -q . > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
  echo "build: $((SECONDS - start)) s"
  (cd /tmp && python3 -c "import facenet_ext as fx, json; print(json.dumps(fx.build_info()))")
fi
if has test; then
  python3 -m pytest -q ${TESTS:-tests} -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log" | tail -25
fi
if has sanitize; then
  for tool in memcheck racecheck; do
    timeout ${SANITIZE_TIMEOUT:-200} compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -q \
      -p no:cacheprovider ${SANITIZE_TESTS:-tests/test_cuda_parity.py tests/test_l2_pool2d.py} \
      -k "${SANITIZE_K:-cuda and not compile and not two_big and not 1800}" > "$OUT/sanitize-$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitize-$tool.log") clean summaries)"
    grep -E "ERROR SUMMARY|passed|failed" "$OUT/sanitize-$tool.log" | tail -3
  done
fi
if has bench; then
  python3 benchmarks/gpu_bench.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -40
  python3 benchmarks/bench_l2_pool.py --device cuda 2>&1 | tee "$OUT/bench_l2_pool.log" | tail -15
fi
