"""The training loop: P x K (or uniform) batches, online mining inside fx.triplet_loss (or an
ArcFace/MagFace head), checkpoints, metrics.

A run folder holds ``checkpoint.pt`` (config, model, loss head or memory bank, optimiser, step, history,
metrics; no random state, see below), ``metrics.json`` (config, per-epoch history, held-out metrics
``before`` and ``after`` training and of raw pixels) and ``train.png``. "Held out" is the last
``holdout`` fraction of the identities (at least 2 of them), or, for an LFW protocol
(``cfg.protocol``), the protocol's test pairs. A folder that already holds a run is refused unless
``resume`` or ``overwrite``. ``resume=True`` continues a run bit for bit: the next step is the one the
uninterrupted run would have taken (each step's random draws and learning rate depend only on the seed,
the step and the rank). Ctrl-C finishes the current step, saves and stops; a second Ctrl-C aborts at once.
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
from .data.degrade import degrade
from .data.face_cache import Preprocess
from .data.images import (
    MIN_TRAIN_IDENTITIES,
    ImageSet,
    augment,
    center_crop,
    load_digits_set,
    load_image_folder,
    random_affine,
    random_crop_flip,
    split_identities,
    standardize,
)
from .data.sampler import PhasedSampler, PKSampler, UniformSampler
from .embed import embed_images, evaluate, metrics_table, raw_pixel_embeddings
from .model import NN2, SmallNet
from .objective import Objective
from .plots import plot_training
from .step_timing import StepTimer, breakdown_table
from .world import init_world

METRIC_KEYS = ("val_at_far_1e-3", "accuracy_10fold", "auc")


@dataclass
class RunResult:
    out: Path
    metrics: dict
    interrupted: bool = False
    summary: str = field(default="")
    main: bool = True  # False on torchrun's other ranks, which print nothing
    stop_signal: int = 0  # the signal that interrupted the run (SIGINT or SIGTERM), else 0


# Files a run writes into its folder (train) or beside its checkpoint (eval): what --overwrite removes.
RUN_FILES = ("checkpoint.pt", "metrics.json", "train.png", "eval.json", "roc.png", "erc.png", "embeddings.npz")


class RunExistsError(FileExistsError):
    """--out names a folder that already holds a run, and neither --resume nor --overwrite was given."""


def load_data(cfg: TrainConfig) -> ImageSet:
    if cfg.data is None:
        return load_digits_set(cfg.image_size or 32)
    # A fractional hold-out needs 4 identities: say so before decoding a folder that has fewer.
    minimum = 2 if isinstance(cfg.holdout, (list, tuple)) else MIN_TRAIN_IDENTITIES
    return load_image_folder(cfg.data, cfg.image_size or 64, cfg.channels, min_identities=minimum)


def load_sets(cfg: TrainConfig, cache_dir=None, workers: int = 2, progress: bool = True):
    """(all data or None, training set, evaluation set, evaluation pairs or None): LFW's protocol split
    when ``cfg.protocol`` is set, else the identity split by ``cfg.holdout`` (all pairs evaluated)."""
    if cfg.protocol is None:
        data = load_data(cfg)
        return (data, *split_identities(data, cfg.holdout), None)
    # imported on use: it loads scikit-learn (about 4 s), which --help does not need
    from .lfw.data import load_protocol

    prep = Preprocess(cfg.image_size or 64, cfg.channels or 1, cfg.crop_box)
    p = load_protocol(
        cfg.data, cfg.protocol, cfg.fold, prep, cache_dir=cache_dir, workers=workers, progress=progress, seed=cfg.seed
    )
    return None, p.train_set, p.test_set, p.pairs


def subset_people(data: ImageSet, fraction: float, seed: int) -> ImageSet:
    """The images of a seeded random ``fraction`` of the people of ``data`` (at least one person), in
    their original order: fewer identities, same images per identity (the identity-count curve)."""
    n = len(data.identities)
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))[: max(1, round(fraction * n))]
    return data.select_identities([data.identities[i] for i in sorted(keep.tolist())])


TRANSFORMS = {
    "mirror": lambda x: x.flip(-1),
    "rot90": lambda x: x.rot90(1, (-2, -1)),
    "rot270": lambda x: x.rot90(-1, (-2, -1)),
}


def with_new_identities(data: ImageSet, transforms: list[str]) -> ImageSet:
    """``data`` plus, for each transform, a copy of every image transformed, each identity's copies
    labelled as a new identity: more identities to learn from, where a transformed class is a different
    class (a mirrored or quarter-turned 2 is no digit; a half turn is not offered, as it makes a 6 a 9).
    Learning from more identities is what makes an embedding carry over to unseen ones (FaceNet
    trained on 8M people)."""
    n = len(data.identities)
    images, labels, names = [data.images], [data.labels], list(data.identities)
    for k, name in enumerate(transforms, start=1):
        images.append(TRANSFORMS[name](data.images))
        labels.append(data.labels + k * n)
        names += [f"{identity} ({name})" for identity in data.identities]
    return ImageSet(torch.cat(images).contiguous(), torch.cat(labels), names, data.paths * (len(transforms) + 1))


def build_model(cfg: TrainConfig, in_channels: int) -> torch.nn.Module:
    if cfg.model == "small":
        return SmallNet(in_channels, cfg.embedding_dim, cfg.width)
    return NN2(in_channels, cfg.embedding_dim, cfg.width, cfg.depth, cfg.dropout)


def build_sampler(cfg: TrainConfig, labels: torch.Tensor):
    """The run's batch sampler; with ``cfg.arcface_fraction``, uniform batches for the ArcFace steps and
    P x K batches for the triplet steps (the caller sets the switch step once it knows the run's length)."""
    if cfg.arcface_fraction:
        uniform = UniformSampler(labels, cfg.identities_per_batch * cfg.images_per_identity, singles=cfg.singletons > 0)
        pk = PKSampler(labels, cfg.identities_per_batch, cfg.images_per_identity, cfg.singletons)
        return PhasedSampler(uniform, pk, switch_step=0)
    if cfg.sampler == "uniform":
        return UniformSampler(labels, cfg.identities_per_batch * cfg.images_per_identity, singles=cfg.singletons > 0)
    return PKSampler(labels, cfg.identities_per_batch, cfg.images_per_identity, cfg.singletons)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of ``step``: a function of the step alone, so a resumed run needs no scheduler
    state. "cosine" decays from lr to 0 along half a cosine over the run (the last steps refine)."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, total_steps)))
    return cfg.lr


def prepare_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder that holds another run unless resuming it or told to overwrite
    it; with ``overwrite`` the old run's files go first, so no stale eval.json or roc.png stays beside
    the new checkpoint."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder: choose another --out")
    if resume:
        return
    present = [name for name in RUN_FILES if (out / name).exists()]
    if present and not overwrite:
        raise RunExistsError(
            f"{out} already holds a run ({', '.join(present)}); continue it with --resume, "
            f"replace it with --overwrite, or choose another --out"
        )
    for name in present:
        (out / name).unlink()


def network_input(cfg: TrainConfig, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standardised network input from uint8 images. In training (``generator`` given) with ``cfg.augment``:
    random crops of ``input_size`` and flips, or, with no ``input_size`` smaller than the image, flips and
    shifts of up to 4 pixels; otherwise (evaluation, or no ``augment``) the centre crop."""
    x = standardize(images)
    size = cfg.input_size or images.shape[-1]
    if generator is None or not cfg.augment:
        return center_crop(x, size)
    if cfg.rotate or cfg.scale:
        x = random_affine(x, generator, cfg.rotate, cfg.scale)
    if size < images.shape[-1]:
        return random_crop_flip(x, size, generator, cfg.hflip)
    return augment(x, generator, hflip=cfg.hflip)


class _Indexed(torch.utils.data.Dataset):
    """The training images, fetched a whole batch at a time (``__getitems__``) by the DataLoader."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return int(self.labels.numel())

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]

    def __getitems__(self, rows: list[int]):
        idx = torch.as_tensor(rows, dtype=torch.int64)
        return self.images[idx], self.labels[idx], idx


class _StepBatches(torch.utils.data.Sampler):
    """The index list of every step from ``start`` to ``stop``, each drawn from its own step generator.
    A DataLoader iterates its batch sampler in the main process (workers only fetch), so the generator
    of each step, right after its draw, waits in ``after_draw[step]``: degradation and augmentation
    continue that stream, and a resumed run replays it exactly."""

    def __init__(self, sampler, seed: int, rank: int, start: int, stop: int) -> None:
        self.sampler, self.seed, self.rank, self.start, self.stop = sampler, seed, rank, start, stop
        self.after_draw: dict[int, torch.Generator] = {}

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        for step in range(self.start, self.stop):
            generator = step_generator(self.seed, step, self.rank)
            if isinstance(self.sampler, PhasedSampler):
                idx = self.sampler.batch_at(step, generator)
            else:
                idx = self.sampler.batch(generator)
            self.after_draw[step] = generator
            yield idx.tolist()


def _as_is(batch):
    return batch


def batch_loader(data: ImageSet, sampler, cfg: TrainConfig, rank: int, start: int, stop: int, workers: int = 0):
    """(torch DataLoader of (uint8 images, labels, indices) for steps start..stop-1, its batch plan).
    With the images in memory a batch is one gather, so ``workers`` = 0 (the default) is fastest on 2
    cores: worker processes would compete with the network's threads."""
    plan = _StepBatches(sampler, cfg.seed, rank, start, stop)
    return torch.utils.data.DataLoader(
        _Indexed(data.images, data.labels), batch_sampler=plan, collate_fn=_as_is, num_workers=workers
    ), plan


def default_out() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


class _StopFlag:
    """SIGINT and SIGTERM handler for the loop: the first Ctrl-C (or a SIGTERM, as a scheduler or
    ``kill`` sends) asks the loop to stop at the next step boundary (so the checkpoint is consistent);
    a second one raises KeyboardInterrupt as usual. ``signum``: the signal that asked."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0
        self._previous: dict = {}

    def __enter__(self) -> _StopFlag:
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handler, signals behave as usual
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum
        name = signal.Signals(signum).name
        print(
            f"\n{name}: finishing this step, saving the checkpoint, then stopping (a second signal aborts)", flush=True
        )

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The random stream of one step (batch draw, degradation, augmentation) on one rank: a function of (seed,
    step, rank) alone, so a resumed run, or any rank, needs no saved generator state."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + rank)


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    workers: int = 0,
) -> RunResult:
    """Train ``cfg`` into the run folder ``out`` (default ``runs/<timestamp>``); see the module docstring.
    A folder that already holds a run is refused unless ``resume`` or ``overwrite``. ``cache_dir`` and
    ``workers``: where LFW's decoded images are cached, and DataLoader worker processes (neither changes
    what is trained). Under torchrun (WORLD_SIZE > 1) every rank calls this; see facenet_ext.train.world."""
    world = init_world()
    out = Path(out) if out is not None else default_out()
    ckpt_path = out / "checkpoint.pt"
    saved = None
    if resume:
        saved = load_checkpoint(ckpt_path)
        check_same_config(_comparable(saved["config"], out), _comparable(cfg.to_dict(), out), ignore=RESUMABLE_CHANGES)
    elif world.main:
        prepare_dir(out, resume=resume, overwrite=overwrite)
    progress = progress and world.main

    data, train_set, held_set, pairs = load_sets(cfg, cache_dir, max(workers, 2), progress)
    # Seeded after loading, so that whatever loading did (building the LFW cache or reading it) leaves the
    # run's random stream alone: the same command gives the same run with or without a cache.
    torch.manual_seed(cfg.seed)
    if cfg.people_fraction < 1:
        train_set = subset_people(train_set, cfg.people_fraction, cfg.seed)
    if (cfg.loss != "triplet" or cfg.arcface_fraction) and not cfg.singletons:
        # a margin-softmax head over the people with min_class_images (default 2) or more images;
        # --singletons N makes the single-image people classes too (each pulls its own centre and repels
        # everyone else's images)
        counts = train_set.counts().tolist()
        train_set = train_set.select_identities(
            [n for n, c in zip(train_set.identities, counts) if c >= cfg.min_class_images]
        )
    if cfg.new_identities:
        train_set = with_new_identities(train_set, cfg.new_identities.split(","))
    sampler = build_sampler(cfg, train_set.labels)
    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(train_set) / (sampler.batch_size * world.size)))
    total_steps = cfg.epochs * steps_per_epoch
    switch_step = round(cfg.arcface_fraction * total_steps)  # ArcFace before it, triplets from it on
    if isinstance(sampler, PhasedSampler):
        sampler.switch_step = switch_step
    in_channels = train_set.images.shape[1]
    net = build_model(cfg, in_channels)
    objective = Objective(cfg, len(train_set.identities), world.size, switch_step)
    if cfg.loss == "magface":  # mid-range of MagFace's [l_a, u_a], where the magnitude gets gradients
        net.init_feature_magnitude((objective.head.l_a + objective.head.u_a) / 2)
    optimizer = make_optimizer(cfg, [*net.parameters(), *objective.parameters()])
    model = torch.nn.parallel.DistributedDataParallel(net) if world.size > 1 else net

    def held_out_metrics() -> dict:
        return evaluate(
            embed_images(net, held_set.images, input_size=cfg.input_size, flip=cfg.flip_eval), held_set, cfg.seed, pairs
        )

    if saved is not None:
        net.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        step, history, metrics = saved["step"], saved["history"], saved["metrics"]
    else:
        step = 0
        history = {
            "epoch_loss": [],
            "epoch_aux": [],
            "aux_name": objective.aux_name,
            "epoch_images_per_s": [],
            "heldout": [],
            "partial": None,
        }
        metrics = {
            "config": cfg.to_dict(),
            "data": _describe(data, train_set, held_set, pairs),
            "world_size": world.size,
        }
        if world.main:
            metrics["raw_pixels"] = evaluate(
                raw_pixel_embeddings(held_set.images, cfg.input_size), held_set, cfg.seed, pairs
            )
            metrics["before"] = held_out_metrics()
            history["heldout"].append(_pick(metrics["before"]))

    def save() -> None:
        state = {
            "config": cfg.to_dict(),
            "model": net.state_dict(),
            "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
        }
        save_checkpoint(ckpt_path, {**state, "step": step, "history": history, "metrics": metrics})

    def checkpoint() -> None:
        if world.main:
            save()
        world.barrier()

    from tqdm.auto import tqdm  # imported on use: about 0.4 s that --help does not need

    interrupted, latest = False, None
    timer = StepTimer()  # this session's steps (a resumed run times its own steps only)
    model.train()
    loader, plan = batch_loader(train_set, sampler, cfg, world.rank, step, total_steps, workers)
    batches = iter(loader)
    with _StopFlag() as stop:
        while step < total_steps and not interrupted:
            epoch = step // steps_per_epoch
            acc = history["partial"] or {"loss": 0.0, "aux": 0.0, "images": 0, "seconds": 0.0, "steps": 0}
            bar = tqdm(
                total=steps_per_epoch,
                initial=step % steps_per_epoch,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not progress,
                leave=False,
                dynamic_ncols=True,
            )
            while step < (epoch + 1) * steps_per_epoch:
                t0 = time.perf_counter()
                timer.start()
                images, labels, idx = next(batches)
                generator = plan.after_draw.pop(step)  # the stream that drew this batch, continued
                if cfg.degrade:
                    images, _ = degrade(images, cfg.degrade, generator, cfg.degrade_kinds)
                x = network_input(cfg, images, generator)
                timer.mark("data")
                loss, aux = objective(model, x, labels, step, timer)
                loss.backward()
                timer.mark("backward")
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(cfg, step, total_steps)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                timer.mark("optimizer")
                timer.end_step()
                step += 1
                seconds = time.perf_counter() - t0
                step_loss, images = world.mean(loss.item()), idx.numel() * world.size
                acc = {
                    "loss": acc["loss"] + step_loss,
                    "aux": acc["aux"] + float(aux),
                    "images": acc["images"] + images,
                    "seconds": acc["seconds"] + seconds,
                    "steps": acc["steps"] + 1,
                }
                bar.update(1)
                bar.set_postfix(
                    loss=f"{step_loss:.4f}",
                    **{objective.aux_name: f"{float(aux):.2f}"},
                    img_s=f"{images / seconds:.0f}",
                )
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
            history.setdefault("epoch_seconds", []).append(acc["seconds"])
            if world.main:
                latest = held_out_metrics()
                history["heldout"].append(_pick(latest))
            if progress:
                h = history["heldout"][-1]
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: loss {history['epoch_loss'][-1]:.4f}, {objective.aux_name} "
                    f"{history['epoch_aux'][-1]:.2f}, "
                    f"{history['epoch_images_per_s'][-1]:.0f} img/s; held-out VAL@FAR=1e-3 {h['val_at_far_1e-3']:.3f}, "
                    f"10-fold acc {h['accuracy_10fold']:.3f}, AUC {h['auc']:.3f}",
                    flush=True,
                )
            checkpoint()

    if interrupted:
        checkpoint()
        return RunResult(
            out,
            metrics,
            interrupted=True,
            summary=f"interrupted at step {step}/{total_steps}; checkpoint saved to {ckpt_path}",
            main=world.main,
            stop_signal=int(stop.signum or signal.SIGINT),  # another rank's signal: reported as Ctrl-C
        )

    metrics["history"] = {k: v for k, v in history.items() if k != "partial"}
    metrics["steps"] = step
    # training steps only (no evaluation, no data loading before the first step), on this machine's load
    metrics["train_seconds"] = sum(history.get("epoch_seconds", []))
    metrics["step_time"] = timer.to_dict()  # this session's steps, by phase (step_timing)
    if not world.main:
        world.barrier()
        return RunResult(out, metrics, main=False)
    metrics["after"] = latest if latest is not None else held_out_metrics()
    save()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_training(metrics, out / "train.png")
    world.barrier()
    return RunResult(out, metrics, summary=summary_table(metrics))


def summary_table(metrics: dict) -> str:
    """The before/after table printed at the end of a run, then the time per step by phase."""
    columns = {"raw pixels": metrics["raw_pixels"], "untrained": metrics["before"], "trained": metrics["after"]}
    table = metrics_table(columns, "held-out metric")
    if metrics.get("step_time", {}).get("steps"):
        table += "\n" + breakdown_table(metrics["step_time"])
    return table


def _pick(m: dict) -> dict:
    return {k: m[k] for k in METRIC_KEYS}


def _describe(data: ImageSet | None, train_set: ImageSet, held_set: ImageSet, pairs=None) -> dict:
    counts = train_set.counts()
    out = {
        "images": len(data) if data is not None else len(train_set) + len(held_set),
        "identities": len(data.identities)
        if data is not None
        else len(train_set.identities) + len(held_set.identities),
        "train_identities": train_set.identities,
        "heldout_identities": held_set.identities,
        "train_images": len(train_set),
        "train_identities_with_2_or_more_images": int((counts >= 2).sum()),
        "heldout_images": len(held_set),
        "skipped_files": [p for p, _ in (data.skipped if data is not None else train_set.skipped)],
    }
    if pairs is not None:
        out["test_pairs_same"], out["test_pairs_diff"] = int(pairs.issame.sum()), int((~pairs.issame).sum())
    return out


def _comparable(config: dict, out: Path) -> dict:
    """A config with its data path resolved (older checkpoints stored it relative) for the resume check."""
    data = config.get("data")
    return {**config, "data": str(resolve_data(data, out)) if data else data}


def resolve_data(data: str, run_dir: Path | None = None) -> Path:
    """A checkpoint's data path: absolute as stored; a relative one (older checkpoints) against the
    current directory if it exists there, else against the run folder."""
    path = Path(data).expanduser()
    if path.is_absolute() or path.exists() or run_dir is None:
        return path.resolve()
    return (Path(run_dir) / path).resolve()
