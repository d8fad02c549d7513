"""The benchmark's baselines compute what we say they compute (checked against our ops on small
batches), and the ``bench`` command's arguments and outputs. Correctness only: nothing here is timed."""

import json

import pytest
import torch

from facenet_ext.__main__ import main
from facenet_ext.bench import agreement, baselines
from facenet_ext.bench.methods import BY_KEY, METHODS


@pytest.mark.parametrize("key", sorted(agreement.CHECKS))
def test_baseline_agrees_with_ours(key):
    if key.startswith("pml."):
        pytest.importorskip("pytorch_metric_learning")
    result = agreement.check(key)
    assert result.ok, result.detail


def test_every_baseline_has_a_check_and_a_counterpart():
    for m in METHODS:
        if m.family == "baseline":
            assert m.key in agreement.CHECKS, m.key
            assert BY_KEY[m.counterpart].family == "ours", m.key


def test_sort_searchsorted_handles_singletons_and_lone_identity():
    # identities of one image (no positive) and an anchor group with no negatives must yield nothing
    emb = torch.randn(7, 4, dtype=torch.float64)
    for labels in (torch.tensor([0, 0, 1, 2, 2, 2, 3]), torch.zeros(7, dtype=torch.long)):
        ours = agreement._sorted_set(agreement.fx.semi_hard_triplets(emb, labels))
        theirs = agreement._sorted_set(baselines.sort_searchsorted_semi_hard(emb, labels))
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--batch", "abc"],
        ["bench", "--batch", "1,8"],
        ["bench", "--dim", "0"],
        ["bench", "--per-id", "-3"],
        ["bench", "--device", "tpu"],
        ["bench", "--methods", "fx.semihard,nope"],
        ["bench", "--time-budget", "0"],
        ["nope"],
        [],
    ],
)
def test_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_cuda_without_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no CUDA device"):
        main(["bench", "--device", "cuda", "--out", str(tmp_path)])


def test_cli_quick_writes_the_three_files(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--batch", "24", "--dim", "8", "--per-id", "4", "--out", str(out)]) == 0
    assert str(out / "results.md") in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["batches"] == [24] and data["config"]["quick"]
    assert data["environment"]["build_info"]["torch_version_built_against"]
    assert all(a["ok"] for a in data["agreement"]), data["agreement"]
    done = {(r["method"], r["batch"]) for r in data["results"] if r["status"] == "ok"}
    assert done == {(m.key, b) for m in METHODS for b in (24,) if not m.available()}
    assert all(r["peak_bytes"] is None or r["peak_bytes"] >= 0 for r in data["results"] if r["status"] == "ok")
    md = (out / "results.md").read_text()
    assert "Speed-ups" in md and "B=24" in md
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_runs_the_quick_benchmark(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the demo's default folders are relative: nothing may land outside --out
    out = tmp_path / "demo"
    args = [
        "demo",
        "--batch",
        "12",
        "--dim",
        "4",
        "--per-id",
        "3",
        "--methods",
        "fx.semihard,sort_searchsorted",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert json.loads((out / "bench" / "results.json").read_text())["config"]["quick"] is True
    assert json.loads((out / "train" / "metrics.json").read_text())["config"]["model"] == "small"  # train --quick
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
