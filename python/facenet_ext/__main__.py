"""``python -m facenet_ext`` / ``facenet-ext``: one subcommand per task.

Each entry of ``COMMANDS`` is (help, add_arguments, run); a new subcommand (``train``, ``eval``) is one
more entry. Running this module imports the package first, and the package loads torch and the native
extension ``_C``, so even ``--help`` costs an ``import torch`` (about 2 s on 2 busy cores). Nothing more:
what a subcommand needs beyond that (scikit-learn, matplotlib, the data loaders) is imported inside its
``run``, or inside the function that needs it.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

DEMO_OUT = Path("runs") / "demo"


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, wrapping help text without splitting an option at its hyphens
    (``--input-`` / ``size``)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    from .bench.runner import add_arguments

    add_arguments(p)


def _bench(args: argparse.Namespace) -> int:
    from .bench.runner import run

    out = run(args)
    print(f"results: {out / 'results.md'}, {out / 'results.json'}, {out / 'bench.png'}")
    return 0


class _QuickBenchOptions:
    """Takes bench's ``add_argument`` calls for the demo's parser. The demo's benchmark is always the quick
    one, so ``--quick`` is left out and ``--batch`` and ``--device`` state the demo's defaults (``--methods``
    keeps bench's help, which states its default); ``--out`` is left out, as the demo's own ``--out``
    holds everything it writes."""

    def __init__(self, group) -> None:
        self.group = group

    def add_argument(self, *names: str, **kw):
        from .bench.runner import QUICK_BATCHES

        if names[0] in ("--quick", "--out"):
            return None
        if names[0] == "--batch":
            kw["help"] = f"comma-separated batch sizes (default {','.join(map(str, QUICK_BATCHES))})"
        if names[0] == "--device":
            kw["help"] = f"device of the benchmark (default {kw['default']}); the training run is on the CPU"
        return self.group.add_argument(*names, **kw)


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    from .bench.runner import add_arguments
    from .train.commands.demo_lfw import SHORT_RUN

    p.add_argument(
        "--out",
        type=Path,
        default=DEMO_OUT,
        help=f"folder for everything the demo writes: OUT/bench (the benchmark's results.json, results.md, "
        f"bench.png), OUT/train (the training run's checkpoint.pt, metrics.json, train.png) and, when "
        f"it trains one, OUT/lfw-view1 (default {DEMO_OUT})",
    )
    add_arguments(_QuickBenchOptions(p.add_argument_group("benchmark options (step 1 is always bench --quick)")))
    p.epilog = (
        "Step 2 is `train --quick --threads 1` into OUT/train. The LFW line needs lfw/ in the data folder "
        "($FACENET_EXT_DATA, else a shared/data folder in the current folder or one above it): it reports "
        "the newest finished View 1 run under runs/ or OUT, or else makes a short one in OUT/lfw-view1 "
        f"(`train --protocol view1 {' '.join(SHORT_RUN)}`)."
    )


def _demo(args: argparse.Namespace) -> int:
    """The README's first command: the quick benchmark, then a short training run of the reference
    trainer on scikit-learn's bundled digits (no download), evaluated on held-out digits; then, where the
    real face data is present, one line of LFW View 1. Everything goes under ``--out``."""
    print("facenet_ext demo 1/2: quick benchmark of our miners against the pure-Python/PyTorch ones")
    status = _bench(argparse.Namespace(**{**vars(args), "quick": True, "out": args.out / "bench"}))
    if status:
        return status
    print(
        "\nfacenet_ext demo 2/2: short training run (small conv net, ArcFace, bundled digits 0-6 and their mirrored "
        "and turned versions; evaluated on the unseen digits 7-9)"
    )
    from .train.commands.train import add_arguments, run

    train_parser = argparse.ArgumentParser()
    add_arguments(train_parser)
    # one thread: an 8x8 net gains nothing from two, and the demo's numbers then do not depend on the core count
    train_args = ["--quick", "--out", str(args.out / "train"), "--overwrite", "--threads", "1"]
    status = run(train_parser.parse_args(train_args))
    if status:
        return status
    import json

    from .train.commands.demo_lfw import lfw_line
    from .train.commands.demo_notes import note

    below = note(json.loads((args.out / "train" / "metrics.json").read_text()), "digits 7-9")
    if below:
        print(below)

    line = lfw_line(args.out)
    if line:
        print(f"\n{line}")
    return 0


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from .train.commands.train import add_arguments

    add_arguments(p)


def _train(args: argparse.Namespace) -> int:
    from .train.commands.train import run

    return run(args)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    from .train.commands.evaluate import add_arguments

    add_arguments(p)


def _eval(args: argparse.Namespace) -> int:
    from .train.commands.evaluate import run

    return run(args)


def _view2_arguments(p: argparse.ArgumentParser) -> None:
    from .train.commands.lfw_view2 import add_arguments

    add_arguments(p)


def _view2(args: argparse.Namespace) -> int:
    from .train.commands.lfw_view2 import run

    return run(args)


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "bench": ("benchmark the miners and loss against baselines (table + plot)", _bench_arguments, _bench),
    "demo": (
        "the first thing to run: the quick benchmark, a short training run on the bundled digits, and a line "
        "of LFW View 1 where the LFW data is found",
        _demo_arguments,
        _demo,
    ),
    "train": (
        "train the reference NN2-style FaceNet model (default data: scikit-learn's digits)",
        _train_arguments,
        _train,
    ),
    "eval": (
        "evaluate a trained checkpoint on an image folder or a pair list: VAL@FAR, 10-fold accuracy, ROC, "
        "identification, clustering, error-versus-reject",
        _eval_arguments,
        _eval,
    ),
    "lfw-view2": (
        "LFW View 2: train per fold on the other nine folds' people, test on the fold's pairs (resumable)",
        _view2_arguments,
        _view2,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="facenet-ext", description="facenet_ext command-line tools", formatter_class=_HelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter)
        add_arguments(p)
        p.set_defaults(run=run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
