"""Turns a sweep's raw results into ``results.json``, ``results.md`` (tables, speed-ups) and ``bench.png``."""

from __future__ import annotations

import json
from pathlib import Path

from .methods import comparisons


def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= 0.9995 * scale or unit == "µs":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 999.5 else f"{v:.0f} {unit}"
    raise AssertionError


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(b) >= 0.9995 * scale:
            v = b / scale
            return f"{v:.3g} {unit}" if v < 999.5 else f"{v:.0f} {unit}"
    return f"{b:.0f} B"


def fmt_ratio(r: float) -> str:
    return f"{r:,.0f}×" if r >= 100 else f"{r:.3g}×"


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _grid(data: dict) -> dict[tuple[str, int], dict]:
    return {(r["method"], r["batch"]): r for r in data["results"] if not r.get("calibration")}


def _cell(rec: dict | None, field: str) -> str:
    if rec is None:
        return "—"
    if rec["status"] == "skipped":
        return rec["reason"].split(" (")[0]
    if rec["status"] in ("error", "unavailable"):
        return rec["status"]
    if field == "median_s":
        return fmt_time(rec["median_s"])
    if field == "peak_bytes":
        return fmt_bytes(rec.get("peak_bytes"))
    return "—" if rec.get("triplets") is None else f"{rec['triplets']:,}"


def speedups(data: dict) -> list[tuple[str, str, dict[int, float]]]:
    """(ours, other, {batch: time(other) / time(ours)}) for every comparison with both sides measured."""
    grid, out = _grid(data), []
    for ours, other in comparisons():
        if ours not in data["methods"] or other not in data["methods"]:
            continue
        ratios = {}
        for b in data["config"]["batches"]:
            x, y = grid.get((ours, b)), grid.get((other, b))
            if x and y and x["status"] == y["status"] == "ok":
                ratios[b] = y["median_s"] / x["median_s"]
        out.append((ours, other, ratios))
    return out


def write_markdown(path: Path, data: dict) -> None:
    env, cfg, methods = data["environment"], data["config"], data["methods"]
    batches, grid = cfg["batches"], _grid(data)
    bi = env["build_info"]
    lb, la = data["load_average_before"], data["load_average_after"]
    lines = [
        "# facenet_ext miner benchmark",
        "",
        f"Command: `{data['command']}` ({data['duration_s']:.0f} s)",
        "",
        f"Machine: {env['device']} · {env['cpu']}, {env['cpu_count']} CPUs, torch threads {env['torch_threads']} · "
        f"load average (1/5/15 min) {lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f} before, {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} "
        "after "
        "(other processes may have been running).",
        "",
        f"Versions: Python {env['python']}, torch {env['torch']}, NumPy {env['numpy']}, "
        f"pytorch-metric-learning {env['pytorch_metric_learning']}; facenet_ext built against torch "
        f"{bi.get('torch_version_built_against')}, CUDA kernels {bi.get('cuda_kernels')}, OpenMP {bi.get('openmp')}.",
        "",
        f"Workload: B embeddings of dimension D = {cfg['dim']}, K = {cfg['per_id']} per identity, {cfg['dtype']}, "
        f"synthetic clustered unit vectors (noise spread {cfg['spread']}), margin 0.2, device {cfg['device']}. "
        f"Median of repeated calls after a warm-up; loss rows run forward and backward. Peak extra memory: "
        + (
            "CUDA `max_memory_allocated` above what was allocated before the call."
            if cfg["device"] == "cuda"
            else "resident-set high-water mark above the level before the call, in a helper process (see "
            "`facenet_ext/bench/memory.py`)."
        )
        + f" Budgets: {fmt_time(cfg['time_budget_s'])} per call, {fmt_bytes(cfg['mem_budget_bytes'])}; "
        '"est. >" marks a call predicted from a smaller batch to exceed one, and not run.',
        "",
        "## Agreement with our ops (checked before timing, float64, small batch)",
        "",
    ]
    lines += _table(
        ["baseline", "verdict", "how its rule differs", "check"],
        [
            [methods[a["method"]]["label"], a["verdict"], methods[a["method"]]["note"], a["detail"]]
            for a in data["agreement"]
        ],
    )
    header = ["method", "job"] + [f"B={b}" for b in batches]
    for title, field in (
        ("Median time per call", "median_s"),
        ("Peak extra memory", "peak_bytes"),
        ("Triplets", "triplets"),
    ):
        lines += ["", f"## {title}", ""]
        lines += _table(
            header,
            [[m["label"], m["job"]] + [_cell(grid.get((k, b)), field) for b in batches] for k, m in methods.items()],
        )
    lines += ["", "## Speed-ups (time of the other / time of ours; the first group does the same job)", ""]
    rows = []
    for ours, other, ratios in speedups(data):
        floor = methods[other]["family"] == "floor"
        cells = [
            (f"{1 / ratios[b]:.2f}× its time" if floor else fmt_ratio(ratios[b])) if b in ratios else "—"
            for b in batches
        ]
        rows.append([methods[ours]["label"], methods[other]["label"]] + cells)
    lines += _table(["ours", "vs"] + [f"B={b}" for b in batches], rows)
    unavailable = sorted({r["reason"] for r in data["results"] if r["status"] in ("unavailable", "error")})
    if unavailable:
        lines += ["", "Not run: " + "; ".join(unavailable)]
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, data: dict) -> None:
    # An explicit Agg figure: no pyplot state, and the process's matplotlib backend is left alone.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    style = {"ours": ("-", "o"), "baseline": ("--", "s"), "floor": (":", "^")}
    colours = matplotlib.colormaps["tab20"].colors
    fig = Figure(figsize=(13, 6))
    FigureCanvasAgg(fig)
    ax_t, ax_m = fig.subplots(1, 2)
    grid = _grid(data)
    for i, (key, m) in enumerate(data["methods"].items()):
        pts = [grid.get((key, b)) for b in data["config"]["batches"]]
        pts = [r for r in pts if r and r["status"] == "ok"]
        if not pts:
            continue
        linestyle, marker = style[m["family"]]
        kw = {"linestyle": linestyle, "marker": marker, "color": colours[i % len(colours)], "label": m["label"]}
        ax_t.plot([r["batch"] for r in pts], [r["median_s"] for r in pts], **kw)
        mem = [r for r in pts if r.get("peak_bytes") and r["peak_bytes"] > 0]
        if mem:
            ax_m.plot([r["batch"] for r in mem], [r["peak_bytes"] / 2**20 for r in mem], **kw)
    cfg = data["config"]
    for ax, ylabel in ((ax_t, "median time per call (s)"), (ax_m, "peak extra memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_ylabel(ylabel)
        ax.set_xticks(data["config"]["batches"], [str(b) for b in data["config"]["batches"]])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
    device = data["environment"]["device"]
    ax_t.set_title(
        f"time ({device}, {data['environment']['torch_threads']} threads, D={cfg['dim']}, K={cfg['per_id']})"
    )
    ax_m.set_title("peak extra memory")
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(labels) + 2) // 3), 1, 1))
    fig.savefig(path, dpi=90)


__all__ = ["fmt_time", "fmt_bytes", "speedups", "write_json", "write_markdown", "write_plot"]
