"""The CPU semi-hard row pass on every instruction set this CPU has: the AVX-512 split, permute search and
count, the AVX2 build with its own search, and the baseline build, each forced with
FACENET_EXT_CPU_CAPABILITY in a fresh process (the choice is made once per process). All give the float64
reference's triplets on tie-heavy matrices and all raise on a NaN or Inf in a row they mine. And the
permute searches' own check, compiled alone, rejects a tree built off by one at any level."""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facenet_ext.oracle import semi_hard_from_sq_dist_oracle

ROOT = Path(__file__).resolve().parents[1]
ops = torch.ops.facenet_ext

# Group sizes 1 to 70 in one batch: singletons (no positive), 64 (63 positives: the largest tree), 65 and
# 70 (more than 63: the count's path), and sizes around one and two 16-lane groups of positives.
GROUP_SIZES = [1, 1, 2, 3, 8, 16, 17, 40, 63, 64, 65, 70]


def _labels(generator):
    labels = torch.cat([torch.full((k,), i) for i, k in enumerate(GROUP_SIZES)])
    return labels[torch.randperm(labels.numel(), generator=generator)]  # shuffled: groups interleave


def tie_heavy_cases():
    """(name, matrix, labels, ref_labels, exclude_self), integer distances so that ties fall on both split
    points (the nearest and the farthest positive) and inside. Rows of 350 leave a partial 16-lane tail."""
    g = torch.Generator().manual_seed(26)
    labels = _labels(g)
    n = labels.numel()
    same = labels[:, None] == labels[None, :]

    def ints(lo, hi, shape=(n, n)):
        return torch.randint(lo, hi, shape, generator=g)

    mixed = ints(0, 12)  # most negatives between the nearest and the farthest positive
    clustered = torch.where(same, ints(0, 8), ints(6, 20))  # most beyond the farthest positive
    # Every positive falls back on half the anchors: their negatives are at or below the nearest positive.
    fallback_rows = torch.rand(n, generator=g) < 0.5
    all_fallback = torch.where(same, ints(4, 9), torch.where(fallback_rows[:, None], ints(0, 5), ints(0, 12)))
    cases = [(name, m, labels, labels, True) for name, m in [("mixed", mixed), ("clustered", clustered)]]
    cases.append(("all fallback", all_fallback, labels, labels, True))
    # Negative entries (*_from_sq_dist takes any finite matrix; the streaming paths write -1): every
    # capability's sort, split, search and bucket keys must order them as numbers.
    cases.append(("negative entries", ints(-6, 8), labels, labels, True))
    ref_labels = _labels(g)[: n - 7]  # another reference set: no self to exclude, a different tail
    cases.append(("reference set", ints(0, 12, (n, n - 7)), labels, ref_labels, False))
    return cases


VARIANTS = ((None, True, False), (2.0, False, True))  # (margin, squared, drop): fallback; margin and drop


def _runs():
    """(key, matrix, labels, ref_labels, exclude_self, (margin, squared, drop)) for every case, dtype and variant."""
    for name, d, labels, ref_labels, exclude_self in tie_heavy_cases():
        for dtype in (torch.float32, torch.float64):
            for variant in VARIANTS:
                key = f"{name}, {dtype}, margin={variant[0]}, drop={variant[2]}"
                yield key, d.to(dtype), labels, ref_labels, exclude_self, variant


def non_finite_raises():
    """One NaN, +Inf or -Inf in an anchor's row, at its first and last element (the last in a partial
    16-lane group), at a positive and at a negative: whether the op raised, for each."""
    _, d, labels, _, _ = tie_heavy_cases()[0]
    a = int((labels == labels[0]).nonzero()[0])
    positive = int(((labels == labels[a]) & (torch.arange(labels.numel()) != a)).nonzero()[0])
    negative = int((labels != labels[a]).nonzero()[-1])
    raised = []
    for dtype in (torch.float32, torch.float64):
        for column in (0, d.shape[1] - 1, positive, negative):
            for value in (float("nan"), float("inf"), float("-inf")):
                m = d.to(dtype)
                m[a, column] = value
                try:
                    ops.semi_hard_from_sq_dist(m, labels, labels, True, None, True, False)
                    raised.append(False)
                except ValueError:
                    raised.append(True)
    return raised


def mine_all(out_path):
    """Every run's triplets as lists and non_finite_raises(), saved to out_path (called in a process with
    the capability forced)."""
    got = {}
    for key, m, labels, ref_labels, exclude_self, (margin, squared, drop) in _runs():
        triplets = ops.semi_hard_from_sq_dist(m, labels, ref_labels, exclude_self, margin, squared, drop)
        got[key] = [t.tolist() for t in triplets]
    torch.save((got, non_finite_raises()), out_path)


@functools.lru_cache(maxsize=1)
def expected():
    """The float64 reference's triplets for every run, computed once for all capabilities."""
    want = {}
    for key, m, labels, ref_labels, exclude_self, (margin, squared, drop) in _runs():
        fallback = "drop" if drop else "easiest"
        ref = None if exclude_self else ref_labels  # the reference excludes self when given no reference set
        triplets = semi_hard_from_sq_dist_oracle(m, labels, margin, squared=squared, fallback=fallback, ref_labels=ref)
        want[key] = [t.tolist() for t in triplets]
    return want


def _cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


CAPABILITIES = [("avx512", "avx512f"), ("avx2", "avx2"), ("default", None)]


@pytest.mark.parametrize("capability,flag", CAPABILITIES, ids=[c for c, _ in CAPABILITIES])
def test_tie_heavy_rows_on_every_capability(capability, flag, tmp_path):
    if flag is not None and flag not in _cpu_flags():
        pytest.skip(f"this CPU has no {flag}")
    out = tmp_path / "triplets.pt"
    env = dict(os.environ, FACENET_EXT_CPU_CAPABILITY=capability, PYTHONPATH=str(ROOT / "tests"))
    code = f"import test_semi_hard_row_pass as t; t.mine_all({str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (got, raised), want = torch.load(out), expected()
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key
    assert all(raised), raised


# ---------------------------------------------------------------------------------------------------
# the permute searches (AVX-512, AVX2), compiled alone from csrc/cpu/bucket_search.h, and mutated
# ---------------------------------------------------------------------------------------------------
SEARCH_HEADER = ROOT / "csrc" / "cpu" / "bucket_search.h"
CHECK_SOURCE = ROOT / "tests" / "cpp" / "bucket_search_check.cpp"
LAYOUT = "const int s = span * p + span / 2 - 1;"

# Each mutant must make the check fail: the tree off by one at one level (both searches read it), ties sent
# right, a level skipped, AVX2's last level reading the wrong quarter of the leaves. With the CPU flag the
# check needs to run the mutated search.
MUTANTS = {f"level {k} off by one": (LAYOUT, LAYOUT[:-1] + f" + (level == {k});", "avx2") for k in range(6)}
LEVEL_STEP = "_mm512_permutex2var_ps(low, node, low_hi), x, _CMP_LT_OQ"
MUTANTS["AVX-512: ties go right"] = (LEVEL_STEP, LEVEL_STEP.replace("_LT_", "_LE_"), "avx512f")
MUTANTS["AVX-512: one level fewer"] = ("level < kTreeLevels - 1;", "level < kTreeLevels - 2;", "avx512f")
AVX2_STEP = "_mm256_castps_si256(_mm256_cmp_ps(t, x, _CMP_LT_OQ))"
MUTANTS["AVX2: ties go right"] = (AVX2_STEP, AVX2_STEP.replace("_LT_", "_LE_"), "avx2")
MUTANTS["AVX2: last level blends on the wrong bit"] = (
    "by_bit_avx2(low, high, node, 4)",
    "by_bit_avx2(low, high, node, 5)",
    "avx2",
)


def needs(flag):
    return pytest.mark.skipif(
        shutil.which("g++") is None or flag not in _cpu_flags(), reason=f"needs g++ and a CPU with {flag}"
    )


def _build_and_run(tmp_path, header_text):
    include = tmp_path / "include"
    (include / "cpu").mkdir(parents=True, exist_ok=True)
    (include / "cpu" / "bucket_search.h").write_text(header_text)  # found before csrc's own copy
    exe = tmp_path / "check"
    cmd = ["g++", "-O2", "-std=c++17", f"-I{include}", f"-I{ROOT / 'csrc'}", str(CHECK_SOURCE), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)


@needs("avx2")
def test_permute_search_equals_count_below(tmp_path):
    proc = _build_and_run(tmp_path, SEARCH_HEADER.read_text())
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout


@pytest.mark.parametrize("mutant", [pytest.param(name, marks=needs(m[2])) for name, m in MUTANTS.items()])
def test_permute_search_check_rejects_mutant(tmp_path, mutant):
    before, after, _ = MUTANTS[mutant]
    text = SEARCH_HEADER.read_text()
    assert text.count(before) == 1, "the mutation no longer applies: update MUTANTS with the header"
    proc = _build_and_run(tmp_path, text.replace(before, after))
    assert proc.returncode == 1 and "count_below" in proc.stdout, proc.stdout
