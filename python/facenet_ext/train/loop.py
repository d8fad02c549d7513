"""The training loop: P x K batches, online mining inside fx.triplet_loss (or an ArcFace/MagFace head),
checkpoints, metrics.

A run folder holds ``checkpoint.pt`` (model, optimiser, sampler RNG, history, config), ``metrics.json``
(config, per-epoch history, held-out metrics ``before`` and ``after`` training and of raw pixels) and
``train.png``. ``resume=True`` continues a run bit for bit: the next step is the one the uninterrupted
run would have taken (each step's random draws depend only on the seed, the step and the rank). Ctrl-C finishes the current step, saves and stops; a second Ctrl-C aborts at once.
"""
from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from .checkpoint import check_same_config, load_checkpoint, save_checkpoint
from .config import RESUMABLE_CHANGES, TrainConfig
from .degrade import degrade
from .embed import embed_images, evaluate, metrics_table, raw_pixel_embeddings
from .images import ImageSet, augment, load_digits_set, load_image_folder, split_identities, standardize
from .model import NN2
from .objective import Objective
from .sampler import PKSampler
from .world import init_world

METRIC_KEYS = ("val_at_far_1e-3", "accuracy_10fold", "auc")


@dataclass
class RunResult:
    out: Path
    metrics: dict
    interrupted: bool = False
    summary: str = field(default="")


def load_data(cfg: TrainConfig) -> ImageSet:
    if cfg.data is None:
        return load_digits_set(cfg.image_size or 32)
    return load_image_folder(cfg.data, cfg.image_size or 64, cfg.channels)


def build_model(cfg: TrainConfig, in_channels: int) -> NN2:
    return NN2(in_channels, cfg.embedding_dim, cfg.width, cfg.depth)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)


def default_out() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


class _StopFlag:
    """SIGINT handler for the loop: the first Ctrl-C asks the loop to stop at the next step boundary
    (so the checkpoint is consistent), the second one raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopFlag":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this step, saving the checkpoint, then stopping (Ctrl-C again aborts)", flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The random stream of one step (batch draw and augmentation) on one rank: a function of (seed,
    step, rank) alone, so a resumed run, or any rank, needs no saved generator state."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + rank)


def train(cfg: TrainConfig, out: str | Path | None = None, *, resume: bool = False, progress: bool = True) -> RunResult:
    """Train ``cfg`` into the run folder ``out`` (default ``runs/<timestamp>``); see the module docstring.
    Under torchrun (WORLD_SIZE > 1) every rank calls this; see facenet_ext.train.world."""
    world = init_world()
    out = Path(out) if out is not None else default_out()
    ckpt_path = out / "checkpoint.pt"
    saved = None
    if resume:
        saved = load_checkpoint(ckpt_path)
        check_same_config(saved["config"], cfg.to_dict(), ignore=RESUMABLE_CHANGES)
    progress = progress and world.main

    torch.manual_seed(cfg.seed)
    data = load_data(cfg)
    train_set, held_set = split_identities(data, cfg.holdout)
    sampler = PKSampler(train_set.labels, cfg.identities_per_batch, cfg.images_per_identity)
    net = build_model(cfg, data.images.shape[1])
    objective = Objective(cfg, len(train_set.identities), world.size)
    if cfg.loss == "magface":  # mid-range of MagFace's [l_a, u_a], where the magnitude gets gradients
        net.init_feature_magnitude((objective.head.l_a + objective.head.u_a) / 2)
    optimizer = make_optimizer(cfg, [*net.parameters(), *objective.parameters()])
    model = torch.nn.parallel.DistributedDataParallel(net) if world.size > 1 else net
    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(train_set) / (sampler.batch_size * world.size)))
    total_steps = cfg.epochs * steps_per_epoch

    if saved is not None:
        net.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        step, history, metrics = saved["step"], saved["history"], saved["metrics"]
    else:
        step = 0
        history = {"epoch_loss": [], "epoch_aux": [], "aux_name": objective.aux_name, "epoch_images_per_s": [], "heldout": [], "partial": None}
        metrics = {"config": cfg.to_dict(), "data": _describe(data, train_set, held_set), "world_size": world.size}
        if world.main:
            metrics["raw_pixels"] = evaluate(raw_pixel_embeddings(held_set.images), held_set, cfg.seed)
            metrics["before"] = evaluate(embed_images(net, held_set.images), held_set, cfg.seed)
            history["heldout"].append(_pick(metrics["before"]))

    def save() -> None:
        state = {"config": cfg.to_dict(), "model": net.state_dict(), "objective": objective.state_dict(), "optimizer": optimizer.state_dict()}
        save_checkpoint(ckpt_path, {**state, "step": step, "history": history, "metrics": metrics})

    def checkpoint() -> None:
        if world.main:
            save()
        world.barrier()

    from tqdm.auto import tqdm

    interrupted = False
    model.train()
    with _StopFlag() as stop:
        while step < total_steps and not interrupted:
            epoch = step // steps_per_epoch
            acc = history["partial"] or {"loss": 0.0, "aux": 0.0, "images": 0, "seconds": 0.0, "steps": 0}
            bar = tqdm(
                total=steps_per_epoch, initial=step % steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not progress, leave=False, dynamic_ncols=True,
            )
            while step < (epoch + 1) * steps_per_epoch:
                t0 = time.perf_counter()
                generator = step_generator(cfg.seed, step, world.rank)
                idx = sampler.batch(generator)
                images = train_set.images[idx]
                if cfg.degrade:
                    images, _ = degrade(images, cfg.degrade, generator)
                x = standardize(images)
                if cfg.augment:
                    x = augment(x, generator)
                loss, aux = objective(model, x, train_set.labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                seconds = time.perf_counter() - t0
                step_loss, images = world.mean(loss.item()), idx.numel() * world.size
                acc = {
                    "loss": acc["loss"] + step_loss, "aux": acc["aux"] + float(aux),
                    "images": acc["images"] + images, "seconds": acc["seconds"] + seconds, "steps": acc["steps"] + 1,
                }
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", **{objective.aux_name: f"{float(aux):.2f}"}, img_s=f"{images / seconds:.0f}")
                if world.any(stop.requested):
                    interrupted = True
                    break
            bar.close()
            if interrupted:
                history["partial"] = acc
                break
            history["partial"] = None
            history["epoch_loss"].append(acc["loss"] / acc["steps"])
            history["epoch_aux"].append(acc["aux"] / acc["steps"])
            history["epoch_images_per_s"].append(acc["images"] / acc["seconds"])
            if world.main:
                history["heldout"].append(_pick(evaluate(embed_images(net, held_set.images), held_set, cfg.seed)))
            if progress:
                h = history["heldout"][-1]
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: loss {history['epoch_loss'][-1]:.4f}, {objective.aux_name} {history['epoch_aux'][-1]:.2f}, "
                    f"{history['epoch_images_per_s'][-1]:.0f} img/s; held-out VAL@FAR=1e-3 {h['val_at_far_1e-3']:.3f}, "
                    f"10-fold acc {h['accuracy_10fold']:.3f}, AUC {h['auc']:.3f}",
                    flush=True,
                )
            checkpoint()

    if interrupted:
        checkpoint()
        return RunResult(out, metrics, interrupted=True, summary=f"interrupted at step {step}/{total_steps}; checkpoint saved to {ckpt_path}")

    metrics["history"] = {k: v for k, v in history.items() if k != "partial"}
    metrics["steps"] = step
    if not world.main:
        world.barrier()
        return RunResult(out, metrics)
    metrics["after"] = evaluate(embed_images(net, held_set.images), held_set, cfg.seed)
    save()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from .plots import plot_training

    plot_training(metrics, out / "train.png")
    world.barrier()
    return RunResult(out, metrics, summary=summary_table(metrics))


def summary_table(metrics: dict) -> str:
    """The before/after table printed at the end of a run."""
    columns = {"raw pixels": metrics["raw_pixels"], "untrained": metrics["before"], "trained": metrics["after"]}
    return metrics_table(columns, "held-out metric")


def _pick(m: dict) -> dict:
    return {k: m[k] for k in METRIC_KEYS}


def _describe(data: ImageSet, train_set: ImageSet, held_set: ImageSet) -> dict:
    return {
        "images": len(data),
        "identities": len(data.identities),
        "train_identities": train_set.identities,
        "heldout_identities": held_set.identities,
        "train_images": len(train_set),
        "heldout_images": len(held_set),
        "skipped_files": [p for p, _ in data.skipped],
    }
