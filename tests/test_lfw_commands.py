"""`train --protocol view1` and `lfw-view2` smoke runs on a few real LFW people (a miniature LFW folder of
symlinks with its own protocol files), View 2's per-fold resumption, eval of a View 1 checkpoint, and
the demo's LFW line."""

import json
import signal

import numpy as np
import pytest

from facenet_ext.__main__ import main
from facenet_ext.train.commands.demo_lfw import format_line, latest_view1_run
from facenet_ext.train.data.sampler import PKSampler
from facenet_ext.train.lfw.protocol import read_people

TINY = (
    "--width 0.125 --depth 1 --crop-box 110 --image-size 20 --input-size 16 -P 4 -K 2 --epochs 1 "
    "--steps-per-epoch 2 --no-progress --threads 1"
).split()


@pytest.fixture(scope="module")
def mini_lfw(shared_data, tmp_path_factory):
    """10 sets of 3 people from people.txt (two with 5+ images, one with a single image), their image
    folders as symlinks, View 2 files with 6 matched + 6 mismatched pairs per fold, and View 1 files
    (DevTrain = sets 1-9, DevTest = set 0's pairs)."""
    lfw = shared_data / "lfw"
    if not lfw.is_dir():
        pytest.skip("LFW not in the shared data")
    root = tmp_path_factory.mktemp("mini_lfw")
    (root / "images").mkdir()
    sets = []
    for members in read_people(lfw / "people.txt").sets:
        many = [(n, c) for n, c in members if c >= 5][:2]
        single = [(n, c) for n, c in members if c == 1][:1]
        sets.append(many + single)
    pairs = []
    for (a, _), (b, _), _ in sets:
        matched = [f"{a}\t1\t2", f"{a}\t1\t3", f"{a}\t2\t3", f"{b}\t1\t2", f"{b}\t1\t3", f"{b}\t2\t3"]
        mismatched = [f"{a}\t{i}\t{b}\t{j}" for i, j in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (4, 4))]
        pairs.append(matched + mismatched)
    for members in sets:
        for name, _ in members:
            (root / "images" / name).symlink_to(lfw / "images" / name)
    people = ["10"] + [line for s in sets for line in [str(len(s))] + [f"{n}\t{c}" for n, c in s]]
    (root / "people.txt").write_text("\n".join(people) + "\n")
    (root / "pairs.txt").write_text("10\t6\n" + "\n".join(line for p in pairs for line in p) + "\n")
    dev_train = [(n, c) for s in sets[1:] for n, c in s]
    (root / "peopleDevTrain.txt").write_text(
        f"{len(dev_train)}\n" + "\n".join(f"{n}\t{c}" for n, c in dev_train) + "\n"
    )
    (root / "pairsDevTest.txt").write_text("6\n" + "\n".join(pairs[0]) + "\n")
    return root


def test_view1_smoke(mini_lfw, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(mini_lfw), "--out", str(out), "--cache", str(tmp_path / "cache"), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["protocol"] == "view1"  # an LFW folder without --protocol: View 1
    assert metrics["config"]["loss"] == "arcface" and metrics["config"]["flip_eval"]  # the recipe, under the flags
    assert metrics["data"]["test_pairs_same"] == 6 and metrics["data"]["test_pairs_diff"] == 6
    assert metrics["data"]["train_identities_with_2_or_more_images"] == 18
    for column in ("raw_pixels", "before", "after"):
        for key in ("accuracy_10fold", "auc", "val_at_far_1e-3", "val_at_far_1e-2", "eer"):
            assert 0.0 <= metrics[column][key] <= 1.0
    assert "held-out metric" in capsys.readouterr().out
    # eval from another directory finds the data (absolute path) and evaluates the DevTest pairs
    assert metrics["config"]["data"].startswith("/")
    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["pairs"] == "view1 test pairs" and report["metrics"]["model"]["num_pairs_same"] == 6
    assert report["metrics"]["model"]["auc"] == pytest.approx(metrics["after"]["auc"])
    # another pair list of the LFW folder (View 2's pairs.txt): the run's crop, LFW's file names
    args = ["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(mini_lfw), "--pairs"]
    args += [str(mini_lfw / "pairs.txt"), "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "e2")]
    assert main(args) == 0
    assert json.loads((tmp_path / "e2" / "eval.json").read_text())["metrics"]["model"]["num_pairs_same"] == 60
    # the demo's line reads the newest View 1 run
    assert latest_view1_run(tmp_path) == out / "metrics.json"
    assert format_line(metrics, "x").startswith("LFW View 1 (1000 DevTest pairs, 10-fold): accuracy")


def test_view2_runs_each_fold_once_and_resumes_an_interrupted_one(mini_lfw, tmp_path, monkeypatch, capsys):
    out = tmp_path / "v2"
    args = ["lfw-view2", "--data", str(mini_lfw), "--out", str(out), "--cache", str(tmp_path / "cache"), *TINY]
    assert main([*args, "--folds", "0"]) == 0
    first = (out / "fold-0" / "checkpoint.pt").stat().st_mtime_ns

    # interrupt fold 1 at its first batch: it keeps a checkpoint and no metrics
    draw = PKSampler.batch

    def interrupt(self, generator):
        signal.raise_signal(signal.SIGINT)
        return draw(self, generator)

    monkeypatch.setattr(PKSampler, "batch", interrupt)
    assert main([*args, "--folds", "0-1", "--sampler", "pk"]) == 130
    monkeypatch.setattr(PKSampler, "batch", draw)
    assert (out / "fold-1" / "checkpoint.pt").is_file() and not (out / "fold-1" / "metrics.json").exists()
    capsys.readouterr()

    assert main([*args, "--folds", "0-1", "--sampler", "pk"]) == 0
    log = capsys.readouterr().out
    assert "fold 0: finished earlier" in log and "fold 1: resuming" in log
    assert (out / "fold-0" / "checkpoint.pt").stat().st_mtime_ns == first  # never trained again
    report = json.loads((out / "view2.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [0, 1] and report["n_folds"] == 2
    accs = [f["model"]["accuracy_10fold"] for f in report["folds"]]
    assert report["mean_std"]["model"]["accuracy_10fold"]["mean"] == pytest.approx(np.mean(accs))
    assert (out / "roc.png").stat().st_size > 0 and "mean ± std (2 folds)" in (out / "view2.md").read_text()
    fold1 = json.loads((out / "fold-1" / "metrics.json").read_text())
    assert fold1["config"]["fold"] == 1 and fold1["data"]["test_pairs_same"] == 6
    assert set(fold1["data"]["train_identities"]).isdisjoint(fold1["data"]["heldout_identities"])


def test_view2_bad_input(mini_lfw, tmp_path, capsys):
    assert main(["lfw-view2", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not an LFW folder" in capsys.readouterr().err
    assert main(["lfw-view2", "--data", str(mini_lfw), "--out", str(tmp_path / "o"), "--folds", "3-12"]) == 2
    assert "folds are 0..9" in capsys.readouterr().err
