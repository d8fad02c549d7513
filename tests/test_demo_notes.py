"""The demo's words about its own numbers: a metric below raw pixels gets a note saying the run is short;
no LFW data gets a line saying the LFW step was skipped and where the data go."""

import pytest

from facenet_ext.train.commands import demo_lfw
from facenet_ext.train.commands.demo_notes import below_raw_pixels, note


def _metrics(after, raw, steps=60):
    keys = ("val_at_far_1e-3", "accuracy_10fold", "auc")
    return {"after": dict(zip(keys, after)), "raw_pixels": dict(zip(keys, raw)), "steps": steps}


def test_below_raw_pixels_is_named():
    m = _metrics(after=(0.05, 0.70, 0.80), raw=(0.10, 0.65, 0.70))
    assert below_raw_pixels(m) == ["val_at_far_1e-3"]
    assert "val_at_far_1e-3 below raw pixels" in note(m, "digits 7-9")
    assert note(_metrics(after=(0.2, 0.7, 0.8), raw=(0.1, 0.6, 0.7)), "digits 7-9") is None


def test_lfw_line_carries_the_note():
    below = _metrics(after=(0.01, 0.60, 0.65), raw=(0.02, 0.62, 0.66))
    assert "\nnote: LFW after 60 steps: val_at_far_1e-3, accuracy_10fold, auc below raw pixels" in (
        demo_lfw.format_line(below, "short run")
    )
    assert "note:" not in demo_lfw.format_line(_metrics((0.3, 0.8, 0.9), (0.02, 0.62, 0.66)), "x")


@pytest.mark.parametrize("found", [None, "no_lfw"])
def test_no_lfw_says_it_was_skipped(tmp_path, monkeypatch, found):
    import facenet_ext.paths

    (tmp_path / "data").mkdir()  # a data folder without lfw/
    monkeypatch.setattr(facenet_ext.paths, "shared_data_dir", lambda *a: None if found is None else tmp_path / "data")
    line = demo_lfw.lfw_line(tmp_path / "out", runs=tmp_path / "runs")
    assert line == demo_lfw.NO_LFW and "skipped" in line and "FACENET_EXT_DATA" in line
