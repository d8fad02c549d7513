"""`torchrun --nproc-per-node 2 -m facenet_ext train` on CPU (gloo, loopback): both ranks train with global
mining, rank 0 writes the run folder, and the step it took is the one-process step on the global batch.
Bounded in time; the loss/gradient equivalence of fx.distributed.triplet_loss itself is tested in
test_distributed.py, this checks that the trainer wires it up (sampling per rank, DDP, the reported loss)."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

import facenet_ext as fx
from facenet_ext.train.checkpoint import load_checkpoint
from facenet_ext.train.config import TrainConfig
from facenet_ext.train.data.images import split_identities, standardize
from facenet_ext.train.data.sampler import PKSampler
from facenet_ext.train.loop import build_model, load_data, step_generator

from synthetic_faces import write_faces

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo"
)
WORLD = 2


def one_process_step(cfg: TrainConfig):
    """Step 0 of the run, replayed in this process on the global batch: the loop's set-up in the loop's
    order (so the same seed gives the same initial weights), each rank's P x K draw, and each rank's
    forward pass kept separate, because DDP without SyncBatchNorm normalises with per-rank batch
    statistics. Returns the global loss and the parameter gradients."""
    assert not cfg.augment and not cfg.degrade, "the replay below does not augment or degrade"
    torch.manual_seed(cfg.seed)
    data = load_data(cfg)
    train_set, _ = split_identities(data, cfg.holdout)
    sampler = PKSampler(train_set.labels, cfg.identities_per_batch, cfg.images_per_identity)
    net = build_model(cfg, data.images.shape[1]).train()
    batches = [sampler.batch(step_generator(cfg.seed, 0, rank)) for rank in range(WORLD)]
    emb = torch.cat([net(standardize(train_set.images[idx])) for idx in batches])
    labels = torch.cat([train_set.labels[idx] for idx in batches])
    loss = fx.triplet_loss(emb, labels, cfg.margin, mining=cfg.mining)
    loss.backward()
    return loss.detach(), [p.grad for p in net.parameters()]


def test_torchrun_two_ranks_take_the_one_process_step(tmp_path, fresh_seed):
    (tmp_path / "faces").mkdir()
    data = write_faces(tmp_path / "faces", identities=6, images=5, seed=fresh_seed)
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD)]
    tiny = "--image-size 16 --width 0.125 --depth 1 --holdout 0.34 -P 2 -K 4 --epochs 1 --steps-per-epoch 1"
    cmd = [*torchrun, "-m", "facenet_ext", "train", "--data", str(data), "--out", str(out), *tiny.split()]
    cmd += ["--seed", str(fresh_seed), "--no-progress"]
    env = {**os.environ, "FACENET_EXT_DIST_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("held-out metric") == 1  # rank 0 alone reports
    assert result.stdout.count("run folder:") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD and metrics["steps"] == 1
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    cfg = TrainConfig.from_dict(checkpoint["config"])
    assert cfg.seed == fresh_seed

    loss, grads = one_process_step(cfg)
    assert loss > 0  # a step that learns something, so the gradients below are not all zero
    # The reported loss (the ranks' values averaged) is the global loss; distances are computed per row
    # block on each rank, so only rounding may differ.
    torch.testing.assert_close(
        torch.tensor(metrics["history"]["epoch_loss"][0], dtype=torch.float64), loss.double(), rtol=1e-4, atol=1e-7
    )
    # AdaGrad's accumulator after one step is grad**2 of the DDP-averaged gradient: it must be the
    # one-process gradient. Gradients are sums that cancel (some tensors' gradients are rounding noise
    # around 0), so the absolute tolerance is relative to the largest gradient entry of the model.
    state = checkpoint["optimizer"]["state"]
    assert len(state) == len(grads)
    scale = max(float(g.abs().max()) for g in grads)
    assert scale > 0
    for i, grad in enumerate(grads):
        torch.testing.assert_close(
            state[i]["sum"].sqrt(), grad.abs(), rtol=1e-3, atol=1e-5 * scale, msg=lambda m, i=i: f"parameter {i}: {m}"
        )
