"""tools/gpu_smoke.sh and its coverage helper, on the CPU: so that CI catches a broken smoke script before
a lent GPU's minutes are spent on it. The rehearsal runs the script's cheap stages with SMOKE_ALLOW_CPU=1
(each stage's CPU half); the GPU halves (build for the device, CUDA parity, compute-sanitizer, CUDA
timings) can only run on a GPU. Skipped where a GPU is present (run the smoke itself there) or bash is
missing."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import facenet_ext as fx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import smoke_coverage  # noqa: E402

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not found")
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: run tools/gpu_smoke.sh itself")


def test_the_op_list_from_the_sources_is_what_torch_registered():
    declared = smoke_coverage.source_ops()
    assert set(declared) == smoke_coverage.registered_ops()
    assert declared["take_errors"] == "cuda only"
    assert declared["pairwise_sq_dist"] == "cpu+cuda" and declared["mine_reference_set"] == "python"
    for op, variant, _ in smoke_coverage.VARIANTS:
        assert op in declared, f"variant {variant} of an op that does not exist: {op}"


def test_the_source_parser_reads_dispatch_key_blocks(tmp_path):
    files = {
        "csrc/ops.cpp": """
            TORCH_LIBRARY(facenet_ext, m) {
              m.def("both(Tensor x) -> Tensor");
              m.def(
                  "gpu(Tensor x) "
                  "-> Tensor");
              m.def("host(Tensor x) -> Tensor");
              m.def("any(Tensor x) -> Tensor");
              m.def("none(Tensor x) -> Tensor");
            }
            """,
        "csrc/cuda/k.cu": """
            TORCH_LIBRARY_IMPL(facenet_ext, CUDA, m) {
              m.impl("both", &f);
              m.impl("gpu", &g);
              m.impl("any", &h);
            }
            """,
        "csrc/k.cpp": """
            namespace {
            void f() { if (x) { y(); } }
            }  // namespace
            TORCH_LIBRARY_IMPL(facenet_ext, CPU, m) {
              m.impl("both", &f);
              m.impl("host", &f);
            }
            TORCH_LIBRARY_IMPL(facenet_ext, CompositeExplicitAutograd, m) { m.impl("any", &c); }
            void later() { m.impl("none", &z); }  // outside any block: not a registration
            """,
        "python/facenet_ext/a.py": """
            @torch.library.custom_op(
                "facenet_ext::py_op",
            """,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    ops = smoke_coverage.source_ops(tmp_path)
    assert ops == {
        "both": "cpu+cuda",
        "gpu": "cuda only",
        "host": "cpu only",
        "any": "composite",
        "none": "no kernel",
        "py_op": "python",
    }
    assert [n for n, w in ops.items() if smoke_coverage.runs_on(w, "cpu")] == ["both", "host", "any", "py_op"]
    assert [n for n, w in ops.items() if smoke_coverage.runs_on(w, "cuda")] == ["both", "gpu", "any", "py_op"]


def test_the_recorder_sees_nested_ops_backward_and_devices():
    emb, labels = torch.randn(24, 4), torch.arange(24) % 6
    calls = []
    with smoke_coverage.OpRecorder(calls, "t"):
        fx.semi_hard_triplets(emb, labels, chunk_size=8)  # streaming: a Python custom op with native ops inside
    ops = [c["op"] for c in calls]
    assert ops[0] == "mine_reference_set", ops
    assert calls[0]["args"]["chunk_size"] == 8 and calls[0]["args"]["anchors"]["shape"] == [24, 4]
    assert set(ops[1:]) & {"semi_hard_from_sq_dist", "pairwise_sq_dist"}, (
        f"nothing recorded inside the custom op: {ops}"
    )
    calls = []
    with smoke_coverage.OpRecorder(calls, "u"):
        e = emb.clone().requires_grad_()
        fx.triplet_loss(e, labels, 0.2, mining="batch_hard").backward()
    ops = [c["op"] for c in calls]
    assert ops[-1] == "triplet_loss_backward", f"the backward pass was not recorded: {ops}"
    assert {c["device"] for c in calls} == {"cpu"} and {c["test"] for c in calls} == {"u"}


def _complete_calls(device):
    """One call of every op on device, plus one per variant: what a complete parity stage records."""
    ops = [op for op, where in smoke_coverage.source_ops().items() if smoke_coverage.runs_on(where, device)]
    calls = [{"op": op, "device": device, "test": "t", "args": {}} for op in ops]
    f64 = {"dtype": "float64", "device": device, "shape": [4, 4]}
    for op in ("semi_hard_from_sq_dist", "batch_hard_from_sq_dist", "all_semi_hard_from_sq_dist"):
        calls.append({"op": op, "device": device, "test": "t", "args": {"sq_dist": f64, "exclude_self": False}})
    calls.append(
        {"op": "semi_hard_from_sq_dist", "device": device, "test": "t", "args": {"margin": 0.5, "drop_fallback": True}}
    )
    calls.append({"op": "pairwise_sq_dist", "device": device, "test": "t", "args": {"y": f64}})
    calls.append({"op": "all_semi_hard_loss", "device": device, "test": "t", "args": {"with_grad": True}})
    ref = {"anchors": {"shape": [4, 2]}, "ref_emb": {"shape": [9, 2]}}
    for args in ({"self_offset": -1}, {"self_offset": 0, "chunk_size": 2}, {"self_offset": 0}):
        calls.append({"op": "mine_reference_set", "device": device, "test": "t", "args": {**ref, **args}})
    return calls


def test_the_check_passes_a_complete_record_and_names_each_gap():
    ok, line, _ = smoke_coverage.check(_complete_calls("cpu"), "cpu")
    assert ok, line
    assert "not expected: take_errors" in line
    # the same record does not pass for cuda: nothing ran there
    ok, line, report = smoke_coverage.check(_complete_calls("cpu"), "cuda")
    assert not ok and "MISSING" in line
    assert "MISS  take_errors: never called on cuda" in report
    assert any(r.startswith("MISS  l2_pool2d: never called on cuda (called on cpu)") for r in report)
    # one op missing, then one variant missing
    calls = [c for c in _complete_calls("cpu") if c["op"] != "l2_pool2d_backward"]
    ok, line, _ = smoke_coverage.check(calls, "cpu")
    assert not ok and "MISSING l2_pool2d_backward" in line
    calls = [c for c in _complete_calls("cpu") if c["args"].get("chunk_size") is None]
    ok, line, _ = smoke_coverage.check(calls, "cpu")
    assert not ok and line.endswith("MISSING mine_reference_set [streaming (chunk_size)]")
    # a complete cuda record passes only where the build has the CUDA kernels the sources declare
    ok, line, _ = smoke_coverage.check(_complete_calls("cuda"), "cuda")
    if fx.build_info()["cuda_kernels"]:
        assert ok, line
    else:
        assert not ok and ": the sources give it a cuda kernel, the installed build has none" in line


def _smoke(tmp_path, **env):
    out = tmp_path / "out"
    environ = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "SMOKE_ALLOW_CPU": "1",
        "SMOKE_SKIP_BUILD": "1",
        **env,
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_smoke.sh")], env=environ, capture_output=True, text=True, timeout=170
    )
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    return proc, summary, out


@needs_bash
@cpu_only
def test_cpu_rehearsal_of_the_cheap_stages(tmp_path):
    proc, summary, out = _smoke(
        tmp_path, SMOKE_STAGES="env,parity,cuda-graphs,sanitize", FACENET_EXT_TEST_SEED="4242", SMOKE_BUDGET_S="200"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke: seed: FACENET_EXT_TEST_SEED=4242 " in summary
    assert re.search(r"^smoke: env: device: cpu, torch: ", summary, re.M), summary
    parity = re.search(r"^smoke: parity: (\d+) passed, \d+ deselected in [0-9.]+s \(cpu against cpu\)$", summary, re.M)
    assert parity and int(parity.group(1)) >= 20, summary
    assert re.search(
        r"^smoke: coverage: (\d+)/\1 ops and (\d+)/\2 variants ran on cpu; no cpu kernel, not expected: take_errors$",
        summary,
        re.M,
    ), summary
    calls = json.loads((out / "coverage.json").read_text())["calls"]
    assert {c["device"] for c in calls} == {"cpu"}
    assert "n/a   take_errors: cuda only (no cpu kernel), not expected on cpu" in (out / "coverage.txt").read_text()
    graphs = ROOT / "tests" / "test_cuda_graphs.py"
    if graphs.exists():  # written on main: its CPU half runs (or its tests skip)
        assert re.search(r"^smoke: cuda-graphs: \d+ (passed|skipped)", summary, re.M), summary
    else:
        assert "smoke: cuda-graphs: SKIPPED (file absent: tests/test_cuda_graphs.py)" in summary
    for stage in ("linkage", "crash-repro", "timing"):
        assert f"smoke: {stage}: SKIPPED (not in SMOKE_STAGES=" in summary
    would = dict(re.findall(r"^smoke: sanitize (\w+): SKIPPED \(no GPU\); would run (\d+) of \d+ tests", summary, re.M))
    assert set(would) == {"memcheck", "racecheck", "initcheck"}, summary
    # racecheck leaves out the 1039-positive case, and only it; memcheck runs without the caching allocator
    assert int(would["memcheck"]) == int(would["initcheck"]) == int(parity.group(1)) == int(would["racecheck"]) + 1
    assert "smoke: sanitize memcheck: SKIPPED (no GPU); would run" in summary
    assert re.search(
        r"sanitize memcheck: .*: PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck", summary
    )
    assert "-k 'smoke and not more_than_1024_positives'" in summary
    assert summary.rstrip().splitlines()[-1].startswith("smoke: done in ")
    assert "every stage that ran passed" in summary.rstrip().splitlines()[-1]
    for name in ("smoke.log", "env.txt", "parity.log", "coverage.txt", "sanitize-racecheck.log"):
        assert (out / name).stat().st_size > 0, name


@needs_bash
@cpu_only
def test_a_failing_pytest_stage_fails_the_smoke_and_says_how_to_replay_it(tmp_path):
    graphs = tmp_path / "test_fake_graphs.py"
    graphs.write_text("def test_ok():\n    pass\n\n\ndef test_broken():\n    assert False\n")
    proc, summary, _ = _smoke(
        tmp_path,
        SMOKE_STAGES="cuda-graphs",
        SMOKE_GRAPH_TESTS=str(graphs),
        FACENET_EXT_TEST_SEED="77",
        SMOKE_ARCHIVE=str(tmp_path / "a.tgz"),
    )
    assert proc.returncode == 1, summary
    line = next(x for x in summary.splitlines() if x.startswith("smoke: cuda-graphs:"))
    assert "FAILED (exit 1): 1 failed, 1 passed" in line
    assert "replay: FACENET_EXT_TEST_SEED=77 " in line and "test_fake_graphs.py::test_broken" in line
    assert (tmp_path / "a.tgz").stat().st_size > 0


def test_parity_smoke_tests_print_and_replay_their_seed_without_conftest():
    env = {**os.environ, "FACENET_EXT_PARITY_DEVICE": "cpu", "FACENET_EXT_TEST_SEED": "31337"}
    args = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--noconftest"]
    args += ["tests/test_cuda_parity.py", "-k", "smoke_small_batches"]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seeds = re.findall(r"test_smoke_small_batches\[\d+\]: FACENET_EXT_TEST_SEED=(\d+)", proc.stdout)
    assert seeds == ["31337"] * 4, proc.stdout


def test_the_timing_script_prints_its_summary_line(tmp_path):
    """tools/smoke_timing.py at a small B on the CPU (the smoke runs it at B = 1800): one line per op and
    the summary line the smoke quotes, and its JSON."""
    args = [sys.executable, str(ROOT / "tools" / "smoke_timing.py"), "--device", "cpu", "--B", "120", "--reps", "1"]
    proc = subprocess.run(args + ["--json", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("summary: "))
    assert line.startswith("summary: B=120 on cpu, per call: pairwise_sq_dist ")
    assert "semi_hard_triplets " in line and "(H100 target < 100 us: n/a on cpu), 0 launches, 0 syncs" in line
    assert "triplet_loss fwd+bwd " in line and "(H100 target < 300 us: n/a on cpu)" in line
    results = json.loads((tmp_path / "t.json").read_text())["results"]
    assert set(results) == {"pairwise_sq_dist", "semi_hard_triplets", "batch_hard_triplets", "triplet_loss fwd+bwd"}
    assert all(r["median_us"] > 0 and r["sync_debug_warnings_per_call"] is None for r in results.values())


@needs_bash
@pytest.mark.parametrize("device,fails", [("cuda", True), ("cpu", False)])
def test_a_skipped_test_fails_a_pytest_stage_on_a_gpu_only(tmp_path, device, fails):
    """The script's pytest_verdict, taken from the script (its helpers, before stage 0) and run on a
    made-up pytest log with skips: on a GPU a skip means the CUDA half did not run."""
    script = (ROOT / "tools" / "gpu_smoke.sh").read_text()
    helpers = script[script.index("log() {") : script.index("# ---- 0. device")]
    log = tmp_path / "parity.log"
    log.write_text(
        "SKIPPED [3] tests/test_cuda_parity.py:52: facenet_ext was built without CUDA kernels\n"
        "25 passed, 3 skipped, 47 deselected in 3.1s\n"
    )
    (tmp_path / "helpers.sh").write_text(helpers)
    run = (
        f"OUT={tmp_path} LOG={tmp_path}/smoke.log failed=0 PY=python3 FACENET_EXT_TEST_SEED=1 DEV={device}; "
        f"source {tmp_path}/helpers.sh; pytest_verdict parity 0 {log}; echo failed=$failed"
    )
    proc = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=30)
    if fails:
        assert "smoke: parity: FAILED: 3 skipped on a GPU machine (SKIPPED [3] " in proc.stdout, proc.stdout
        assert "failed=1" in proc.stdout
    else:
        assert "smoke: parity: 25 passed, 3 skipped, 47 deselected in 3.1s\nfailed=0" in proc.stdout, proc.stdout
