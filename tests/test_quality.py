"""face_quality, aggregate_templates (hand cases, id order, gradients) and the error-versus-reject curve
(against a pair-by-pair count, and falling when quality flags the errors), plot_erc, bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import facenet_ext as fx
from facenet_ext.quality import error_versus_reject, plot_erc

from params import dtypes


@dtypes(torch.float16, torch.bfloat16, torch.float32, torch.float64)
def test_face_quality_is_the_row_norm(dtype):
    f = torch.randn(9, 5, dtype=torch.float64) * 40
    q = fx.face_quality(f.to(dtype))
    assert q.dtype == (torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)
    torch.testing.assert_close(q.double(), f.to(dtype).double().norm(dim=1), rtol=1e-6, atol=1e-6)


def test_aggregate_templates_hand_case():
    features = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, -2.0], [5.0, 5.0], [-1.0, 0.0], [1.0, 0.0]])
    ids = torch.tensor([7, 7, 2, 9, 4, 4])
    mag, order = fx.aggregate_templates(features, ids)
    mean, order_mean = fx.aggregate_templates(features, ids, weights="mean")
    assert order.tolist() == order_mean.tolist() == [2, 4, 7, 9]  # sorted unique ids
    s2 = 2**-0.5
    # template 4's two images cancel exactly: its aggregate is zeros in both modes
    torch.testing.assert_close(mag, torch.tensor([[0.0, -1.0], [0.0, 0.0], [3 / 10**0.5, 1 / 10**0.5], [s2, s2]]))
    torch.testing.assert_close(mean, torch.tensor([[0.0, -1.0], [0.0, 0.0], [s2, s2], [s2, s2]]))


def test_aggregate_templates_magnitude_weighting():
    """normalise(sum_i a_i f_hat_i) written out per template, against the index_add version."""
    features = torch.randn(30, 6, dtype=torch.float64) * torch.rand(30, 1, dtype=torch.float64) * 50
    ids = torch.randint(-3, 8, (30,))
    got, order = fx.aggregate_templates(features, ids)
    a = features.norm(dim=1, keepdim=True)
    for row, t in zip(got, order):
        members = ids == t
        want = F.normalize((a[members] * features[members] / a[members]).sum(0), dim=0)
        torch.testing.assert_close(row, want)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(order), dtype=torch.float64))


@pytest.mark.parametrize("weights", ["magnitude", "mean"])
def test_aggregate_templates_gradcheck(weights):
    features = torch.randn(7, 3, dtype=torch.float64).requires_grad_()
    ids = torch.tensor([0, 1, 1, 2, 2, 2, 0])
    assert torch.autograd.gradcheck(lambda f: fx.aggregate_templates(f, ids, weights)[0], (features,))


def test_aggregate_templates_half_precision():
    features = torch.randn(8, 4) * 30
    ids = torch.arange(8) // 3
    got, _ = fx.aggregate_templates(features.half(), ids)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, fx.aggregate_templates(features.half().float(), ids)[0])


# ---------------------------------------------------------------------------------------------------
# error-versus-reject
# ---------------------------------------------------------------------------------------------------
def erc_by_pairs(emb, labels, quality, fractions, far):
    """The ERC by looping over pairs: accept the pairs of similarity >= t, where t is the smallest pair
    similarity with #{impostors >= t} <= far * #impostors (the largest such acceptance set; t = inf when
    even the most similar pair is one impostor too many), then per fraction drop the lowest-quality images."""
    e = F.normalize(emb.double(), dim=1)
    sims = e @ e.T
    n = len(labels)
    pairs = [(i, j, float(sims[i, j]), bool(labels[i] == labels[j])) for i in range(n) for j in range(i + 1, n)]
    impostor_sims = [s for *_, s, g in pairs if not g]
    t = next(
        (s for s in sorted(s for *_, s, _ in pairs) if sum(x >= s for x in impostor_sims) / len(impostor_sims) <= far),
        float("inf"),
    )
    order = sorted(range(n), key=lambda i: (float(quality[i]), i))
    fnmr, fmr = [], []
    for r in fractions:
        kept = set(order[round(r * n) :])
        rest = [(s, g) for i, j, s, g in pairs if i in kept and j in kept]
        fnmr.append(sum(g and s < t for s, g in rest) / sum(g for _, g in rest))
        fmr.append(sum(not g and s >= t for s, g in rest) / sum(not g for _, g in rest))
    return t, [s for *_, s, _ in pairs], fnmr, fmr


def noisy_verification_set(n_ids=12, per_id=6, dim=16, gen=None):
    """Identities on the sphere, each image pushed off its identity by a random noise level; the
    quality -noise then flags exactly the images that cause errors."""
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    centres = F.normalize(torch.randn(n_ids, dim, generator=gen), dim=1)
    noise = 2.0 * torch.rand(len(labels), generator=gen)
    emb = centres[labels] + noise.unsqueeze(1) * torch.randn(len(labels), dim, generator=gen) / dim**0.5
    return emb, labels, noise


@pytest.mark.parametrize("far", [1e-3, 0.05])
def test_erc_matches_pair_count(far):
    emb, labels, noise = noisy_verification_set(n_ids=6, per_id=5)
    quality = torch.rand(len(labels)).round(decimals=1)  # ties: the lower index is rejected first
    fractions = (0.0, 0.1, 0.25, 0.5)
    got = error_versus_reject(emb, labels, quality, fractions, far=far)
    t, sims, fnmr, fmr = erc_by_pairs(emb, labels, quality, fractions, far)
    sims = np.array(sims)
    np.testing.assert_array_equal(sims >= got["threshold"], sims >= t)  # the same pairs accepted
    np.testing.assert_allclose(got["fnmr"], fnmr)
    np.testing.assert_allclose(got["fmr"], fmr)
    assert got["fmr"][0] <= far
    assert got["kept"].tolist() == [30, 27, 22, 15]


def test_erc_threshold_is_val_at_far_threshold():
    """One definition of "the threshold at a FAR": the ERC's is verification's, on negated similarities."""
    from facenet_ext.eval.verification import threshold_at_far

    emb, labels, _ = noisy_verification_set(n_ids=8, per_id=5)
    e = F.normalize(emb.double(), dim=1)
    i, j = torch.triu_indices(len(labels), len(labels), offset=1)
    sim, genuine = (e @ e.T)[i, j].numpy(), (labels[i] == labels[j]).numpy()
    for far in (1e-3, 0.05, 0.3):
        erc = error_versus_reject(emb, labels, torch.rand(len(labels)), far=far)
        assert float(erc["threshold"]) == -threshold_at_far(-sim, genuine, far)


def test_erc_falls_when_quality_flags_the_errors():
    gen = torch.Generator().manual_seed(0)
    emb, labels, noise = noisy_verification_set(n_ids=30, per_id=8, gen=gen)
    good = error_versus_reject(emb, labels, -noise)
    blind = error_versus_reject(emb, labels, torch.rand(len(labels), generator=gen))
    assert good["fraction"].tolist() == pytest.approx([i / 20 for i in range(11)])
    assert good["fnmr"][0] == blind["fnmr"][0] > 0.2  # same threshold, same full set
    assert (np.diff(good["fnmr"]) <= 1e-12).all()
    assert good["fnmr"][-1] < 0.5 * good["fnmr"][0]
    assert good["error"][-1] < good["error"][0]
    assert good["fnmr"][-1] < blind["fnmr"][-1]


def test_plot_erc_writes_png(tmp_path):
    emb, labels, noise = noisy_verification_set()
    curves = {"magnitude": error_versus_reject(emb, labels, -noise), "random": error_versus_reject(emb, labels, noise)}
    path = plot_erc(curves, tmp_path / "erc.png")
    assert path == tmp_path / "erc.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_erc(curves, tmp_path / "err.png", metric="error")


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
F6 = torch.randn(6, 3)
L6 = torch.tensor([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize(
    "call, exc, fn, arg",
    [
        (lambda: fx.face_quality(torch.randn(6)), ValueError, "face_quality", "features"),
        (lambda: fx.face_quality(F6.int()), TypeError, "face_quality", "features"),
        (lambda: fx.face_quality(F6 / 0), ValueError, "face_quality", "features"),
        (lambda: fx.aggregate_templates(F6, L6, weights="median"), ValueError, "aggregate_templates", "weights"),
        (lambda: fx.aggregate_templates(F6, L6[:5]), ValueError, "aggregate_templates", "template_ids"),
        (lambda: fx.aggregate_templates(F6, L6.float()), TypeError, "aggregate_templates", "template_ids"),
        (lambda: fx.aggregate_templates(F6 * float("nan"), L6), ValueError, "aggregate_templates", "features"),
        (lambda: error_versus_reject(F6, L6, torch.rand(5)), ValueError, "error_versus_reject", "quality"),
        (lambda: error_versus_reject(F6, L6, L6), ValueError, "error_versus_reject", "quality"),
        (lambda: error_versus_reject(F6, L6, torch.rand(6) / 0), ValueError, "error_versus_reject", "quality"),
        (lambda: error_versus_reject(F6, L6[:4], torch.rand(6)), ValueError, "error_versus_reject", "labels"),
        (lambda: error_versus_reject(F6, L6, torch.rand(6), (0, 1.0)), ValueError, "error_versus_reject", "fractions"),
        (lambda: error_versus_reject(F6, L6, torch.rand(6), far=0), ValueError, "error_versus_reject", "far"),
        (lambda: error_versus_reject(F6, torch.arange(6), torch.rand(6)), ValueError, "error_versus_reject", "labels"),
        (lambda: plot_erc({}, "erc.png"), ValueError, "plot_erc", "curves"),
        (lambda: plot_erc({"x": {}}, "erc.png", metric="fmr"), ValueError, "plot_erc", "metric"),
    ],
)
def test_bad_input(call, exc, fn, arg):
    with pytest.raises(exc) as err:
        call()
    assert f"{fn}:" in str(err.value) and arg in str(err.value), str(err.value)
