"""The digits demo (`make demo`, `train --quick`) visibly learns: at seed 0 the trained network beats its
untrained self and raw pixels on the held-out digits 7-9, in AUC and 10-fold accuracy. (Seeds 0, 1, 2
and the training time are recorded in RESULTS.md; no timing is asserted here.)"""

import json

from facenet_ext.__main__ import main


def test_quick_preset_learns_on_held_out_digits(tmp_path):
    out = tmp_path / "demo"
    assert main(["train", "--quick", "--out", str(out), "--seed", "0", "--threads", "1", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    train = m["data"]["train_identities"]  # digits 0-6, then their mirrored and quarter-turned versions
    assert train[:7] == [f"digit{d}" for d in range(7)] and len(train) == 28 and train[7] == "digit0 (mirror)"
    assert m["data"]["heldout_identities"] == ["digit7", "digit8", "digit9"]
    for key in ("auc", "accuracy_10fold"):
        assert m["after"][key] > m["before"][key], (key, m["after"][key], m["before"][key])
        assert m["after"][key] > m["raw_pixels"][key], (key, m["after"][key], m["raw_pixels"][key])
