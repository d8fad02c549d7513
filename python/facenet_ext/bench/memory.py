"""Peak extra memory of one call: what the call needs on top of its inputs, its outputs included.

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
before the call (tensor memory through the caching allocator; the cache itself is not counted).

CPU: PyTorch's default CPU allocator keeps no statistics and tracemalloc does not see tensor memory, so
we measure the process's resident-set high-water mark (``VmHWM``), which sees tensors, NumPy arrays and
Python objects alike. A helper process (:class:`HostMemoryProbe`, this module run as a script) builds the
inputs, runs the method once at a small size to get one-off initialisation out of the way, resets the
high-water mark (``/proc/self/clear_refs``), records ``VmRSS``, runs the call once, and reports
``VmHWM - VmRSS_before``. It runs with a fixed glibc mmap threshold of 128 KiB, so every block larger
than that is mapped on allocation and returned on free: blocks freed by earlier calls cannot hide a
later call's need. Blocks below 128 KiB may be reused from the heap, so the figure can undercount by the
small-allocation churn (a few MiB at most); pages allocated but never touched are not counted (they cost
no memory). Timing never happens in that process: the mmap setting would slow allocation-heavy methods.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable

import torch

_MMAP_THRESHOLD = str(128 * 1024)


def cuda_peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = run()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    del out
    return peak


def proc_status_bytes(field: str) -> int:
    """A memory line of this process's ``/proc/self/status`` in bytes: ``VmRSS`` (resident now) or ``VmHWM``
    (its high-water mark since start or :func:`reset_peak_rss`). Linux only: OSError where it is missing."""
    with open("/proc/self/status") as f:
        found = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    if found is None:
        raise OSError(f"/proc/self/status has no {field} line")
    return int(found.group(1)) * 1024


def reset_peak_rss() -> int:
    """Reset ``VmHWM`` to the current resident set (Linux >= 4.0) and return that resident set in bytes:
    the base a later ``proc_status_bytes("VmHWM")`` is measured from."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return proc_status_bytes("VmRSS")


def host_probe_supported() -> bool:
    try:
        reset_peak_rss()
        proc_status_bytes("VmHWM")
        return True
    except OSError:
        return False


class HostMemoryProbe:
    """A helper process that measures the peak extra RSS of one call of a method on a workload."""

    def __init__(self) -> None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD_=_MMAP_THRESHOLD)
        env["FACENET_EXT_BENCH_THREADS"] = str(torch.get_num_threads())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "facenet_ext.bench.memory"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._ready = False

    def wait_ready(self) -> None:
        """Block until the helper has imported everything: its start-up must not overlap any timing."""
        if self._ready:
            return
        line = self._proc.stdout.readline()
        if json.loads(line or "{}").get("ready") is not True:
            raise RuntimeError(f"memory probe failed to start (exit code {self._proc.poll()})")
        self._ready = True

    def measure(self, method: str, workload: dict) -> dict:
        """{"peak_bytes": int} or {"error": str}."""
        try:
            self.wait_ready()
            self._proc.stdin.write(json.dumps({"method": method, "workload": workload}) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except (OSError, RuntimeError) as e:  # the helper died (killed for memory, say): no number, no crash
            return {"error": f"memory probe unavailable: {e}"}
        if not line:
            return {"error": f"memory probe exited with code {self._proc.wait()}"}
        return json.loads(line)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve() -> None:
    from .methods import BY_KEY
    from .workload import Workload

    torch.set_num_threads(int(os.environ.get("FACENET_EXT_BENCH_THREADS", torch.get_num_threads())))
    libc = ctypes.CDLL(None)
    warmed: set[str] = set()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        method, workload = BY_KEY[req["method"]], Workload(**req["workload"])
        try:
            if method.key not in warmed:
                small = Workload(**{**workload.to_dict(), "batch": min(64, workload.batch)})
                method.make(*small.make())()
                warmed.add(method.key)
            run = method.make(*workload.make())
            gc.collect()
            libc.malloc_trim(0)
            base = reset_peak_rss()
            out = run()
            reply = {"peak_bytes": proc_status_bytes("VmHWM") - base}
            del out, run
        except Exception as e:  # reported, not fatal: the sweep goes on without this number
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve()
