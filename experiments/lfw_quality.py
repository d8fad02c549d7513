"""MagFace's feature magnitude as a face-quality score for people never trained on,
learned from LFW's identities.

    python experiments/lfw_quality.py --data DATA/lfw --out runs/lfw-quality \\
        [--fold 0] [--seeds 0,1,2] [--arcface-seeds 0] [--people-fractions 0.25,0.5] [--variant NAME:KEY=VALUE,...]

Trains what is missing under OUT/runs (a finished run, one with metrics.json, is reused; an interrupted
one continues), then scores. Every run trains on View 2 with ``--fold`` held out: the people of the other
nine sets of people.txt. MagFace runs use the LFW recipe with the MagFace settings over it
(:data:`facenet_ext.train.recipes.MAGFACE_LFW`, what ``train --loss magface --protocol ...`` uses), one
per seed; ArcFace runs use the LFW recipe as it is (its best: no degraded training images), whose plain
feature norm is the baseline quality score. ``--people-fractions`` adds MagFace runs (first seed) on a
seeded share of the training people, for the curve of quality AUC against the number of identities.
``--variant name:key=value,...`` adds a MagFace run (first seed) with settings changed (e.g.
``nodeg:degrade=0`` or ``min5:min_class_images=5``), reported beside the others.

Scoring, on the held-out people (set ``--fold`` of people.txt; at most 20 images each): a copy with half
of the images degraded (blur, noise, occlusion, low resolution, JPEG; a tenth each; seeded by the run's
seed); per model the AUC of "quality ranks clean above degraded", overall and per kind, the median
quality per kind, error-versus-reject curves (FNMR at the FAR 1e-2 threshold fixed on the full set) on
the degraded copy and on the unmodified images, against random rejection (20 draws), and verification
with two templates per person (people with 4+ images): magnitude-weighted vs mean templates vs single
images. Verification accuracy on the fold's 600 pairs comes from each run's metrics.json.

Writes to OUT: results.json (everything), results.md (the tables), erc_degraded.png, erc_natural.png,
quality_grid.png (the held-out images of lowest and highest MagFace quality, first seed) and, with
--people-fractions, identity_curve.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facenet_ext.quality import plot_erc, plot_quality_grid, quality_auc_by_kind
from facenet_ext.train.config import TrainConfig
from facenet_ext.train.data.degrade import DEGRADATIONS
from facenet_ext.train.lfw.quality import (
    degraded_copy,
    features_of,
    heldout_people,
    load_run,
    quality_report,
    training_people_sample,
)
from facenet_ext.train.loop import train
from facenet_ext.train.recipes import LFW, MAGFACE_LFW


def ms(values, digits: int = 3) -> str:
    """mean ± std (population) of the finite values, or the one value."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "-"
    return f"{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    fields = TrainConfig.__dataclass_fields__
    overrides = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise ValueError(f"--variant {text!r}: {key!r} is not a training setting")
        default = getattr(TrainConfig(), key)
        kind = type(default) if default is not None else float
        overrides[key] = (
            value if kind is str else (value.lower() in ("1", "true", "yes") if kind is bool else kind(value))
        )
    if not name or not overrides:
        raise ValueError(f"--variant: expected NAME:KEY=VALUE[,KEY=VALUE], got {text!r}")
    return name, overrides


def config(data: str, fold: int, loss: str, seed: int, **overrides) -> TrainConfig:
    recipe = {**LFW, **(MAGFACE_LFW if loss == "magface" else {})}
    return TrainConfig(
        **{
            **recipe,
            "protocol": "view2",
            "fold": fold,
            "data": str(Path(data).resolve()),
            "loss": loss,
            "seed": seed,
            **overrides,
        }
    )


def ensure_run(cfg: TrainConfig, run: Path, cache_dir, threads: int | None) -> Path:
    if (run / "metrics.json").is_file():
        saved = json.loads((run / "metrics.json").read_text())["config"]
        differ = {k: (saved.get(k), v) for k, v in cfg.to_dict().items() if saved.get(k) != v}
        if differ:
            raise SystemExit(
                f"{run} was trained with other settings (saved, planned): {differ}; move it away or use another --out"
            )
        print(f"{run}: finished earlier, reused", flush=True)
        return run
    partial = (run / "checkpoint.pt").is_file()
    print(f"{run}: {'resuming' if partial else 'training'}", flush=True)
    t0 = time.perf_counter()
    result = train(cfg, run, resume=partial, overwrite=not partial, progress=False, cache_dir=cache_dir)
    if result.interrupted:
        sys.exit(130)
    print(
        f"{run}: accuracy {result.metrics['after']['accuracy_10fold']:.4f} in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the LFW folder (pairs.txt, people.txt, images/)")
    p.add_argument("--out", default="runs/lfw-quality")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--arcface-seeds",
        default="0",
        help="ArcFace runs (the baseline); seed s scores against ArcFace seed s, "
        "or the first ArcFace seed when s has none",
    )
    p.add_argument(
        "--people-fractions", default="", help="e.g. 0.25,0.5: MagFace runs on that share of the training people"
    )
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    p.add_argument("--fraction", type=float, default=0.5, help="share of the held-out images degraded")
    p.add_argument("--far", type=float, default=1e-2)
    p.add_argument("--max-per-person", type=int, default=20)
    p.add_argument("--cache", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--score-only", action="store_true", help="score the finished runs under OUT/runs, train nothing")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, runs_dir = Path(args.out), Path(args.out) / "runs"
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    arc_seeds = [int(s) for s in args.arcface_seeds.split(",") if s]
    fractions = [float(f) for f in args.people_fractions.split(",") if f]
    variants = [parse_variant(v) for v in args.variant]

    plan: dict[str, TrainConfig] = {}
    for s in seeds:
        plan[f"magface-s{s}"] = config(args.data, args.fold, "magface", s)
    for s in arc_seeds:
        plan[f"arcface-s{s}"] = config(args.data, args.fold, "arcface", s)
    for f in fractions:
        plan[f"magface-people{f:g}-s{seeds[0]}"] = config(args.data, args.fold, "magface", seeds[0], people_fraction=f)
    for name, overrides in variants:
        plan[f"magface-{name}-s{seeds[0]}"] = config(args.data, args.fold, "magface", seeds[0], **overrides)
    for name, cfg in plan.items():
        run = runs_dir / name
        if args.score_only:
            if not (run / "metrics.json").is_file():
                print(f"{run}: not finished, left out", flush=True)
            continue
        ensure_run(cfg, run, args.cache, args.threads)
    done = {n: runs_dir / n for n in plan if (runs_dir / n / "metrics.json").is_file()}

    first = next(iter(plan.values()))
    held = heldout_people(args.data, args.fold, first, cache_dir=args.cache, max_per_person=args.max_per_person)
    print(f"held-out people of set {args.fold}: {len(held.identities)} people, {len(held)} images", flush=True)
    loaded = {n: load_run(r) for n, r in done.items()}
    feats: dict[tuple[str, int], tuple] = {}

    def features(name: str, seed: int):
        if (name, seed) not in feats:
            cfg, model, _ = loaded[name]
            qs = degraded_copy(held, args.fraction, seed)
            feats[(name, seed)] = (features_of(model, cfg, qs.clean.images), features_of(model, cfg, qs.degraded))
        return feats[(name, seed)]

    results: dict[str, dict] = {}
    for name in done:
        if not name.startswith("magface"):
            continue
        seed = loaded[name][0].seed
        arc = (
            f"arcface-s{seed}"
            if f"arcface-s{seed}" in done
            else next((n for n in done if n.startswith("arcface")), None)
        )
        models = {"magface": features(name, seed), **({"arcface": features(arc, seed)} if arc else {})}
        t0 = time.perf_counter()
        report = quality_report(models, degraded_copy(held, args.fraction, seed), seed=seed, far=args.far)
        cfg, model, metrics = loaded[name]
        seen = degraded_copy(training_people_sample(cfg, seed=seed, cache_dir=args.cache), args.fraction, seed + 1)
        seen_q = features_of(model, cfg, seen.degraded).norm(dim=1)
        report["magface"]["quality_auc_seen_people"] = quality_auc_by_kind(
            seen_q.numpy(), seen.kind.numpy(), DEGRADATIONS
        )
        results[name] = {
            "seed": seed,
            "arcface_run": arc,
            "people_fraction": cfg.people_fraction,
            "train_classes": _classes(metrics),
            "report": report,
            "accuracy": metrics["after"]["accuracy_10fold"],
            "auc_pairs": metrics["after"]["auc"],
            "train_seconds": metrics.get("train_seconds"),
            "config": metrics["config"],
            "arcface_accuracy": loaded[arc][2]["after"]["accuracy_10fold"] if arc else None,
        }
        print(
            f"{name}: scored in {time.perf_counter() - t0:.0f} s; quality AUC "
            f"{report['magface']['quality_auc']['all']:.3f}",
            flush=True,
        )

    main_runs = [n for n in results if n in {f"magface-s{s}" for s in seeds}]
    if main_runs:
        _plots(results, main_runs, held, features, out)
    if fractions and main_runs:
        _identity_curve(results, main_runs[0], fractions, seeds[0], out / "identity_curve.png")
    table = _tables(results, main_runs, held, args)
    (out / "results.md").write_text(table + "\n")
    summary = {
        "args": vars(args),
        "heldout": {"people": len(held.identities), "images": len(held)},
        "results": results,
        "arcface_runs": {n: loaded[n][2]["after"] for n in done if n.startswith("arcface")},
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    print(table)
    print(
        f"wrote {out}: results.json, results.md, erc_degraded.png, erc_natural.png, quality_grid.png"
        + (", identity_curve.png" if fractions else "")
    )


def _classes(metrics: dict) -> int:
    return len(metrics["data"]["train_identities"]) if metrics else 0


def _plots(results, main_runs, held, features, out: Path) -> None:
    r0 = results[main_runs[0]]["report"]
    for setting in ("degraded", "natural"):
        curves = {}
        for model, r in r0.items():
            erc = {k: np.asarray(v) for k, v in r[f"erc_{setting}"].items()}
            label = "MagFace magnitude" if model == "magface" else "ArcFace feature norm"
            curves[label] = erc
        rnd = np.asarray(r0["magface"][f"erc_{setting}_random_fnmr"])
        base = {k: np.asarray(v) for k, v in r0["magface"][f"erc_{setting}"].items()}
        curves["random rejection (MagFace emb., mean of 20)"] = {**base, "fnmr": rnd.mean(0)}
        plot_erc(curves, out / f"erc_{setting}.png")
    seed = results[main_runs[0]]["seed"]
    clean_f, _ = features(main_runs[0], seed)
    plot_quality_grid(held.images, clean_f.norm(dim=1).numpy(), out / "quality_grid.png", n=16)


def _identity_curve(results, main, fractions, seed, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [f"magface-people{f:g}-s{seed}" for f in fractions if f"magface-people{f:g}-s{seed}" in results] + [main]
    xs = [results[n]["train_classes"] for n in names]
    fig = Figure(figsize=(5, 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(
        xs,
        [results[n]["report"]["magface"]["quality_auc"]["all"] for n in names],
        marker="o",
        label="degraded copy, all kinds",
    )
    for k in DEGRADATIONS:
        ax.plot(xs, [results[n]["report"]["magface"]["quality_auc"][k] for n in names], marker=".", alpha=0.6, label=k)
    ax.axhline(0.8, color="k", lw=0.6, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("training identities (classes of the MagFace head)")
    ax.set_ylabel("quality AUC on unseen people")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def _tables(results: dict, main_runs: list[str], held, args) -> str:
    kinds = ("all", *DEGRADATIONS)
    lines = [
        f"Held-out: the {len(held.identities)} people of View 2 set {args.fold} ({len(held)} images, at most "
        f"{args.max_per_person} each); degraded copy: {args.fraction:.0%} of them, a fifth each by "
        f"{', '.join(DEGRADATIONS)} (seeded by the run's seed). ERC threshold at FAR {args.far:g}.",
        "",
        "Per run:",
        "",
        "| run | classes | pairs acc (ArcFace) | quality AUC " + " / ".join(kinds) + " | same, training people "
        "| ArcFace norm AUC all "
        "| median quality clean / "
        + " / ".join(DEGRADATIONS)
        + " | natural FNMR 0% → 20% (random) | degraded FNMR 0% → 20% (random) "
        "| templates AUC magnitude / mean / single (clean) | same, degraded |",
        "|---|---:|---:|---|---|---:|---|---|---|---|---|",
    ]
    for name, res in results.items():
        m, a = res["report"]["magface"], res["report"].get("arcface")
        n, d = m["erc_natural_summary"], m["erc_degraded_summary"]
        tc, td = m["templates_clean"], m["templates_degraded"]
        acc_a = f" ({res['arcface_accuracy']:.3f})" if res["arcface_accuracy"] is not None else ""
        auc_txt = " / ".join(f"{m['quality_auc'][k]:.2f}" for k in kinds)
        med = " / ".join(f"{m['median_quality'][k]:.1f}" for k in ("clean", *DEGRADATIONS))
        arc_auc = f"{a['quality_auc']['all']:.2f}" if a else "-"
        seen_txt = " / ".join(f"{m['quality_auc_seen_people'][k]:.2f}" for k in kinds)
        lines.append(
            f"| {name} | {res['train_classes']} | {res['accuracy']:.3f}{acc_a} | {auc_txt} | {seen_txt} | {arc_auc} | "
            f"{med} | {n['fnmr_0']:.3f} → {n['fnmr_20']:.3f} ({n['random_fnmr_20']:.3f}) | "
            f"{d['fnmr_0']:.3f} → {d['fnmr_20']:.3f} ({d['random_fnmr_20']:.3f}) | "
            f"{tc['magnitude']['auc']:.4f} / {tc['mean']['auc']:.4f} / {tc['single']['auc']:.4f} | "
            f"{td['magnitude']['auc']:.4f} / {td['mean']['auc']:.4f} / {td['single']['auc']:.4f} |"
        )
    if not main_runs:
        return "\n".join(lines)
    R = [results[n] for n in main_runs]
    M = [r["report"]["magface"] for r in R]
    A = [r["report"]["arcface"] for r in R if "arcface" in r["report"]]

    def row(label, target, values, ok=None, digits=3):
        status = "" if ok is None else (" met" if ok else " **missed**")
        lines.append(f"| {label} | {target} | {ms(values, digits)}{status} |")

    lines += [
        "",
        f"Targets, MagFace, {len(R)} seed(s) ({', '.join(str(r['seed']) for r in R)}), mean ± std:",
        "",
        "| figure | target | MagFace |",
        "|---|---|---:|",
    ]
    auc_all = [m["quality_auc"]["all"] for m in M]
    row("quality AUC, clean > degraded, overall", "≥ 0.80", auc_all, np.mean(auc_all) >= 0.80)
    row("same, on the training people (seen; control)", "—", [m["quality_auc_seen_people"]["all"] for m in M])
    for k in DEGRADATIONS:
        v = [m["quality_auc"][k] for m in M]
        row(f"quality AUC, {k}", "≥ 0.70", v, np.mean(v) >= 0.70)
    red = [m["erc_natural_summary"]["reduction_20"] for m in M]
    rnd = [m["erc_natural_summary"]["random_reduction_20"] for m in M]
    row("natural images: FNMR reduction at 20% rejected", "—", red)
    row("same, random rejection (mean of 20 draws)", "—", rnd)
    ok = np.mean(red) > 0 and np.mean(red) >= 2 * max(np.mean(rnd), 0)
    lines.append(
        f"| MagFace's reduction against random's | ≥ 2x random's | {np.mean(red):.3f} vs {np.mean(rnd):.3f}"
        f"{' met' if ok else ' **missed**'} |"
    )
    tm = [m["templates_clean"]["magnitude"]["auc"] for m in M]
    tmean = [m["templates_clean"]["mean"]["auc"] for m in M]
    row("templates AUC, magnitude-weighted (clean)", "≥ mean templates", tm, np.mean(tm) >= np.mean(tmean), digits=4)
    row("templates AUC, mean (clean)", "—", tmean, digits=4)
    row("templates AUC, single images (clean)", "—", [m["templates_clean"]["single"]["auc"] for m in M], digits=4)
    tdm = [m["templates_degraded"]["magnitude"]["auc"] for m in M]
    tdmean = [m["templates_degraded"]["mean"]["auc"] for m in M]
    row(
        "templates AUC, magnitude-weighted (degraded copy)",
        "≥ mean templates",
        tdm,
        np.mean(tdm) >= np.mean(tdmean),
        digits=4,
    )
    row("templates AUC, mean (degraded copy)", "—", tdmean, digits=4)
    row(
        "templates AUC, single images (degraded copy)",
        "—",
        [m["templates_degraded"]["single"]["auc"] for m in M],
        digits=4,
    )
    acc = [r["accuracy"] for r in R]
    arc_acc = sorted({r["arcface_run"]: r["arcface_accuracy"] for r in R if r["arcface_run"]}.values())
    row(
        "LFW fold accuracy (600 pairs)",
        "within 0.02 of ArcFace",
        acc,
        (np.mean(arc_acc) - np.mean(acc) <= 0.02) if arc_acc else None,
    )
    row("ArcFace accuracy, same fold", "—", arc_acc)
    if A:
        lines += [
            "",
            "ArcFace's plain feature norm as the quality score, same held-out sets:",
            "",
            "| figure | ArcFace norm |",
            "|---|---:|",
        ]
        lines.append(f"| quality AUC overall | {ms([a['quality_auc']['all'] for a in A])} |")
        for k in DEGRADATIONS:
            lines.append(f"| quality AUC, {k} | {ms([a['quality_auc'][k] for a in A])} |")
        lines.append(f"| natural FNMR reduction at 20% | {ms([a['erc_natural_summary']['reduction_20'] for a in A])} |")
        lines.append(
            f"| degraded FNMR reduction at 20% | {ms([a['erc_degraded_summary']['reduction_20'] for a in A])} |"
        )
    lines += [
        "",
        "Error-versus-reject, FNMR at 0 / 10 / 20 / 30 % rejected (mean over seeds):",
        "",
        "| set | MagFace magnitude | random (MagFace emb.) | ArcFace norm |",
        "|---|---|---|---|",
    ]
    for setting in ("natural", "degraded"):

        def curve(reports, prefix="", setting=setting):
            return " / ".join(
                f"{np.mean([r[f'erc_{setting}_summary'][f'{prefix}fnmr_{p}'] for r in reports]):.3f}"
                for p in (0, 10, 20, 30)
            )

        lines.append(f"| {setting} | {curve(M)} | {curve(M, 'random_')} | {curve(A) if A else '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
