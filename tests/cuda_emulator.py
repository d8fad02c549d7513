"""The CUDA kernels of csrc/cuda/kernels/, run on the CPU under the emulator of tests/emulated/.

`library()` compiles tests/emulated/kernels.cpp once per source hash (into build/emulated/, with the host
C++ compiler; FACENET_EXT_EMU_SANITIZE=1 adds ASan and UBSan, which then need the process started with
the sanitizer runtimes preloaded: tools/emulated_sanitized.sh does that). The functions below mirror the
.cu launchers step by step: the ATen steps of a launcher (sorts, scans, compaction, allocation) in torch,
every kernel through the emulator, with the launch geometry of csrc/cuda/geometry.h. Outputs start
poisoned, so an element a kernel fails to write shows.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "emulated"
KERNELS = ROOT / "csrc" / "cuda" / "kernels"
SANITIZE = os.environ.get("FACENET_EXT_EMU_SANITIZE", "") == "1"

DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
POISON = -7777  # integer outputs start here; no kernel writes it


class EmulatorError(RuntimeError):
    """A diagnostic of the emulator: deadlock, divergent warp calls, a bad mask or barrier, a failed assert."""


def _sources() -> list[Path]:
    files = [*EMU.rglob("*.h"), *EMU.rglob("*.cuh"), *EMU.rglob("*.cpp"), *EMU.rglob("*.s"), *KERNELS.glob("*.cuh")]
    files += [ROOT / "csrc" / "cuda" / "geometry.h", *(ROOT / "csrc" / "common").glob("*.h")]
    return sorted(files)


def compile_command(out: Path) -> list[str]:
    cxx = os.environ.get("CXX", "c++")
    flags = ["-std=c++20", "-O1", "-g", "-fPIC", "-shared", "-Wall", "-Wno-unused-parameter", "-Wno-unknown-pragmas"]
    # The CPU kernels are built the same way where their bits are compared (CMakeLists.txt).
    flags += ["-ffp-contract=off"]
    if SANITIZE:
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    includes = ["-include", str(EMU / "cuda_emu.h"), f"-I{EMU / 'shim'}", f"-I{EMU}", f"-I{ROOT / 'csrc'}"]
    sources = [str(EMU / name) for name in ("kernels.cpp", "selftest.cpp", "fiber_switch.s")]
    return [cxx, *flags, *includes, *sources, "-o", str(out)]


@functools.cache
def library() -> ctypes.CDLL:
    digest = hashlib.sha256()
    for f in _sources():
        digest.update(str(f.relative_to(ROOT)).encode() + f.read_bytes())
    digest.update(" ".join(compile_command(Path("x"))).encode())
    target = ROOT / "build" / "emulated" / digest.hexdigest()[:16] / "libfx_emulated.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run(compile_command(tmp), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling the emulated kernels failed:\n{proc.stdout}{proc.stderr}")
        os.replace(tmp, target)  # atomic: a parallel run sees the old or the whole new file
    lib = ctypes.CDLL(str(target))
    lib.emu_last_error.restype = ctypes.c_char_p
    lib.emu_selftest_error.restype = ctypes.c_char_p
    lib.emu_triplet_segment.restype = ctypes.c_int64
    return lib


def compiler_available() -> bool:
    return shutil.which(os.environ.get("CXX", "c++")) is not None


def skip_reason() -> str | None:
    """Why the emulated kernels cannot run here, or None: they need a host C++ compiler and an x86-64 CPU
    (the fibers' context switch, emulated/fiber_switch.s, is x86-64 assembly)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the CUDA emulator's context switch is x86-64 only (this is {platform.machine()})"
    if not compiler_available():
        return "no host C++ compiler for the emulated kernels"
    return None


def set_schedule(mode: str, seed: int = 0) -> None:
    """Thread order within a block: "forward", "reverse" or "shuffled" (seeded)."""
    library().emu_set_schedule(ctypes.c_int({"forward": 0, "reverse": 1, "shuffled": 2}[mode]), ctypes.c_uint64(seed))


# ---- argument marshalling ------------------------------------------------------------------------------
def _p(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def _i(v: int) -> ctypes.c_int64:
    return ctypes.c_int64(int(v))


def _call(name: str, *args) -> None:
    lib = library()
    if getattr(lib, name)(*args) != 0:
        raise EmulatorError(lib.emu_last_error().decode())


class _GroupsStruct(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in ("anchor_gid", "ref_gid", "members", "group_start", "pair_offset")]


@dataclass
class Groups:
    """shared/label_groups.h's arrays, built by the emulated label_groups_kernel."""

    anchor_gid: torch.Tensor
    ref_gid: torch.Tensor
    members: torch.Tensor
    group_start: torch.Tensor
    pair_offset: torch.Tensor
    num_pairs: int
    max_positives: int
    anchors_without_pairs: int
    non_finite: bool = False

    def struct(self) -> _GroupsStruct:
        return _GroupsStruct(*(t.data_ptr() for t in self.tensors()))

    def tensors(self):
        return (self.anchor_gid, self.ref_gid, self.members, self.group_start, self.pair_offset)


def label_groups(
    labels: torch.Tensor,
    ref_labels: torch.Tensor,
    exclude_self: bool,
    norms: torch.Tensor | None = None,
    error_word: torch.Tensor | None = None,
) -> Groups:
    """cuda/label_groups.cu: the stable sort (ATen), then the single-block kernel and its summary. With
    ``norms`` the kernel also checks them (the fused miners): ``Groups.non_finite`` holds the summary's
    flag, or with ``error_word`` (int32 [1]) the kernel sets its bit there instead."""
    B, N = labels.numel(), ref_labels.numel()
    sorted_labels, order = torch.sort(ref_labels.long(), stable=True)
    labels64 = labels.long().contiguous()
    i32 = dict(dtype=torch.int32)
    g = Groups(
        torch.full((B,), POISON, **i32),
        torch.full((N,), POISON, **i32),
        torch.full((N,), POISON, **i32),
        torch.full((N + 1,), POISON, **i32),
        torch.full((B + 1,), POISON, dtype=torch.int64),
        0,
        0,
        0,
    )
    summary = torch.zeros(5, dtype=torch.int64)  # kernels/label_groups.cuh kSummarySize
    args = (_p(sorted_labels), _p(order), _p(labels64), _i(B), _i(N), ctypes.c_int(exclude_self))
    f32 = norms if norms is not None and norms.dtype == torch.float32 else None
    f64 = norms if norms is not None and norms.dtype == torch.float64 else None
    limit = 0.0 if norms is None else (torch.finfo(norms.dtype).max / 4)
    norm_args = (_p(f32), _p(f64), ctypes.c_double(limit), _p(error_word))
    _call("emu_label_groups", *args, g.struct(), _p(summary), *norm_args)
    g.num_pairs, g.max_positives, g.anchors_without_pairs = (int(v) for v in summary[:3])
    g.non_finite = bool(summary[3])
    # Entries past the last group are never written (group_start has G + 1 <= N + 1 entries).
    return g


def _row_major(d: torch.Tensor) -> torch.Tensor:
    return d.contiguous() if d.stride(1) != 1 else d  # shared/tensors.h row_major


def _empty_triplets():
    return tuple(torch.empty(0, dtype=torch.int64) for _ in range(3))


def _compact(a, p, n):
    keep = n >= 0
    return a[keep], p[keep], n[keep]


INT64_MAX = 2**63 - 1
GUARD = 64  # poisoned elements past the end of every index output: a write there is reported, not a crash


def _poisoned(n: int) -> torch.Tensor:
    return torch.full((n + GUARD,), POISON, dtype=torch.int64)


def _unguard(t: torch.Tensor, what: str) -> torch.Tensor:
    n = t.numel() - GUARD
    if (t[n:] != POISON).any():
        raise EmulatorError(f"the kernel wrote past the end of {what} ({n} elements)")
    return t[:n]


def _semi_hard(
    d,
    g,
    exclude_self,
    margin,
    squared,
    drop,
    max_positives,
    outs,
    flag,
    *,
    ordered=False,
    capacity=INT64_MAX,
    base=None,
    kept=None,
):
    """One launch of semi_hard_kernel (cuda/semi_hard.cu launch_semi_hard); max_positives None: not read."""
    if d.shape[0] == 0:
        return
    a, p, n = outs if outs is not None else (None, None, None)
    _call(
        "emu_semi_hard",
        ctypes.c_int(DTYPE_CODE[d.dtype]),
        _p(d),
        _i(d.stride(0)),
        _i(d.shape[0]),
        _i(d.shape[1]),
        g.struct(),
        _i(-1 if max_positives is None else max_positives),
        ctypes.c_int(exclude_self),
        ctypes.c_int(margin is not None),
        ctypes.c_double(margin or 0.0),
        ctypes.c_int(squared),
        ctypes.c_int(drop),
        _p(a),
        _p(p),
        _p(n),
        _p(flag),
        ctypes.c_int(ordered),
        _i(capacity),
        _p(base),
        _p(kept),
    )


def _filled(size: int):
    """Outputs pre-filled with -1 (at::full), each with a poisoned guard past the end."""
    outs = []
    for _ in range(3):
        t = _poisoned(size)
        t[:size] = -1
        outs.append(t)
    return outs


def _unguard3(outs):
    return tuple(_unguard(t, name) for t, name in zip(outs, ("anchor", "positive", "negative")))


def _count_kept(d, g, exclude_self, margin, squared, drop, flag):
    """cuda/semi_hard.cu count_kept: the counting pass, largest chunk (nothing read yet)."""
    kept = torch.zeros(d.shape[0], dtype=torch.int64)
    _semi_hard(d, g, exclude_self, margin, squared, drop, None, None, flag, ordered=True, kept=kept)
    return kept


def _fill_kept(d, g, exclude_self, margin, squared, drop, max_positives, kept, size):
    """cuda/semi_hard.cu fill_kept: ordered fill into `size` slots from the scan of the counts."""
    outs = _filled(size)
    if size > 0:
        base = kept.cumsum(0) - kept
        _semi_hard(
            d, g, exclude_self, margin, squared, drop, max_positives, outs, None, ordered=True, capacity=size, base=base
        )
    return _unguard3(outs)


def semi_hard_from_sq_dist(dist, labels, ref_labels, exclude_self, margin=None, squared=True, drop=False):
    """cuda/semi_hard.cu's semi_hard_from_sq_dist (count, one read, fill): ((anchor, positive, negative), flag)."""
    g = label_groups(labels, ref_labels, exclude_self)
    d = _row_major(dist)
    flag = torch.zeros(1, dtype=torch.int32)
    kept = _count_kept(d, g, exclude_self, margin, squared, drop, flag)
    if flag.item():
        return None, True  # the launcher raises before filling
    got = _fill_kept(d, g, exclude_self, margin, squared, drop, g.max_positives, kept, int(kept.sum()))
    return got, False


def semi_hard_slots(dist, labels, exclude_self=True, margin=None, squared=True, drop=False):
    """Slot mode after the read (semi_hard_triplets without margin or drop): every slot, unfiltered."""
    g = label_groups(labels, labels, exclude_self)
    d = _row_major(dist)
    if g.num_pairs == 0:
        return _empty_triplets()
    outs = [_poisoned(g.num_pairs) for _ in range(3)]
    _semi_hard(d, g, exclude_self, margin, squared, drop, g.max_positives, outs, None)
    return _unguard3(outs)


def semi_hard_triplets_padded(dist, labels, margin, squared, drop, capacity):
    """cuda/semi_hard.cu semi_hard_triplets_padded_cuda from the batch's distances: (a, p, n, found)."""
    g = label_groups(labels, labels, True)
    if margin is not None or drop:
        kept = _count_kept(dist, g, True, margin, squared, drop, None)
        a, p, n = _fill_kept(dist, g, True, margin, squared, drop, None, kept, capacity)
        return a, p, n, kept.sum()
    outs = _filled(capacity)
    if capacity > 0:
        _semi_hard(dist, g, True, margin, squared, drop, None, outs, None, capacity=capacity)
    return (*_unguard3(outs), g.pair_offset[dist.shape[0]].clone())


def compact_triplets_into(a, p, n, size):
    """shared/triplets.cpp compact_triplets_into (ATen ops, the same here): (a, p, n, found)."""
    S = n.shape[0]
    if S == 0:
        none = torch.full((size,), -1, dtype=torch.int64)
        return none, none.clone(), none.clone(), torch.zeros((), dtype=torch.int64)
    kept_through = n.ge(0).long().cumsum(0)
    found = kept_through[S - 1].clone()
    want = torch.arange(1, size + 1)
    src = torch.searchsorted(kept_through, want).clamp_max_(S - 1)
    valid = want.le(found)
    return (*(torch.where(valid, t.index_select(0, src), -1) for t in (a, p, n)), found)


def _batch_hard_slots(d, g, exclude_self, flag):
    B = d.shape[0]
    a, p, n = torch.arange(B), _poisoned(B), _poisoned(B)
    if B > 0:
        args = (_i(d.stride(0)), _i(B), _i(d.shape[1]), g.struct(), ctypes.c_int(exclude_self))
        _call("emu_batch_hard", ctypes.c_int(DTYPE_CODE[d.dtype]), _p(d), *args, _p(p), _p(n), _p(flag))
    return a, _unguard(p, "positive"), _unguard(n, "negative")


def batch_hard_from_sq_dist(dist, labels, ref_labels, exclude_self):
    """cuda/batch_hard.cu's batch_hard_from_sq_dist: ((anchor, positive, negative), non_finite flag)."""
    g = label_groups(labels, ref_labels, exclude_self)
    d = _row_major(dist)
    flag = torch.zeros(1, dtype=torch.int32)
    a, p, n = _batch_hard_slots(d, g, exclude_self, flag)
    if flag.item():
        return None, True
    if g.num_pairs == 0:
        return _empty_triplets(), False
    paired = d.shape[0] - g.anchors_without_pairs
    if paired < d.shape[0]:
        a, p, n, _ = compact_triplets_into(a, p, n, paired)
    return (a, p, n), False


def batch_hard_triplets_padded(dist, labels, capacity):
    """cuda/batch_hard.cu batch_hard_triplets_padded_cuda from the batch's distances: (a, p, n, found)."""
    g = label_groups(labels, labels, True)
    a, p, n = _batch_hard_slots(dist, g, True, None)
    return compact_triplets_into(a, p, n, capacity)


def all_semi_hard_from_sq_dist(dist, labels, ref_labels, exclude_self, margin, squared):
    """cuda/all_semi_hard.cu: count, exclusive scan (ATen), fill. ((anchor, positive, negative), flag)."""
    g = label_groups(labels, ref_labels, exclude_self)
    d = _row_major(dist)
    if g.num_pairs == 0:
        return _empty_triplets(), False
    code, flag = ctypes.c_int(DTYPE_CODE[d.dtype]), torch.zeros(1, dtype=torch.int32)
    counts = _poisoned(g.num_pairs)
    shape = (_i(d.stride(0)), _i(d.shape[0]), _i(d.shape[1]), g.struct(), ctypes.c_int(exclude_self))
    rule = (ctypes.c_double(margin), ctypes.c_int(squared))
    none = _p(None)
    _call(
        "emu_all_semi_hard", code, ctypes.c_int(0), _p(d), *shape, *rule, _p(counts), none, none, none, none, _p(flag)
    )
    counts = _unguard(counts, "count")
    ends = counts.cumsum(0)
    offsets = ends - counts
    total = int(ends[-1])
    a, p, n = (_poisoned(total) for _ in range(3))
    if total > 0:
        outs = (_p(offsets), _p(a), _p(p), _p(n))
        _call("emu_all_semi_hard", code, ctypes.c_int(1), _p(d), *shape, *rule, none, *outs, none)
    a, p, n = (_unguard(t, name) for t, name in zip((a, p, n), ("anchor", "positive", "negative")))
    return (a, p, n), bool(flag.item())


def pairwise_sq_dist(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """cuda/pairwise_sq_dist.cu: the Gram matrix and norms (ATen, here on the CPU), then the epilogue kernel."""
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xa = x.to(acc).contiguous()
    ya = xa if y is None else y.to(acc).contiguous()
    out = (xa @ ya.T).contiguous()
    x_norm = xa.square().sum(1)
    y_norm = None if y is None else ya.square().sum(1)
    if out.numel() > 0:
        args = (_p(out), _p(x_norm), _p(y_norm), _i(out.shape[0]), _i(out.shape[1]))
        _call("emu_dist_epilogue", ctypes.c_int(DTYPE_CODE[acc]), *args)
    return out


def all_semi_hard_loss(emb, labels, margin, squared, with_grad):
    """cuda/all_semi_hard_loss.cu: (sums [3], counts [2], coef [B, B] or [0, 0])."""
    acc = torch.float32 if emb.dtype in (torch.float16, torch.bfloat16) else emb.dtype
    B = emb.shape[0]
    coef = torch.zeros(B, B, dtype=acc) if with_grad else torch.empty(0, 0, dtype=acc)
    g = label_groups(labels, labels, True)
    if g.num_pairs == 0:
        return torch.zeros(3, dtype=acc), torch.zeros(2, dtype=torch.int64), coef
    dist = pairwise_sq_dist(emb)
    x = emb.to(acc).contiguous()
    norm = x.square().sum(1)
    sums = torch.zeros(B, 3, dtype=torch.float64)
    counts = torch.zeros(B, 2, dtype=torch.int64)
    coef_ptr = _p(coef) if with_grad else _p(None)
    rule = (ctypes.c_double(margin), ctypes.c_int(squared))
    args = (_p(dist), _p(x), _p(norm), _i(B), _i(x.shape[1]), g.struct(), *rule)
    _call("emu_all_semi_hard_loss", ctypes.c_int(DTYPE_CODE[acc]), *args, coef_ptr, _p(sums), _p(counts))
    return sums.sum(0).to(acc), counts.sum(0), coef


def _acc(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def triplet_forward(emb, a, p, n, margin, squared, error_word=None):
    """cuda/triplet_loss.cu's forward: (loss, d_ap, d_an) [T] in the accumulation dtype. error_word: the
    int32 [1] tensor that stands in for the device's error word (a fresh one when None)."""
    x, a, p, n = emb.contiguous(), a.contiguous(), p.contiguous(), n.contiguous()
    T = a.numel()
    outs = [torch.full((T,), 12345.0, dtype=_acc(x.dtype)) for _ in range(3)]  # poison: not NaN, the bad-index mark
    if T == 0:
        return tuple(outs)
    word = torch.zeros(1, dtype=torch.int32) if error_word is None else error_word
    code = ctypes.c_int(DTYPE_CODE[x.dtype])
    args = (_p(x), _i(x.shape[0]), _i(x.shape[1]), _p(a), _p(p), _p(n), _i(T), ctypes.c_double(margin))
    _call("emu_triplet_forward", code, *args, ctypes.c_int(squared), *(_p(o) for o in outs), _p(word))
    return tuple(outs)


def triplet_csr_plan(T: int, B: int) -> dict:
    """geometry.h triplet_csr_plan, from the library itself."""
    plan = torch.zeros(4, dtype=torch.int64)
    library().emu_triplet_csr_plan(_i(T), _i(B), _p(plan))
    return dict(zip(("entries", "tiles", "passes", "digit_bits"), (int(v) for v in plan)))


def triplet_csr(a, p, n, B, error_word=None):
    """cuda/triplet_csr.cu's triplet_csr (T > 0, B > 0): (row_ptr [B + 1], entry [3T]), entries 3 t + role
    grouped by row, stably; entries with an index outside [0, B) after row_ptr[B]."""
    a, p, n = a.contiguous(), p.contiguous(), n.contiguous()
    T = a.numel()
    plan = triplet_csr_plan(T, B)
    word = torch.zeros(1, dtype=torch.int32) if error_word is None else error_word
    idx = (_p(a), _p(p), _p(n), _i(T), _i(B))
    src, out = None, _poisoned(plan["entries"])
    for k in range(plan["passes"]):
        counts = torch.zeros((1 << plan["digit_bits"]) * plan["tiles"], dtype=torch.int64)
        first = _p(word) if k == 0 else _p(None)
        _call("emu_triplet_csr", ctypes.c_int(0), *idx, ctypes.c_int(k), _p(src), _p(counts), _p(None), first)
        offsets = counts.cumsum(0) - counts
        _call("emu_triplet_csr", ctypes.c_int(1), *idx, ctypes.c_int(k), _p(src), _p(offsets), _p(out), _p(None))
        _unguard(out, "entry")
        if k + 1 < plan["passes"]:
            src, out = out, _poisoned(plan["entries"])
    entry = _unguard(out, "entry")
    row_ptr = _poisoned(B + 1)
    _call("emu_triplet_csr", ctypes.c_int(2), *idx, ctypes.c_int(0), _p(entry), _p(None), _p(row_ptr), _p(None))
    return _unguard(row_ptr, "row_ptr"), entry


def triplet_segment() -> int:
    """geometry.h kTripletSegment: entries per segment of a row in the backward."""
    return int(library().emu_triplet_segment())


def triplet_seg_ptr(row_ptr: torch.Tensor) -> torch.Tensor:
    """cuda/triplet_loss.cu's segment numbering: row i's segments are [seg_ptr[i], seg_ptr[i + 1])."""
    SEGMENT = triplet_segment()
    entries = row_ptr[1:] - row_ptr[:-1]
    segments = torch.where(entries > SEGMENT, (entries + SEGMENT - 1) // SEGMENT, torch.ones_like(entries))
    return torch.cat([torch.zeros(1, dtype=torch.int64), segments.cumsum(0)])


def triplet_backward(grad_loss, emb, a, p, n, loss, d_ap, d_an, squared, error_word=None):
    """cuda/triplet_loss.cu's backward: the gradient wrt emb, emb's dtype, packed."""
    x = emb.contiguous()
    a, p, n = a.contiguous(), p.contiguous(), n.contiguous()
    B, D, T = x.shape[0], x.shape[1], a.numel()
    if T == 0 or B == 0 or D == 0:
        return torch.zeros_like(x)
    acc = _acc(x.dtype)
    g = grad_loss.to(acc).contiguous()
    row_ptr, entry = triplet_csr(a, p, n, B, error_word)
    seg_ptr = triplet_seg_ptr(row_ptr)
    bound = B + (3 * T + triplet_segment() - 1) // triplet_segment()  # geometry.h triplet_segment_bound
    partial = torch.full((bound, D), float("nan"), dtype=acc)
    grad = torch.full_like(x, 777.0)  # poison (not NaN, which marks bad triplets): every row must be written
    per_triplet = [t.contiguous() for t in (g, loss, d_ap, d_an)]
    code = ctypes.c_int(DTYPE_CODE[x.dtype])
    _call(
        "emu_triplet_backward",
        code,
        _p(x),
        _i(B),
        _i(D),
        _p(a),
        _p(p),
        _p(n),
        _i(T),
        *(_p(t) for t in per_triplet),
        ctypes.c_int(squared),
        _p(row_ptr),
        _p(entry),
        _p(seg_ptr),
        _p(partial),
        _p(grad),
    )
    return grad


def _pool_out(size, k, s, pad, ceil_mode):
    # rules/l2_pool_rules.h pool_out_size
    out = (size + 2 * pad - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + pad:
        out -= 1
    return out


def _pool_dims(x, kernel_size, stride, padding, ceil_mode):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    OH, OW = _pool_out(H, kh, sh, ph, ceil_mode), _pool_out(W, kw, sw, pw, ceil_mode)
    return torch.tensor([C, H, W, OH, OW, kh, kw, sh, sw, ph, pw], dtype=torch.int64), (N, C, OH, OW)


def l2_pool_fits_int32(input_numel: int, output_numel: int, h, w) -> bool:
    """cuda/geometry.h l2_pool_fits_int32; h, w: (in, out, kernel, stride, padding) of each axis."""
    axes = [torch.tensor(list(a), dtype=torch.int64) for a in (h, w)]
    return bool(library().emu_l2_pool_fits_int32(_i(input_numel), _i(output_numel), _p(axes[0]), _p(axes[1])))


def l2_pool2d(x, kernel_size, stride, padding, ceil_mode, index64=False):
    """cuda/l2_pool2d.cu's forward (x packed as NCHW first)."""
    x = x.contiguous()
    dims, out_shape = _pool_dims(x, kernel_size, stride, padding, ceil_mode)
    y = torch.full(out_shape, float("nan"), dtype=x.dtype)
    if y.numel() == 0:
        return y
    code = ctypes.c_int(DTYPE_CODE[x.dtype])
    args = (_p(dims), _i(x.shape[0]), _p(x), _p(None), _p(y), _p(None), _p(None))
    _call("emu_l2_pool2d", code, ctypes.c_int(0), ctypes.c_int(index64), *args)
    return y


def l2_pool2d_backward(grad_out, x, y, kernel_size, stride, padding, ceil_mode, index64=False):
    """cuda/l2_pool2d.cu's backward: grad_out is read through its strides (expanded and sliced views too)."""
    x, y = x.contiguous(), y.contiguous()
    dims, _ = _pool_dims(x, kernel_size, stride, padding, ceil_mode)
    dx = torch.full_like(x, float("nan"))
    if dx.numel() == 0:
        return dx
    strides = torch.tensor(grad_out.stride(), dtype=torch.int64)
    code = ctypes.c_int(DTYPE_CODE[x.dtype])
    args = (_p(dims), _i(x.shape[0]), _p(x), _p(y), _p(dx), _p(grad_out), _p(strides))
    _call("emu_l2_pool2d", code, ctypes.c_int(1), ctypes.c_int(index64), *args)
    return dx
