"""The sweep behind ``python -m facenet_ext bench``: every method at every batch size, same inputs, one run.

For each batch size (ascending) and method: predict its time and peak memory from its last measurement
(or a calibration call at B = 256) scaled by its cost model; skip it with "est. > ..." when either is over
budget; otherwise time it (``timing.median_time``), measure its peak extra memory once (``memory``), and
record its triplet count. Every baseline is first checked against our ops (``agreement``). Writes
``results.json`` (raw samples, environment, versions, ``build_info()``), ``results.md`` and ``bench.png``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import facenet_ext as fx

from . import agreement, report
from .memory import HostMemoryProbe, cuda_peak_bytes, host_probe_supported
from .methods import BY_KEY, METHODS, Method
from .timing import median_time
from .workload import Workload

DEFAULT_BATCHES = (256, 1024, 1800, 4096)
QUICK_BATCHES = (128, 256, 512)
CALIBRATION_BATCH = 256  # every method fits any sane budget here; larger batches are extrapolated from it
GiB = 2**30


def _batches(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch must be comma-separated integers, got {text!r}") from None
    if not values or values[0] < 2:
        raise argparse.ArgumentTypeError(f"--batch sizes must be >= 2, got {text!r}")
    return values


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _methods(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(BY_KEY)}")
    return keys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help=f"batches {QUICK_BATCHES}, short timings, small budgets (< 2 min)"
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the methods run (default cpu)")
    p.add_argument(
        "--batch", type=_batches, help=f"comma-separated batch sizes (default {','.join(map(str, DEFAULT_BATCHES))})"
    )
    p.add_argument("--dim", type=_positive(int), default=128, help="embedding width D (default 128)")
    p.add_argument("--per-id", type=_positive(int), default=40, help="images per identity K (default 40, FaceNet's)")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output directory (default bench-out/)")
    p.add_argument(
        "--methods", type=_methods, help="comma-separated subset of: " + ", ".join(BY_KEY) + " (default all)"
    )
    p.add_argument(
        "--time-budget", type=_positive(float), help="skip calls predicted slower (s; default 30, quick 1.5)"
    )
    p.add_argument(
        "--mem-budget",
        type=_positive(float),
        help="skip calls predicted to need more (GiB; default half the free memory)",
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The ``bench`` subcommand's arguments from a list (for scripts that drive a :class:`Sweep`)."""
    p = argparse.ArgumentParser(prog="facenet-ext bench")
    add_arguments(p)
    return p.parse_args(argv)


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def _command_line() -> str:
    argv = list(sys.argv)
    if Path(argv[0]).parts[-2:] == ("facenet_ext", "__main__.py"):
        return "python -m facenet_ext " + shlex.join(argv[1:])
    return "python " + shlex.join(argv)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(device: torch.device) -> dict:
    try:
        import pytorch_metric_learning as pml

        pml_version = pml.__version__
    except ImportError:
        pml_version = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pytorch_metric_learning": pml_version,
        "build_info": fx.build_info(),
    }


class Sweep:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.methods: list[Method] = [BY_KEY[k] for k in args.methods] if args.methods else list(METHODS)
        self.batches: list[int] = args.batch or list(QUICK_BATCHES if args.quick else DEFAULT_BATCHES)
        self.time_budget = args.time_budget or (1.5 if args.quick else 30.0)
        self.mem_budget = int(args.mem_budget * GiB) if args.mem_budget else _free_bytes(self.device) // 2
        self.timing_kw = {"min_time_s": 0.1, "min_reps": 3, "slow_s": 0.3, "slow_reps": 2} if args.quick else {}
        self.records: list[dict] = []
        self.last: dict[str, dict] = {}  # method -> its largest measured record
        self.probe = HostMemoryProbe() if self.device.type == "cpu" and host_probe_supported() else None

    def workload(self, batch: int) -> Workload:
        return Workload(batch=batch, dim=self.args.dim, per_id=self.args.per_id, device=self.args.device)

    def peak_bytes(self, method: Method, workload: Workload, run) -> tuple[int | None, str | None]:
        if self.device.type == "cuda":
            return (None, "host-only method") if method.host_only else (cuda_peak_bytes(run, self.device), None)
        if self.probe is None:
            return None, "no RSS high-water probe (needs Linux /proc; or its helper failed to start)"
        reply = self.probe.measure(method.key, workload.to_dict())
        return reply.get("peak_bytes"), reply.get("error")

    def measure(self, method: Method, workload: Workload, *, calibration: bool = False) -> dict:
        rec = {"method": method.key, "batch": workload.batch, "calibration": calibration}
        if self.probe is not None:
            try:
                self.probe.wait_ready()  # its start-up (importing torch) must not overlap a timing
            except RuntimeError:
                self.probe = None
        try:
            run = method.make(*workload.make())
            kw = {"min_time_s": 0.0, "min_reps": 1, "slow_reps": 1} if calibration else self.timing_kw
            t = median_time(run, self.device, **kw)
            rec.update(
                status="ok", median_s=t.median_s, min_s=t.min_s, p25_s=t.p25_s, p75_s=t.p75_s, samples_s=t.samples
            )
            rec["triplets"] = None if t.result is None else int(t.result)
            del run, t
            gc.collect()
            rec["peak_bytes"], note = self.peak_bytes(method, workload, method.make(*workload.make()))
            if note:
                rec["memory_note"] = note
        except Exception as e:  # an OOM or a crash in one baseline must not end the sweep
            rec.update(status="error", reason=f"{type(e).__name__}: {str(e)[:300]}")
        gc.collect()
        return rec

    def estimate(self, method: Method, workload: Workload) -> dict | None:
        """Predicted time and memory at ``workload`` from the method's last measurement, scaled by its cost
        model; None when it has none."""
        prev = self.last.get(method.key)
        if prev is None:
            return None
        scale = method.cost(workload) / method.cost(replace(workload, batch=prev["batch"]))
        est = {"from_batch": prev["batch"], "time_s": prev["median_s"] * scale}
        if prev.get("peak_bytes") is not None:
            est["peak_bytes"] = max(prev["peak_bytes"], 0) * scale
        return est

    def over_budget(self, est: dict | None) -> str | None:
        if est is None:
            return None
        if est["time_s"] > self.time_budget:
            return f"est. > {report.fmt_time(self.time_budget)} ({report.fmt_time(est['time_s'])})"
        if est.get("peak_bytes", 0) > self.mem_budget:
            return f"est. > {report.fmt_bytes(self.mem_budget)} ({report.fmt_bytes(est['peak_bytes'])})"
        return None

    def step(self, method: Method, batch: int) -> dict:
        workload = self.workload(batch)
        why_not = method.available()
        if why_not:
            return {"method": method.key, "batch": batch, "status": "unavailable", "reason": why_not}
        if method.key not in self.last and batch > CALIBRATION_BATCH:
            cal = self.measure(method, self.workload(CALIBRATION_BATCH), calibration=True)
            self.records.append(cal)
            if cal["status"] == "ok":
                self.last[method.key] = cal
        est = self.estimate(method, workload)
        reason = self.over_budget(est)
        if reason:
            return {"method": method.key, "batch": batch, "status": "skipped", "reason": reason, "estimate": est}
        rec = self.measure(method, workload)
        rec["estimate"] = est
        if rec["status"] == "ok":
            self.last[method.key] = rec
        return rec

    def run(self) -> dict:
        from tqdm import tqdm

        started = time.time()
        load_before = os.getloadavg()
        baselines = [m for m in self.methods if m.key in agreement.CHECKS and not m.available()]
        checks = [
            agreement.check(m.key, self.args.device).to_dict() for m in tqdm(baselines, desc="agreement", leave=False)
        ]
        with tqdm(total=len(self.batches) * len(self.methods), desc="bench", unit="call") as bar:
            for batch in self.batches:
                for method in self.methods:
                    bar.set_postfix_str(f"B={batch} {method.key}")
                    self.records.append(self.step(method, batch))
                    bar.update()
        if self.probe is not None:
            self.probe.close()
        return {
            "command": _command_line(),
            "environment": _environment(self.device),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "duration_s": time.time() - started,
            "config": {
                "device": self.args.device,
                "batches": self.batches,
                "dim": self.args.dim,
                "per_id": self.args.per_id,
                "spread": Workload(batch=2).spread,
                "dtype": "float32",
                "quick": self.args.quick,
                "time_budget_s": self.time_budget,
                "mem_budget_bytes": self.mem_budget,
                "methods": [m.key for m in self.methods],
            },
            "methods": {
                m.key: {
                    "label": m.label,
                    "family": m.family,
                    "job": m.job,
                    "counterpart": m.counterpart,
                    "note": m.note,
                }
                for m in self.methods
            },
            "agreement": checks,
            "results": self.records,
        }


def run(args: argparse.Namespace) -> Path:
    """Run the sweep and write the three files; returns the output directory."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench: --device cuda but torch sees no CUDA device")
    if args.device == "cuda" and not fx.build_info().get("cuda_kernels"):
        raise SystemExit("bench: --device cuda but facenet_ext was built without CUDA kernels (FACENET_EXT_CUDA=ON)")
    data = Sweep(args).run()
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", data)
    report.write_markdown(args.out / "results.md", data)
    report.write_plot(args.out / "bench.png", data)
    return args.out
