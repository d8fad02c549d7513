"""The triplet recipes' options (issue 27): the LFW triplet preset, ArcFace then triplet fine-tuning
(``--arcface-fraction``), and the per-step time breakdown the trainer records and prints."""

import argparse
import json
import signal

import pytest
import torch
from test_train_loop import TINY
from test_train_loop import _cfg as _loop_cfg

import facenet_ext as fx
from facenet_ext.__main__ import main
from facenet_ext.losses import ArcFaceLoss
from facenet_ext.train import TrainConfig, step_timing, train
from facenet_ext.train import objective as objective_module
from facenet_ext.train.checkpoint import load_checkpoint
from facenet_ext.train.commands.train import add_arguments, config_from_args
from facenet_ext.train.data.sampler import PhasedSampler, PKSampler, UniformSampler
from facenet_ext.train.step_timing import PHASES, StepTimer

from synthetic_faces import write_faces


@pytest.fixture
def faces(tmp_path_factory):
    """Six identities x 5 images."""
    return write_faces(tmp_path_factory.mktemp("faces"), identities=6, images=5)


def _cfg(data, **kw):
    """test_train_loop's tiny config with 3 identities per batch (P x K batches need fewer here), seed 1."""
    return _loop_cfg(data, **{"identities_per_batch": 3, "seed": 1, **kw})


def _parse(*argv) -> TrainConfig:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return config_from_args(p.parse_args(list(argv)))


def test_lfw_triplet_preset_draws_p_by_k_batches(tmp_path):
    cfg = _parse("--data", str(tmp_path), "--protocol", "view1", "--loss", "triplet")
    assert (cfg.loss, cfg.sampler, cfg.identities_per_batch, cfg.images_per_identity) == ("triplet", "pk", 32, 4)
    assert (cfg.mining, cfg.margin, cfg.model, cfg.lr) == ("semihard", 0.2, "nn2", 2e-3)  # the LFW recipe's rest
    arcface = _parse("--data", str(tmp_path), "--protocol", "view1")
    assert (arcface.loss, arcface.sampler) == ("arcface", "uniform")  # the default recipe is unchanged
    given = _parse("--data", str(tmp_path), "--protocol", "view1", "--loss", "triplet", "-K", "2", "--margin", "0.3")
    assert (given.images_per_identity, given.margin, given.identities_per_batch) == (2, 0.3, 32)
    tuned = _parse("--data", str(tmp_path), "--protocol", "view1", "--loss", "triplet", "--arcface-fraction", "0.6")
    assert tuned.arcface_fraction == 0.6 and tuned.head_scale == 32.0 and tuned.head_margin == 0.3


@pytest.mark.parametrize(
    "options, match",
    [
        ({"arcface_fraction": 1.0}, "arcface_fraction must be in"),
        ({"arcface_fraction": -0.1}, "arcface_fraction must be in"),
        ({"arcface_fraction": 0.5, "loss": "arcface"}, "applies to --loss triplet"),
        ({"arcface_fraction": 0.5, "sampler": "uniform"}, "needs --sampler pk"),
    ],
)
def test_bad_arcface_fraction_is_refused(faces, options, match):
    with pytest.raises(ValueError, match=match):
        _cfg(faces, **options)


def test_bad_arcface_fraction_on_the_command_line(faces, tmp_path, capsys):
    argv = ["train", "--data", str(faces), "--out", str(tmp_path / "run"), "--arcface-fraction", "0.5", *TINY]
    assert main([*argv, "--loss", "arcface"]) == 2
    assert "applies to --loss triplet" in capsys.readouterr().err


def test_phased_sampler_switches_from_uniform_to_p_by_k():
    labels = torch.arange(40) // 4  # 10 identities x 4 images
    sampler = PhasedSampler(UniformSampler(labels, 8), PKSampler(labels, 2, 4), switch_step=3)
    g = torch.Generator().manual_seed(0)
    for step in range(6):
        idx = sampler.batch_at(step, g)
        if step >= 3:  # two whole identities, grouped
            assert idx.numel() == 8 and labels[idx].unique().numel() == 2
            assert torch.equal(labels[idx][:4], labels[idx][:1].expand(4))
    assert sampler.batch_size == 8


def test_arcface_then_triplets_trains_the_head_first_and_resumes(faces, tmp_path, monkeypatch):
    cfg = _cfg(faces, arcface_fraction=0.5, head_scale=16.0, head_margin=0.2)
    full = train(cfg, tmp_path / "full", progress=False)
    h = full.metrics["history"]
    assert h["aux_name"] == "magnitude|active_fraction"
    assert h["epoch_aux"][0] > 1.0 and 0.0 <= h["epoch_aux"][1] <= 1.0  # feature magnitude, then a fraction
    assert full.metrics["step_time"]["phases"]["mining"]["ms"] > 0  # the triplet steps mine

    # Ctrl-C during step 3 (after the switch at step 2): finish it, save; the resumed run is the full one
    draw, calls = PhasedSampler.batch_at, {"n": 0}

    def interrupt_on_fourth_batch(self, step, generator):
        calls["n"] += 1
        if calls["n"] == 4:
            signal.raise_signal(signal.SIGINT)
        return draw(self, step, generator)

    monkeypatch.setattr(PhasedSampler, "batch_at", interrupt_on_fourth_batch)
    assert train(cfg, tmp_path / "split", progress=False).interrupted
    monkeypatch.setattr(PhasedSampler, "batch_at", draw)
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["objective"]["head.weight"], b["objective"]["head.weight"])


def test_the_head_trains_before_the_switch_only(faces, tmp_path, monkeypatch):
    """4 steps at fraction 0.5: the ArcFace head computes the loss of steps 0-1 alone, and its weights stay
    as they were after step 1 through the triplet steps 2-3."""
    heads, at_head_calls, at_triplet_calls = [], [], []
    forward, loss = ArcFaceLoss.forward, objective_module.triplet_loss

    def head_forward(self, features, labels, **kw):
        heads.append(self)
        at_head_calls.append(self.weight.detach().clone())
        return forward(self, features, labels, **kw)

    def triplets(*args, **kw):
        at_triplet_calls.append(heads[-1].weight.detach().clone())
        return loss(*args, **kw)

    monkeypatch.setattr(ArcFaceLoss, "forward", head_forward)
    monkeypatch.setattr(objective_module, "triplet_loss", triplets)
    train(_cfg(faces, arcface_fraction=0.5, head_scale=16.0, head_margin=0.2), tmp_path / "run", progress=False)
    assert len(at_head_calls) == 2 and len(at_triplet_calls) == 2
    final = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["objective"]["head.weight"]
    assert not torch.equal(at_head_calls[0], at_head_calls[1])  # step 0 updated the head
    assert not torch.equal(at_head_calls[1], at_triplet_calls[0])  # and step 1
    assert torch.equal(at_triplet_calls[0], at_triplet_calls[1]) and torch.equal(at_triplet_calls[1], final)


@pytest.mark.parametrize("mining", ["semihard", "batch_hard"])
def test_split_mining_gives_the_fused_call_s_loss_and_gradient(mining):
    """The trainer mines with the public miner, then takes the loss over those triplets (so the breakdown can
    time them apart): the same loss and gradient as triplet_loss(mining=name) in one call."""
    g = torch.Generator().manual_seed(5)
    emb = torch.nn.functional.normalize(torch.randn(48, 16, generator=g), dim=1)
    labels = torch.arange(48) // 4
    e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    one = fx.triplet_loss(e1, labels, 0.2, mining=mining)
    miner = {"semihard": fx.semi_hard_triplets, "batch_hard": fx.batch_hard_triplets}[mining]
    two = fx.triplet_loss(e2, None, 0.2, mining=miner(e2, labels))
    one.backward()
    two.backward()
    assert torch.equal(one, two) and torch.equal(e1.grad, e2.grad)


def test_step_timer_partitions_the_step(monkeypatch):
    clock = iter([10.0, 10.5, 11.0, 11.25, 12.0, 13.5, 14.0, 20.0, 20.1, 20.2, 20.3, 20.4, 20.5, 20.6])
    monkeypatch.setattr(step_timing.time, "perf_counter", lambda: next(clock))
    timer = StepTimer()
    for _ in range(2):
        timer.start()
        for phase in PHASES:
            timer.mark(phase)
        timer.end_step()
    d = timer.to_dict()
    assert d["steps"] == 2
    assert d["phases"]["data"]["ms"] == pytest.approx((500 + 100) / 2)
    assert d["phases"]["loss"]["ms"] == pytest.approx((750 + 100) / 2)
    assert d["step_ms"] == pytest.approx((4000 + 600) / 2)  # the steps' walls, start to last mark
    assert sum(p["percent"] for p in d["phases"].values()) == pytest.approx(100)
    assert "data" in step_timing.breakdown_table(d)


def test_trainer_records_and_prints_the_breakdown(faces, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(faces), "--out", str(out), "--holdout", "0.34", "-P", "3", "-K", "4"]
    assert main([*argv, "--epochs", "1", "--steps-per-epoch", "3", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "time per training step" in printed and "mining" in printed
    m = json.loads((out / "metrics.json").read_text())
    t = m["step_time"]
    assert t["steps"] == 3 and all(t["phases"][p]["ms"] > 0 for p in PHASES)
    assert sum(p["ms"] for p in t["phases"].values()) == pytest.approx(t["step_ms"])
    # the steps' timed phases lie within the loop's own measure of its steps (which adds bookkeeping)
    assert t["step_ms"] * 3 <= m["train_seconds"] * 1e3


def _breakdown_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step_breakdown.py"
    spec = importlib.util.spec_from_file_location("bench_step_breakdown", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_breakdown_benchmark_swaps_pml_s_miner_into_the_same_step(capsys):
    """Each variant's phases partition its step; PML's "semihard" miner, swapped in, mines exactly our
    all-semi-hard triplets (same batches, same network, so the same triplet count)."""
    pytest.importorskip("pytorch_metric_learning")
    bench = _breakdown_bench()
    bench.main(["--batch", "16", "--steps", "2", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "batch 16 (4 x 4)" in printed
    lines = [line for line in printed.splitlines() if line.startswith("| fx") or line.startswith("| PML")]
    rows = {line.split("|")[1].strip(): line for line in lines}
    assert set(rows) == {"fx semihard", "fx all_semihard", "PML semihard", "fx all_semihard fused"}
    cfg = bench.recipe_config(4, 4)
    images, labels = bench.images_and_labels(None, cfg, 16)
    runs = {
        name: bench.time_variant(name, mine, sq, images, labels, cfg, 2) for name, (mine, sq) in bench.miners().items()
    }
    assert runs["PML semihard"]["triplets"] == runs["fx all_semihard"]["triplets"] > 0
    for r in runs.values():
        assert sum(p["ms"] for p in r["phases"].values()) == pytest.approx(r["step_ms"])
    assert runs["fx all_semihard fused"]["phases"]["mining"]["ms"] == 0  # the fused loss mines inside "loss"


def test_breakdown_benchmark_refuses_bad_options():
    bench = _breakdown_bench()
    with pytest.raises(SystemExit):
        bench.main(["--batch", "10", "--steps", "1"])
    with pytest.raises(SystemExit):
        bench.main(["--variants", "nope", "--steps", "1"])
