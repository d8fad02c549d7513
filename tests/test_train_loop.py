"""The training loop end to end: CLI smoke runs, metrics.json, bit-for-bit resume (at an epoch boundary and
after Ctrl-C mid-epoch), atomic checkpoints and the errors for bad checkpoints."""

import json
import signal

import pytest
import torch

from facenet_ext.__main__ import main
from facenet_ext.train import TrainConfig, train
from facenet_ext.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from facenet_ext.train.data.sampler import PKSampler

from synthetic_faces import write_faces

METRICS = ("val_at_far_1e-3", "accuracy_10fold", "auc")
TINY = ["--width", "0.125", "--depth", "1", "--image-size", "16", "--no-progress", "--threads", "1"]


@pytest.fixture
def faces(tmp_path_factory):
    """Six identities x 5 images."""
    return write_faces(tmp_path_factory.mktemp("faces"), identities=6, images=5)


def _cfg(data, **kw):
    base = dict(
        data=str(data),
        image_size=16,
        width=0.125,
        depth=1,
        holdout=0.34,
        identities_per_batch=4,
        images_per_identity=4,
        epochs=2,
        steps_per_epoch=2,
        augment=True,
        seed=3,
    )
    return TrainConfig(**{**base, **kw})


def _same_state(a, b) -> bool:
    """Exact equality of (nested) state dicts: every tensor bit for bit."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_cli_smoke_on_the_bundled_digits(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--quick", "--epochs", "1", "--steps-per-epoch", "2", "--out", str(out), *TINY]) == 0
    assert "held-out metric" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("before", "after", "raw_pixels"):
        assert all(0.0 <= metrics[key][m] <= 1.0 for m in METRICS)
    assert metrics["config"]["data"] is None and metrics["steps"] == 2
    assert len(metrics["history"]["epoch_loss"]) == 1 and len(metrics["history"]["heldout"]) == 2
    assert (out / "train.png").stat().st_size > 0 and (out / "checkpoint.pt").is_file()


def test_cli_smoke_on_four_orl_identities(tmp_path, shared_data):
    data = tmp_path / "orl4"
    data.mkdir()
    for name in ("s1", "s2", "s3", "s4"):
        (data / name).symlink_to(shared_data / "orl_faces" / name)
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(data),
        "--holdout",
        "0.5",
        "-P",
        "2",
        "-K",
        "4",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
    ]
    assert main([*args, "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["heldout_identities"] == ["s3", "s4"] and metrics["data"]["images"] == 40


def test_resume_at_an_epoch_boundary_is_bit_for_bit(faces, tmp_path):
    full = train(_cfg(faces), tmp_path / "full", progress=False)
    train(_cfg(faces, epochs=1), tmp_path / "split", progress=False)
    resumed = train(_cfg(faces), tmp_path / "split", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert _same_state(a["model"], b["model"])
    assert full.metrics["history"]["epoch_loss"] == resumed.metrics["history"]["epoch_loss"]
    assert full.metrics["after"] == resumed.metrics["after"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_mid_epoch_saves_and_resumes_bit_for_bit(faces, tmp_path, monkeypatch, sig):
    """Ctrl-C, or SIGTERM from a scheduler or `kill`: finish the step, save, stop; the resumed run is
    the uninterrupted one."""
    cfg = _cfg(faces, epochs=1, steps_per_epoch=4)
    train(cfg, tmp_path / "full", progress=False)

    draw = PKSampler.batch
    calls = {"n": 0}

    def interrupt_on_third_batch(self, generator):
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(sig)  # the loop's handler: finish this step, save, stop
        return draw(self, generator)

    monkeypatch.setattr(PKSampler, "batch", interrupt_on_third_batch)
    stopped = train(cfg, tmp_path / "split", progress=False)
    assert stopped.interrupted and load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    assert stopped.stop_signal == sig
    monkeypatch.setattr(PKSampler, "batch", draw)
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert _same_state(a["model"], b["model"]) and a["history"]["epoch_loss"] == b["history"]["epoch_loss"]


def test_resume_with_another_config_is_refused(faces, tmp_path):
    train(_cfg(faces, epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match=r"another config(.|\n)*width"):
        train(_cfg(faces, width=0.25), tmp_path / "run", resume=True, progress=False)


def test_corrupt_or_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path / "other.pt")
    assert main(["train", "--resume", "--out", str(tmp_path), *TINY]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_cli_reports_data_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["arcface", "magface"])
def test_margin_softmax_heads_train_and_resume(faces, tmp_path, loss):
    full = train(_cfg(faces, loss=loss), tmp_path / "full", progress=False)
    assert full.metrics["history"]["aux_name"] == "magnitude"
    assert all(a > 0 for a in full.metrics["history"]["epoch_aux"])
    train(_cfg(faces, loss=loss, epochs=1), tmp_path / "split", progress=False)
    train(_cfg(faces, loss=loss), tmp_path / "split", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert _same_state(a["model"], b["model"]) and _same_state(a["objective"], b["objective"])


def test_memory_bank_run_resumes_bit_for_bit(faces, tmp_path):
    train(_cfg(faces, memory_bank=20), tmp_path / "full", progress=False)
    train(_cfg(faces, memory_bank=20, epochs=1), tmp_path / "split", progress=False)
    train(_cfg(faces, memory_bank=20), tmp_path / "split", resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert len(a["objective"]["bank._extra_state"]["labels"]) == 20
    assert _same_state(a["model"], b["model"]) and _same_state(a["objective"], b["objective"])


def test_degraded_training_images(faces, tmp_path):
    result = train(_cfg(faces, loss="magface", degrade=0.5, epochs=1), tmp_path / "run", progress=False)
    assert result.metrics["config"]["degrade"] == 0.5 and len(result.metrics["history"]["epoch_loss"]) == 1
    with pytest.raises(ValueError, match="degrade"):
        _cfg(faces, degrade=1.0)


def test_bad_combinations_are_refused(faces, tmp_path):
    with pytest.raises(ValueError, match="memory-bank"):
        train(_cfg(faces, loss="magface", memory_bank=10), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="memory_bank"):
        _cfg(faces, memory_bank=-1)


# One training step on P x K = 4 x 4 with a third of the identities held out.
ONE_STEP = "--holdout 0.34 -P 4 -K 4 --epochs 1 --steps-per-epoch 1".split()


def test_out_naming_a_file_is_refused_before_loading(faces, tmp_path, capsys, monkeypatch):
    import facenet_ext.train.loop as loop

    def no_loading(*args, **kwargs):
        raise AssertionError("the data were loaded before --out was checked")

    monkeypatch.setattr(loop, "load_sets", no_loading)
    (tmp_path / "taken").write_text("a file")
    for extra in ([], ["--overwrite"]):
        assert main(["train", "--data", str(faces), "--out", str(tmp_path / "taken"), *ONE_STEP, *TINY, *extra]) == 2
        assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "a file"


def test_existing_run_is_refused_unless_resumed_or_overwritten(faces, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(faces), "--out", str(out), *ONE_STEP, *TINY]
    assert main(args) == 0
    (out / "eval.json").write_text("{}")  # an evaluation of the old model, as `eval` leaves it
    (out / "roc.png").write_bytes(b"old")
    before = (out / "checkpoint.pt").read_bytes()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "checkpoint.pt").read_bytes() == before  # untouched
    assert main([*args, "--overwrite", "--seed", "7"]) == 0
    assert not (out / "eval.json").exists() and not (out / "roc.png").exists()  # no stale files beside the new model
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 7
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert "give one" in capsys.readouterr().err


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_zero_or_negative_epochs_are_refused(tmp_path, capsys, epochs):
    assert main(["train", "--quick", "--epochs", epochs, "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "epochs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--quick", "--steps-per-epoch", "0", "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "steps_per_epoch must be >= 1" in capsys.readouterr().err


def test_checkpoint_stores_an_absolute_data_path(faces, tmp_path, monkeypatch):
    monkeypatch.chdir(faces.parent)
    out = tmp_path / "run"
    args = ["train", "--data", faces.name, "--out", str(out), *ONE_STEP, *TINY]
    assert main(args) == 0
    assert load_checkpoint(out / "checkpoint.pt")["config"]["data"] == str(faces.resolve())
    monkeypatch.chdir(tmp_path)  # another directory: `eval` still finds the data
    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt")]) == 0
    assert json.loads((out / "eval.json").read_text())["split"] == "heldout"
