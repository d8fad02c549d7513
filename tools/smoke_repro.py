"""The GPU build's crash repro (docs/limits.md "On a GPU"), one device per process: run under `python -X
faulthandler` so a crash prints its native stack instead of dying silently.

    python -X faulthandler tools/smoke_repro.py cpu|cuda

A direct op call with a 1-D distance matrix: the C++ argument check formats an integer into its message,
which is where the H100 build died with SIGSEGV inside libstdc++. Exit 0: a Python exception with a
message (the fix); 3: the op accepted the bad input; a crash: killed by a signal (rc < 0 or >= 128).
"""

import sys

import torch

import facenet_ext  # noqa: F401  (registers torch.ops.facenet_ext)

device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
args = (torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), True, None, True, False)
args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
try:
    torch.ops.facenet_ext.semi_hard_from_sq_dist(*args)
except Exception as e:  # the expected outcome: a clean Python exception
    print(f"{device}: {type(e).__name__}: {str(e).splitlines()[0]}")
    sys.exit(0)
print(f"{device}: no error raised for a 1-D distance matrix")
sys.exit(3)
