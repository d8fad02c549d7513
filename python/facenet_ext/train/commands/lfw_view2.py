"""``python -m facenet_ext lfw-view2 --data LFW --out DIR``: LFW View 2, "unrestricted, no outside data".

For each fold k (``--folds``, default all ten): train on the people of the other nine sets of
``people.txt`` (the LFW recipe, :data:`facenet_ext.train.recipes.LFW`; any training option overrides
it, e.g. ``--epochs`` for a smaller budget) into ``DIR/fold-k``, and test on fold k's 600 pairs of
``pairs.txt``. The accuracy of fold k is the 10-fold accuracy over its 600 pairs (threshold chosen on
nine tenths of them, applied to the rest; each fold is its own model, so no threshold crosses folds).

The options are ``train``'s training settings (:func:`facenet_ext.train.commands.train.add_training_options`);
``train``'s ``--quick``, ``--protocol``, ``--fold``, ``--holdout``, ``--resume`` and ``--overwrite`` have
no place here (the folds and their state decide them).

Resumable per fold: a fold whose ``metrics.json`` is written is finished and never trained again; a
fold with only a checkpoint (interrupted) continues from it; the others start. Writes
``DIR/view2.json`` (per fold and mean ± std of accuracy, AUC and VAL@FAR=1e-3, next to raw pixels),
``DIR/view2.md`` (the table) and ``DIR/roc.png`` (every fold's ROC).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CheckpointError
from ..loop import train
from .train import add_training_options, config_from_args

KEYS = ("accuracy_10fold", "auc", "val_at_far_1e-3")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        help="the LFW folder: pairs.txt, people.txt and the person folders (under images/ or directly)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="DIR/fold-k: fold k's run folder (train's files, eval's "
        "files, view2_fold.json); DIR/view2.json, view2.md and "
        "roc.png: the summary of the finished folds",
    )
    p.add_argument("--folds", default="0-9", help="folds to run: '0-9', '0,3,5' (default 0-9, all ten)")
    add_training_options(p, lfw_only=True)


def parse_folds(text: str) -> list[int]:
    folds: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            raise ValueError(f"--folds: expected e.g. '0-9' or '0,3,5', got {text!r}") from None
        folds += range(lo, hi + 1)
    if not folds or any(not 0 <= f <= 9 for f in folds):
        raise ValueError(f"--folds: folds are 0..9, got {text!r}")
    return sorted(set(folds))


def fold_config(args: argparse.Namespace, fold: int):
    ns = argparse.Namespace(**{**vars(args), "protocol": "view2", "fold": fold})
    return config_from_args(ns)


def fold_state(run: Path) -> str:
    """'done' (metrics.json written), 'partial' (a checkpoint only) or 'new'."""
    if (run / "metrics.json").is_file():
        return "done"
    return "partial" if (run / "checkpoint.pt").is_file() else "new"


def run(args: argparse.Namespace) -> int:
    # imported on use: it loads scikit-learn (about 4 s), which --help does not need
    from ..lfw.protocol import is_lfw_root

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        if not is_lfw_root(args.data):
            raise ValueError(
                f"{args.data} is not an LFW folder (it needs pairs.txt, people.txt and the person folders)"
            )
        folds = parse_folds(args.folds)
        for k in folds:
            run_dir = out / f"fold-{k}"
            state = fold_state(run_dir)
            if state == "done":
                print(f"fold {k}: finished earlier ({run_dir / 'metrics.json'}), not trained again", flush=True)
                if not (run_dir / "view2_fold.json").is_file():  # stopped between training and its ROC
                    _record_fold(run_dir, None, args.cache)
                continue
            print(f"fold {k}: {'resuming' if state == 'partial' else 'training'} in {run_dir}", flush=True)
            t0 = time.perf_counter()
            result = train(
                fold_config(args, k),
                run_dir,
                resume=state == "partial",
                overwrite=state == "new",
                progress=not args.no_progress,
                cache_dir=args.cache,
                workers=args.workers,
            )
            if result.interrupted:
                print(result.summary)
                print(f"resume with the same command: finished folds are kept, fold {k} continues")
                return 128 + result.stop_signal
            _record_fold(run_dir, time.perf_counter() - t0, args.cache)
            print(
                f"fold {k}: accuracy {result.metrics['after']['accuracy_10fold']:.4f}, AUC "
                f"{result.metrics['after']['auc']:.4f}",
                flush=True,
            )
        summary = summarize(out)
    except (CheckpointError, FileNotFoundError, NotADirectoryError, FileExistsError, ValueError) as exc:
        print(f"facenet-ext lfw-view2: {exc}", file=sys.stderr)
        return 2
    print(summary["table"])
    print(f"results in {out}: view2.json, view2.md, roc.png")
    return 0


def _record_fold(run_dir: Path, seconds: float | None, cache_dir) -> None:
    """The fold's ROC (for roc.png) and its wall time, beside its metrics."""
    # imported on use: it loads scikit-learn (about 4 s), which --help does not need
    from ..checkpoint_eval import evaluate_checkpoint

    report = evaluate_checkpoint(run_dir / "checkpoint.pt", out=run_dir, cache_dir=cache_dir)["report"]
    extra = {"wall_seconds_this_session": seconds, "roc": report["roc"]}
    (run_dir / "view2_fold.json").write_text(json.dumps(extra))


def summarize(out: Path) -> dict:
    """view2.json, view2.md and roc.png from every finished fold under ``out``."""
    rows = []
    for k in range(10):
        run_dir = out / f"fold-{k}"
        if fold_state(run_dir) != "done":
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        extra_file = run_dir / "view2_fold.json"
        extra = json.loads(extra_file.read_text()) if extra_file.is_file() else {}
        rows.append(
            {
                "fold": k,
                "model": {key: metrics["after"][key] for key in KEYS},
                "raw_pixels": {key: metrics["raw_pixels"][key] for key in KEYS},
                "steps": metrics["steps"],
                "wall_seconds": extra.get("wall_seconds_this_session"),
                "roc": extra.get("roc"),
            }
        )
    if not rows:
        raise ValueError(f"{out}: no finished fold to summarise")
    stats = {
        name: {
            key: {
                "mean": float(np.mean([r[name][key] for r in rows])),
                "std": float(np.std([r[name][key] for r in rows])),
            }
            for key in KEYS
        }
        for name in ("model", "raw_pixels")
    }
    config = json.loads((out / f"fold-{rows[0]['fold']}" / "metrics.json").read_text())["config"]
    report = {
        "folds": [{k: v for k, v in r.items() if k != "roc"} for r in rows],
        "n_folds": len(rows),
        "mean_std": stats,
        "config": {k: v for k, v in config.items() if k != "fold"},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "view2.json").write_text(json.dumps(report, indent=2))
    table = _table(rows, stats)
    (out / "view2.md").write_text(table + "\n")
    _plot(rows, out / "roc.png")
    return {"report": report, "table": table}


def _table(rows: list[dict], stats: dict) -> str:
    head = "| fold | accuracy | AUC | VAL@FAR=1e-3 | raw pixels accuracy | raw pixels AUC | steps | wall s |"
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, raw = r["model"], r["raw_pixels"]
        wall = f"{r['wall_seconds']:.0f}" if r["wall_seconds"] is not None else "-"
        lines.append(
            f"| {r['fold']} | {m['accuracy_10fold']:.4f} | {m['auc']:.4f} | {m['val_at_far_1e-3']:.4f} | "
            f"{raw['accuracy_10fold']:.4f} | {raw['auc']:.4f} | {r['steps']} | {wall} |"
        )
    s, raw = stats["model"], stats["raw_pixels"]
    lines.append(
        f"| mean ± std ({len(rows)} folds) | {s['accuracy_10fold']['mean']:.4f} ± {s['accuracy_10fold']['std']:.4f} | "
        f"{s['auc']['mean']:.4f} ± {s['auc']['std']:.4f} | {s['val_at_far_1e-3']['mean']:.4f} ± "
        f"{s['val_at_far_1e-3']['std']:.4f} | "
        f"{raw['accuracy_10fold']['mean']:.4f} ± {raw['accuracy_10fold']['std']:.4f} | {raw['auc']['mean']:.4f} ± "
        f"{raw['auc']['std']:.4f} | | |"
    )
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    # imported on use: it loads scikit-learn (about 4 s), which --help does not need
    from ...eval import plot_roc

    curves = {
        f"fold {r['fold']} (AUC {r['model']['auc']:.3f})": (np.array(r["roc"]["far"]), np.array(r["roc"]["val"]))
        for r in rows
        if r.get("roc")
    }
    if curves:
        plot_roc(curves, path)
