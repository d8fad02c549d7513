"""fx.distributed.triplet_loss on a real 2-process gloo group (spawned here, file rendezvous, bounded in
time): the loss and gradients equal the single-process loss on the concatenated batch, with unequal local
batch sizes, for every mining strategy, with and without DDP. Without a process group it is checked
against the float64 reference, not against the function it delegates to."""

import datetime
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import facenet_ext as fx
from facenet_ext.oracle import triplet_loss_oracle

SIZES = (7, 12)  # unequal local batches
DIM_IN, DIM = 4, 3
# Margins that are not integers: with integer embeddings a squared distance is an integer, so an integer
# margin can put a hinge argument exactly on the kink at 0, where the op and the reference may take
# different subgradients (and plain distances, square roots of integers, cannot differ by 0.2 or 2.5).
CONFIGS = [("semihard", 0.2), ("batch_hard", 0.2), ("all_semihard", 2.5)]
TIMEOUT_S = 120
# About 2% of draws are degenerate (measured over 300 seeds), so 20 draws in a row are with
# probability ~1e-34: never, unless something is broken, and then the test must fail, not loop forever.
MAX_DRAWS = 20


def global_problem(seed):
    """Integer inputs and weights: integer embeddings, so every distance is exact and mining cannot depend
    on how the GEMM is blocked (one process vs a row block per rank).

    Some random draws leave some strategy (with squared or plain distances) with no active triplet
    (loss 0), which would make the comparisons vacuous; such draws are redrawn from the same generator,
    so every process that calls this with the same seed gets the same non-degenerate problem.
    Degeneracy is judged by the float64 reference, so a broken loss cannot choose its own problem."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(MAX_DRAWS):
        x = torch.randint(-2, 3, (sum(SIZES), DIM_IN), generator=g).float()
        labels = torch.randint(0, 4, (sum(SIZES),), generator=g)
        weight = torch.randint(-2, 3, (DIM, DIM_IN), generator=g).float()
        emb = x @ weight.t()
        losses = [
            triplet_loss_oracle(emb, labels, margin, mining=m, squared=sq)
            for m, margin in CONFIGS
            for sq in (True, False)
        ]
        if all(loss.item() > 0 for loss in losses):
            return x, labels, weight
    raise RuntimeError(f"global_problem: no non-degenerate problem in {MAX_DRAWS} draws from seed {seed}")


def _worker(rank, rendezvous, seed, out_dir):
    # A file rendezvous in the test's own tmp_path: no port to pick, so no race with other processes
    # that grab a free port between our choosing it and binding it.
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=len(SIZES),
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.set_num_threads(1)
        x, labels, weight = global_problem(seed)
        lo = sum(SIZES[:rank])
        x, labels = x[lo : lo + SIZES[rank]], labels[lo : lo + SIZES[rank]]
        results = {}
        for mining, margin in CONFIGS:
            # embeddings as leaves, per-rank values summing to the global loss
            emb = (x @ weight.t()).requires_grad_()
            loss = fx.distributed.triplet_loss(emb, labels, margin, mining=mining, scale_for_ddp=False)
            loss.backward()
            # a model under DDP: averaged parameter gradients
            model = torch.nn.Linear(DIM_IN, DIM, bias=False)
            with torch.no_grad():
                model.weight.copy_(weight)
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            ddp_loss = fx.distributed.triplet_loss(ddp(x), labels, margin, mining=mining)
            ddp_loss.backward()
            results[mining] = (loss.detach(), emb.grad, ddp_loss.detach(), model.weight.grad.clone())
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_bounded(fn, args, nprocs, timeout_s):
    ctx = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"distributed test did not finish within {timeout_s} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_process_gloo_matches_single_process(tmp_path, fresh_seed):
    run_bounded(_worker, (str(tmp_path / "rendezvous"), fresh_seed, str(tmp_path)), len(SIZES), TIMEOUT_S)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(len(SIZES))]
    x, labels, weight = global_problem(fresh_seed)
    for mining, margin in CONFIGS:
        emb = (x @ weight.t()).requires_grad_()
        loss = fx.triplet_loss(emb, labels, margin, mining=mining)
        loss.backward()
        w = weight.clone().requires_grad_()
        fx.triplet_loss(x @ w.t(), labels, margin, mining=mining).backward()
        per_rank_sum = sum(r[mining][0] for r in ranks)
        torch.testing.assert_close(per_rank_sum, loss.detach(), msg=f"{mining}: loss")
        torch.testing.assert_close(torch.cat([r[mining][1] for r in ranks]), emb.grad, msg=f"{mining}: emb grad")
        ddp_mean = sum(r[mining][2] for r in ranks) / len(SIZES)
        torch.testing.assert_close(ddp_mean, loss.detach(), msg=f"{mining}: DDP loss")
        for r in ranks:  # DDP leaves the same averaged gradient on every rank
            torch.testing.assert_close(r[mining][3], w.grad, msg=f"{mining}: DDP weight grad")
        assert loss.item() > 0  # the batch is not degenerate: the comparison means something


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("mining, margin", CONFIGS)
def test_without_process_group_matches_the_reference(fresh_seed, mining, margin, squared):
    """A world of one: the loss and its gradient equal the float64 reference's on the same batch (the
    non-degenerate integer problem above, so mining is exact and decided alike in float32 and float64)."""
    assert not dist.is_initialized()
    x, labels, weight = global_problem(fresh_seed)
    emb = (x @ weight.t()).requires_grad_()
    emb64 = emb.detach().double().requires_grad_()
    loss = fx.distributed.triplet_loss(emb, labels, margin, mining=mining, squared=squared)
    want = triplet_loss_oracle(emb64, labels, margin, mining=mining, squared=squared)
    assert want.item() > 0  # global_problem guarantees it: the comparison is not 0 == 0
    torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=1e-6)
    (grad,) = torch.autograd.grad(loss, emb)
    (grad64,) = torch.autograd.grad(want, emb64)
    torch.testing.assert_close(grad.double(), grad64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"reduction": "none"}, ValueError),  # per-triplet losses have no global form
        ({"chunk_size": 0}, ValueError),
        ({"chunk_size": -1}, ValueError),
        ({"chunk_size": 2.5}, TypeError),
    ],
)
def test_bad_arguments_name_the_function_called(kwargs, error):
    """Checked before any collective (so also inside a process group), with the name the user called."""
    emb = torch.nn.functional.normalize(torch.randn(6, 3), dim=1)
    with pytest.raises(error, match=r"^distributed\.triplet_loss: "):
        fx.distributed.triplet_loss(emb, torch.arange(3).repeat_interleave(2), **kwargs)
