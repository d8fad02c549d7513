"""Which facenet_ext ops the smoke's parity stage ran, and on which device (tools/gpu_smoke.sh).

"Every registered kernel launched at least once", checked mechanically:

- the op list comes from the sources: every schema ``m.def("name(...`` in csrc/ops.cpp and every
  ``custom_op("facenet_ext::name"`` in python/facenet_ext/; an op with an ``m.impl`` in csrc/cuda/ and
  none in csrc/cpu/ is CUDA-only (``take_errors``), and the reverse CPU-only. The ops torch has
  registered once facenet_ext is imported are compared with that list: a difference is an error;
- a pytest plugin (``-p smoke_coverage`` with tools/ on PYTHONPATH, active when SMOKE_COVERAGE_JSON
  names a file) records, with a TorchDispatchMode around each test, every facenet_ext op call: its
  test, device, and arguments (tensors as dtype, device and shape; scalars as they are). It also sees
  the ops a Python custom op calls (streaming, reference sets) and the ops of a backward pass;
- ``check`` compares the record with the list: every op must have run on the device (on cpu, the
  CUDA-only ops are listed as such, not required), and so must each variant in VARIANTS (the
  ``*_from_sq_dist`` ops on float64 distances, with a margin, with drop; ``pairwise_sq_dist`` with
  ``y``; a reference set, streaming, a memory bank).

    python tools/smoke_coverage.py list                          # the op list from the sources
    python tools/smoke_coverage.py check calls.json --device cuda [--report coverage.txt]

``check`` prints one line (the smoke's summary) and exits 1 when anything is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

NAMESPACE = "facenet_ext"
ROOT = Path(__file__).resolve().parents[1]


# ---- the op list, from the sources ------------------------------------------------------------------
COMPOSITE = ("CompositeExplicitAutograd", "CompositeImplicitAutograd", "CompositeExplicitAutogradNonFunctional")


def kernel_keys(root: Path = ROOT) -> dict[str, set[str]]:
    """op -> the dispatch keys of its C++ kernels: every ``m.impl("op"`` inside a
    ``TORCH_LIBRARY_IMPL(facenet_ext, KEY, m) { ... }`` block of csrc/."""
    keys: dict[str, set[str]] = {}
    head = re.compile(rf"TORCH_LIBRARY_IMPL\(\s*{NAMESPACE}\s*,\s*(\w+)\s*,\s*\w+\s*\)\s*\{{")
    for path in sorted((root / "csrc").rglob("*")):
        if path.suffix not in (".cpp", ".cu", ".h", ".cuh"):
            continue
        text = path.read_text()
        for match in head.finditer(text):
            depth, end = 1, match.end()
            while depth and end < len(text):  # the block's closing brace
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            for name in re.findall(r'm\.impl\(\s*"(\w+)"', text[match.end() : end]):
                keys.setdefault(name, set()).add(match.group(1))
    return keys


def source_ops(root: Path = ROOT) -> dict[str, str]:
    """Every facenet_ext op declared in the sources: name -> where it runs: "cpu+cuda", "cuda only",
    "cpu only", "composite" (one kernel for every device, maybe with device-specific ones beside it),
    "python" (a Python custom op: any device), or "no kernel"."""
    schemas = re.findall(r'm\.def\(\s*"(\w+)\(', (root / "csrc" / "ops.cpp").read_text())
    keys = kernel_keys(root)
    ops = {}
    for name in schemas:
        k = keys.get(name, set())
        if k & set(COMPOSITE):
            ops[name] = "composite"
        elif {"CPU", "CUDA"} <= k:
            ops[name] = "cpu+cuda"
        elif "CUDA" in k:
            ops[name] = "cuda only"
        elif "CPU" in k:
            ops[name] = "cpu only"
        else:
            ops[name] = "no kernel"
    for path in sorted((root / "python" / NAMESPACE).rglob("*.py")):
        for name in re.findall(rf'custom_op\(\s*"{NAMESPACE}::(\w+)"', path.read_text()):
            ops[name] = "python"
    return ops


def runs_on(where: str, device: str) -> bool:
    """Whether an op of that kind (source_ops) has a kernel for device ("cpu" or "cuda")."""
    return where in ("cpu+cuda", "composite", "python") or where == f"{device} only"


def registered_ops() -> set[str]:
    """The facenet_ext ops torch knows about after importing facenet_ext (every submodule that defines
    one is imported by the package)."""
    import facenet_ext  # noqa: F401

    prefix = f"{NAMESPACE}::"
    return {n[len(prefix) :].split(".")[0] for n in torch._C._dispatch_get_all_op_names() if n.startswith(prefix)}


def built_for(name: str, device: str) -> bool | None:
    """Whether the installed build has a kernel for op ``name`` on device (composite ones included);
    None where this torch cannot say."""
    has = getattr(torch._C, "_dispatch_has_computed_kernel_for_dispatch_key", None)
    return None if has is None else bool(has(f"{NAMESPACE}::{name}", device.upper()))


# ---- recording the calls ------------------------------------------------------------------------------
def _describe(value):
    """A JSON-able summary of one argument."""
    if isinstance(value, torch.Tensor):
        return {
            "dtype": str(value.dtype).removeprefix("torch."),
            "device": value.device.type,
            "shape": list(value.shape),
        }
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _device(args) -> str | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
        if isinstance(a, (list, tuple)):
            d = _device(a)
            if d is not None:
                return d
    return None


class OpRecorder(TorchDispatchMode):
    """Appends one dict per facenet_ext op call to ``calls``: op, device, test, args (by schema name).

    A Python custom op's body runs with a new recorder active (its kernel is called directly), so the
    ops it calls are recorded too; any other op runs as it would without the recorder."""

    def __init__(self, calls: list, test: str = ""):
        super().__init__()
        self.calls, self.test = calls, test

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        schema = func._schema
        ns, _, name = schema.name.partition("::")
        if ns != NAMESPACE:
            return func(*args, **kwargs)
        names = [a.name for a in schema.arguments]
        bound = dict(zip(names, args))
        bound.update(kwargs)
        self.calls.append(
            {
                "op": name,
                "device": _device(list(args) + list(kwargs.values())),
                "test": self.test,
                "args": {k: _describe(v) for k, v in bound.items()},
            }
        )
        if _is_python_custom_op(schema.name):
            with OpRecorder(self.calls, self.test):
                return func._op_dk(torch._C.DispatchKey.CompositeExplicitAutograd, *args, **kwargs)
        return func(*args, **kwargs)


def _is_python_custom_op(qualname: str) -> bool:
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:  # another torch: the op then runs as a whole, its inner ops unrecorded
        return False
    return qualname in OPDEFS and torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "CompositeExplicitAutograd")


# ---- the pytest plugin ----------------------------------------------------------------------------------
_CALLS: list = []


def _active() -> bool:
    return bool(os.environ.get("SMOKE_COVERAGE_JSON"))


try:
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(item):
        if not _active():
            yield
            return
        with OpRecorder(_CALLS, item.nodeid):
            yield

    def pytest_sessionfinish(session, exitstatus):
        if _active():
            Path(os.environ["SMOKE_COVERAGE_JSON"]).write_text(json.dumps({"calls": _CALLS}, indent=0))

except ImportError:  # the helper is also used without pytest
    pass


# ---- the check ----------------------------------------------------------------------------------------
def _arg(call: dict, name: str):
    return call["args"].get(name)


def _dtype(call: dict, name: str) -> str | None:
    a = _arg(call, name)
    return a.get("dtype") if isinstance(a, dict) else None


def _rows(call: dict, name: str) -> int:
    a = _arg(call, name)
    return a["shape"][0] if isinstance(a, dict) and a.get("shape") else -1


def _offset(call: dict) -> int | None:
    o = _arg(call, "self_offset")
    return o if isinstance(o, int) else None


FROM_SQ_DIST = ("semi_hard_from_sq_dist", "batch_hard_from_sq_dist", "all_semi_hard_from_sq_dist")
# (op, variant, predicate over a recorded call): each must have run on the device, beside every op once.
VARIANTS: list[tuple[str, str, Callable[[dict], bool]]] = [
    *[(op, "float64 distances", lambda c: _dtype(c, "sq_dist") == "float64") for op in FROM_SQ_DIST],
    *[(op, "a reference set (exclude_self=False)", lambda c: _arg(c, "exclude_self") is False) for op in FROM_SQ_DIST],
    ("semi_hard_from_sq_dist", "margin", lambda c: _arg(c, "margin") is not None),
    ("semi_hard_from_sq_dist", "drop_fallback", lambda c: _arg(c, "drop_fallback") is True),
    ("pairwise_sq_dist", "with y", lambda c: _arg(c, "y") is not None),
    ("mine_reference_set", "reference set (ref_emb)", lambda c: (_offset(c) or 0) < 0),
    ("mine_reference_set", "streaming (chunk_size)", lambda c: (_arg(c, "chunk_size") or 0) > 0),
    ("mine_reference_set", "memory bank", lambda c: _offset(c) == 0 and _rows(c, "ref_emb") > _rows(c, "anchors")),
    ("all_semi_hard_loss", "with_grad", lambda c: _arg(c, "with_grad") is True),
]


def check(calls: list[dict], device: str, root: Path = ROOT) -> tuple[bool, str, list[str]]:
    """(passed, one summary line, report lines) for the calls recorded on ``device`` ("cpu"/"cuda")."""
    declared = source_ops(root)
    registered = registered_ops()
    report: list[str] = []
    problems: list[str] = []
    for name in sorted(set(declared) - registered):
        problems.append(f"{name} declared in the sources but not registered (a stale build?)")
    for name in sorted(registered - set(declared)):
        problems.append(f"{name} registered but not found in the sources (this list is out of date)")
    required = sorted(n for n in set(declared) | registered if runs_on(declared.get(n, "cpu+cuda"), device))
    not_here = sorted(n for n in declared if not runs_on(declared[n], device))
    for name in required:
        if name in registered and built_for(name, device) is False:
            problems.append(f"{name}: the sources give it a {device} kernel, the installed build has none")
    on_device = [c for c in calls if c["device"] == device]
    missing = []
    for name in required:
        mine = [c for c in on_device if c["op"] == name]
        dtypes = sorted({d for c in mine for d in [_first_dtype(c)] if d})
        tests = sorted({c["test"].split("::")[-1] for c in mine})
        if mine:
            report.append(f"ran   {name} on {device}: {len(mine)} calls ({', '.join(dtypes)}) in {_short(tests)}")
        else:
            missing.append(name)
            seen = sorted({c["device"] for c in calls if c["op"] == name and c["device"]})
            elsewhere = f" (called on {', '.join(seen)})" if seen else ""
            report.append(f"MISS  {name}: never called on {device}{elsewhere}")
    for name in not_here:
        report.append(f"n/a   {name}: {declared[name]} (no {device} kernel), not expected on {device}")
        if name in registered and built_for(name, device):
            problems.append(
                f"{name}: the build has a {device} kernel the sources do not show (this parser is out of date)"
            )
    missing_variants = []
    for op, variant, pred in VARIANTS:
        if op not in declared and op not in registered:
            problems.append(f"variant {op} [{variant}]: no such op")
            continue
        if not runs_on(declared.get(op, "cpu+cuda"), device):
            continue
        n = sum(1 for c in on_device if c["op"] == op and pred(c))
        if n:
            report.append(f"ran   {op} [{variant}] on {device}: {n} calls")
        else:
            missing_variants.append(f"{op} [{variant}]")
            report.append(f"MISS  {op} [{variant}]: never called on {device}")
    report += [f"ERROR {p}" for p in problems]
    n_var = sum(1 for op, _, _ in VARIANTS if runs_on(declared.get(op, "cpu+cuda"), device))
    line = (
        f"{len(required) - len(missing)}/{len(required)} ops and {n_var - len(missing_variants)}/{n_var} variants "
        f"ran on {device}"
    )
    if not_here:
        line += f"; no {device} kernel, not expected: {', '.join(not_here)}"
    passed = not (missing or missing_variants or problems)
    if not passed:
        gaps = missing + missing_variants + problems
        line += f": MISSING {'; '.join(gaps[:6])}" + (f" and {len(gaps) - 6} more" if len(gaps) > 6 else "")
    return passed, line, report


def _first_dtype(call: dict) -> str | None:
    for v in call["args"].values():
        if isinstance(v, dict) and "dtype" in v:
            return v["dtype"]
    return None


def _short(tests: list[str], n: int = 3) -> str:
    return ", ".join(tests[:n]) + (f" and {len(tests) - n} more" if len(tests) > n else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the op list read from the sources")
    c = sub.add_parser("check", help="compare recorded calls with the op list")
    c.add_argument("calls", help="the JSON the plugin wrote (SMOKE_COVERAGE_JSON)")
    c.add_argument("--device", required=True, choices=("cpu", "cuda"))
    c.add_argument("--report", help="write the per-op report here")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for name, where in sorted(source_ops().items()):
            print(f"{name}: {where}")
        return 0
    try:
        calls = json.loads(Path(args.calls).read_text())["calls"]
    except (OSError, ValueError, KeyError) as e:
        print(f"no record of the calls ({args.calls}: {e})")
        return 1
    passed, line, report = check(calls, args.device)
    if args.report:
        Path(args.report).write_text("\n".join(report) + "\n")
    print(line)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
