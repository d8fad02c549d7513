"""``python -m facenet_ext`` / ``facenet-ext``: one subcommand per task.

Each entry of ``COMMANDS`` is (help, add_arguments, run); a new subcommand (``train``, ``eval``) is one
more entry. Heavy imports happen inside ``run`` so that ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    from .bench.runner import add_arguments

    add_arguments(p)


def _bench(args: argparse.Namespace) -> int:
    from .bench.runner import run

    out = run(args)
    print(f"results: {out / 'results.md'}, {out / 'results.json'}, {out / 'bench.png'}")
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    from .bench.runner import add_arguments

    add_arguments(p)
    p.set_defaults(quick=True)


def _demo(args: argparse.Namespace) -> int:
    """The README's first command: the quick benchmark, then a short training run of the reference
    trainer on scikit-learn's bundled digits (no download), evaluated on held-out digits; then, where the
    real face data is present, one line of LFW View 1."""
    print("facenet_ext demo 1/2: quick benchmark of our miners against the pure-Python/PyTorch ones")
    status = _bench(args)
    if status:
        return status
    print("\nfacenet_ext demo 2/2: short training run (small conv net, ArcFace, bundled digits 0-6 and their mirrored "
          "and turned versions; evaluated on the unseen digits 7-9)")
    from .train.cli import add_arguments, run

    train_parser = argparse.ArgumentParser()
    add_arguments(train_parser)
    # one thread: an 8x8 net gains nothing from two, and the demo's numbers then do not depend on the core count
    status = run(train_parser.parse_args(["--quick", "--out", "runs/demo", "--overwrite", "--threads", "1"]))
    if status:
        return status
    from .train.demo_lfw import lfw_line

    line = lfw_line()
    if line:
        print(f"\n{line}")
    return 0


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from .train.cli import add_arguments

    add_arguments(p)


def _train(args: argparse.Namespace) -> int:
    from .train.cli import run

    return run(args)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    from .train.evaluate import add_arguments

    add_arguments(p)


def _eval(args: argparse.Namespace) -> int:
    from .train.evaluate import run

    return run(args)


def _view2_arguments(p: argparse.ArgumentParser) -> None:
    from .train.view2 import add_arguments

    add_arguments(p)


def _view2(args: argparse.Namespace) -> int:
    from .train.view2 import run

    return run(args)


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "bench": ("benchmark the miners and loss against baselines (table + plot)", _bench_arguments, _bench),
    "demo": ("quick benchmark + short training run on the bundled digits; the first thing to run", _demo_arguments, _demo),
    "train": ("train the reference NN2-style FaceNet model (default data: scikit-learn's digits)", _train_arguments, _train),
    "eval": ("evaluate a trained checkpoint on an image folder: VAL@FAR, 10-fold accuracy, ROC, clustering", _eval_arguments, _eval),
    "lfw-view2": ("LFW View 2: train per fold on the other nine folds' people, test on the fold's pairs (resumable)",
                  _view2_arguments, _view2),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facenet-ext", description="facenet_ext command-line tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
