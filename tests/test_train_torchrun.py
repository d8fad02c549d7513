"""`torchrun --nproc-per-node 2 -m facenet_ext train` on CPU (gloo, loopback): both ranks train with global
mining, rank 0 writes the run folder. Bounded in time; the loss/gradient equivalence itself is tested in
test_distributed.py."""
import json
import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from synthetic_faces import write_faces

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")


def test_torchrun_two_ranks(tmp_path):
    (tmp_path / "faces").mkdir()
    data = write_faces(tmp_path / "faces", identities=6, images=5)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "facenet_ext", "train", "--data", str(data), "--out", str(out), "--image-size", "16", "--width", "0.125",
        "--depth", "1", "--holdout", "0.34", "-P", "2", "-K", "4", "--epochs", "2", "--steps-per-epoch", "2", "--no-progress",
    ]
    env = {**os.environ, "FACENET_EXT_DIST_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 4
    assert len(metrics["history"]["epoch_loss"]) == 2 and metrics["after"]["auc"] >= 0
    assert result.stdout.count("held-out metric") == 1  # rank 0 alone reports
