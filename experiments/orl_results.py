"""The numbers in RESULTS.md: the reference trainer on ORL (s1-s30 train, s31-s40 held out).

    python experiments/orl_results.py --data ../shared/data --out results-orl [--seeds 0,1,2] [--epochs 40]

For each loss (triplet with semi-hard mining, ArcFace, MagFace) and seed: one training run with the same
network and budget (NN2 width 0.25 depth 2, 64x64 grayscale, P x K = 15 x 8, --epochs x one pass over the
300 training images, --augment, Adam at 1e-3), then held-out metrics of raw pixels, the untrained and the
trained network. Then, with the seed-0 runs: the cross-dataset evaluation on dlib's faces, and the
degraded-copy quality experiment (experiments/orl_quality.py). Writes OUT/summary.md and every run folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from facenet_ext.train import TrainConfig, train
from facenet_ext.train.checkpoint_eval import evaluate_checkpoint

LOSSES = ("triplet", "arcface", "magface")
KEYS = ("val_at_far_1e-3", "accuracy_10fold", "auc", "eer", "knn_top1", "cluster_f1", "cluster_nmi")


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the folder holding orl_faces/ and dlib_johns/")
    p.add_argument("--out", default="results-orl")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=40)
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]

    runs: dict[str, list[dict]] = {loss: [] for loss in LOSSES}
    for loss in LOSSES:
        for seed in seeds:
            cfg = TrainConfig(
                data=str(data / "orl_faces"),
                epochs=args.epochs,
                augment=True,
                optimizer="adam",
                lr=1e-3,
                loss=loss,
                seed=seed,
            )
            result = train(cfg, out / f"{loss}-seed{seed}", overwrite=True, progress=False)
            runs[loss].append(result.metrics)
            print(
                f"{loss} seed {seed}: " + ", ".join(f"{k} {result.metrics['after'][k]:.3f}" for k in KEYS[:3]),
                flush=True,
            )

    lines = [
        f"ORL held-out s31-s40 (100 images, 450 same / 4500 different pairs); seeds {seeds}; mean ± std over seeds.",
        "",
    ]
    lines.append("| embedding | " + " | ".join(KEYS) + " |")
    lines.append("|---|" + "---:|" * len(KEYS))
    first = runs["triplet"][0]
    lines.append("| raw pixels (L2-normalised) | " + " | ".join(f"{first['raw_pixels'][k]:.3f}" for k in KEYS) + " |")
    for loss in LOSSES:
        lines.append(
            f"| {loss}, untrained | " + " | ".join(_mean_std([m["before"][k] for m in runs[loss]]) for k in KEYS) + " |"
        )
        lines.append(
            f"| {loss}, trained | " + " | ".join(_mean_std([m["after"][k] for m in runs[loss]]) for k in KEYS) + " |"
        )
    speeds = {
        loss: statistics.mean(statistics.mean(m["history"]["epoch_images_per_s"]) for m in runs[loss])
        for loss in LOSSES
    }
    lines += [
        "",
        "Training throughput (mean images/s over epochs and seeds): "
        + ", ".join(f"{k} {v:.0f}" for k, v in speeds.items()),
    ]

    lines += [
        "",
        f"Cross-dataset: the ORL-trained models (seed {seeds[0]}) on dlib_johns (5 people x 11 in-the-wild RGB photos, "
        "converted to grayscale), all pairs.",
        "",
        "| embedding | " + " | ".join(KEYS) + " |",
        "|---|" + "---:|" * len(KEYS),
    ]
    for i, loss in enumerate(LOSSES):
        report = evaluate_checkpoint(
            out / f"{loss}-seed{seeds[0]}" / "checkpoint.pt", str(data / "dlib_johns"), out=out / f"dlib-{loss}"
        )["report"]["metrics"]
        if i == 0:
            lines.append("| raw pixels | " + " | ".join(f"{report['raw pixels'][k]:.3f}" for k in KEYS) + " |")
        lines.append(f"| {loss}, trained on ORL | " + " | ".join(f"{report['model'][k]:.3f}" for k in KEYS) + " |")

    quality_runs = [str(out / f"{loss}-seed{seeds[0]}") for loss in LOSSES]
    script = Path(__file__).with_name("orl_quality.py")
    subprocess.run([sys.executable, str(script), *quality_runs, "--out", str(out / "quality")], check=True)
    lines += [
        "",
        "Quality (feature norm) on a degraded copy of the held-out set:",
        "",
        (out / "quality" / "results.md").read_text(),
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
