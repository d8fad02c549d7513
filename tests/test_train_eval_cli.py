"""`python -m facenet_ext eval`: a checkpoint evaluated on its held-out identities, on another folder, on a
generated pairs file; and its errors."""

import json

import numpy as np
import pytest
from PIL import Image

from facenet_ext.__main__ import main
from facenet_ext.eval import read_pairs
from facenet_ext.train import TrainConfig, train
from facenet_ext.train.commands.evaluate import OUTPUT_FILES

from synthetic_faces import write_faces


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = write_faces(tmp_path_factory.mktemp("faces"), identities=8, images=4, seed=1, prefix="id")
    cfg = TrainConfig(
        data=str(root),
        image_size=16,
        width=0.125,
        depth=1,
        holdout=0.5,
        identities_per_batch=4,
        images_per_identity=4,
        epochs=1,
        steps_per_epoch=2,
    )
    out = tmp_path_factory.mktemp("run")
    train(cfg, out, progress=False)
    return root, out


def test_heldout_split_by_default(run, capsys):
    root, out = run
    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt")]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert (
        report["split"] == "heldout" and report["identities"] == ["id4", "id5", "id6", "id7"] and report["images"] == 16
    )
    assert set(report["metrics"]) == {"model", "raw pixels"}
    assert report["metrics"]["model"]["num_pairs_same"] == 4 * 6
    assert (out / "roc.png").stat().st_size > 0 and (out / "erc.png").stat().st_size > 0
    saved = np.load(out / "embeddings.npz")
    assert saved["embeddings"].shape == (16, 128) and (saved["magnitude"] > 0).all()
    assert "raw pixels" in capsys.readouterr().out


def test_generated_pairs_file_round_trip(run, tmp_path):
    root, out = run
    pairs_file = tmp_path / "pairs.txt"
    assert main(["eval", "--write-pairs", str(pairs_file), "--data", str(root)]) == 0
    pairs = read_pairs(pairs_file)
    assert pairs.n_folds == 10 and pairs.issame.sum() == (~pairs.issame).sum()
    args = ["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(root), "--pairs", str(pairs_file)]
    assert main([*args, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["split"] == "all"
    assert report["metrics"]["model"]["num_pairs_same"] == pairs.issame.sum()


def test_errors(run, tmp_path, capsys):
    root, out = run
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["eval"]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err
    other = tmp_path / "other"  # RGB images: converted to the grayscale model's one channel
    for name in ("a", "b"):
        (other / name).mkdir(parents=True)
        for j in range(2):
            pixels = np.random.default_rng(j).integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(other / name / f"{j}.png")
    assert (
        main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(other), "--out", str(tmp_path / "o")])
        == 0
    )
    assert json.loads((tmp_path / "o" / "eval.json").read_text())["split"] == "all"
    assert sorted(f.name for f in (tmp_path / "o").iterdir()) == sorted(OUTPUT_FILES)  # what eval --help lists
    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(other), "--split", "heldout"]) == 2
    assert "training data" in capsys.readouterr().err
