"""MagFaceLoss / ArcFaceLoss against the float64 reference written from the formulas: values and gradients
(magnitudes at and beyond both clamp ends, theta near pi, tiny and huge scales), ArcFace as the special case
of MagFace, gradcheck, the monotone target logit, statistics, a short training run in which MagFace's
magnitude tracks input quality, and bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch.func import functional_call

from facenet_ext.losses import ArcFaceLoss, MagFaceLoss
from facenet_ext.oracle import magface_loss_oracle

from params import dtypes

C, D = 5, 8
PAPER = dict(scale=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0)


def magface_loss(features, weight, labels, **params):
    """MagFaceLoss with the class centres `weight` (differentiable in them)."""
    head = MagFaceLoss(weight.shape[1], weight.shape[0], **params)
    return functional_call(head, {"weight": weight}, (features, labels))


def with_magnitudes(magnitudes, dim=D, dtype=torch.float64):
    """Features in random directions with the given norms."""
    a = torch.as_tensor(magnitudes, dtype=torch.float64)
    return (F.normalize(torch.randn(a.shape[0], dim, dtype=torch.float64), dim=1) * a.unsqueeze(1)).to(dtype)


def centres(classes=C, dim=D):
    return torch.randn(classes, dim, dtype=torch.float64)  # deliberately not unit rows: only directions count


def loss_and_grads(fn, features, weight, labels):
    f = features.detach().clone().requires_grad_()
    w = weight.detach().clone().requires_grad_()
    loss = fn(f, w, labels)
    gf, gw = torch.autograd.grad(loss, (f, w))
    return loss.detach(), gf, gw


def assert_matches_reference(features, weight, labels, rtol=1e-9, atol=1e-9, **params):
    got = loss_and_grads(lambda f, w, y: magface_loss(f, w, y, **params), features, weight, labels)
    want = loss_and_grads(lambda f, w, y: magface_loss_oracle(f, w, y, **params), features, weight, labels)
    for g, w, what in zip(got, want, ("loss", "grad features", "grad weight")):
        assert torch.isfinite(g).all(), what
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=atol, msg=lambda m, what=what: f"{what}: {m}")


# Magnitudes below, at and above both clamp ends (l_a = 10, u_a = 110) and in between.
CLAMP_CASES = {
    "inside": [12.0, 30.0, 55.0, 80.0, 109.0, 20.0],
    "at l_a": [10.0] * 6,
    "below l_a": [0.5, 3.0, 9.99, 1e-3, 7.0, 2.0],
    "at u_a": [110.0] * 6,
    "above u_a": [110.01, 200.0, 1e4, 150.0, 500.0, 111.0],
    "mixed": [0.5, 10.0, 50.0, 110.0, 400.0, 75.0],
}


@pytest.mark.parametrize("case", CLAMP_CASES)
def test_values_and_gradients_across_the_clamp(case):
    features = with_magnitudes(CLAMP_CASES[case])
    labels = torch.randint(C, (6,))
    assert_matches_reference(features, centres(), labels, **PAPER)


@pytest.mark.parametrize("scale", [1e-3, 0.5, 64.0, 1e3])
def test_values_and_gradients_tiny_and_huge_scales(scale):
    features = with_magnitudes(torch.empty(16).uniform_(5, 120))
    assert_matches_reference(features, centres(), torch.randint(C, (16,)), **{**PAPER, "scale": scale})


@pytest.mark.parametrize("gap", [0.0, 1e-9, 1e-4, 0.05, 0.3])
def test_theta_near_pi(gap):
    """Features (almost) opposite to their class centre: theta_y + m > pi, the fallback branch; at gap 0
    the cosine sits beyond the clamp. Values and gradients stay finite and match the reference."""
    weight = centres()
    labels = torch.arange(C)
    w_hat = F.normalize(weight, dim=1)
    direction = F.normalize(-w_hat + gap * torch.randn(C, D, dtype=torch.float64), dim=1)
    features = direction * torch.tensor([5.0, 10.0, 40.0, 110.0, 300.0], dtype=torch.float64).unsqueeze(1)
    assert_matches_reference(features, weight, labels, rtol=1e-7, atol=1e-7, **PAPER)


@pytest.mark.parametrize("margins", [(0.45, 0.8), (math.pi / 2, math.pi / 2)], ids=["paper", "largest"])
def test_target_logit_monotone_in_theta(margins):
    """One feature swept from theta = 0 to pi against its centre e1 (the other centre e3 stays at 90
    degrees): the loss must never fall as theta grows, including across the fallback's step at pi - m."""
    weight = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]], dtype=torch.float64)
    theta = torch.linspace(0, math.pi, 501, dtype=torch.float64)
    params = {**PAPER, "l_m": margins[0], "u_m": margins[1]}
    for a in (10.0, 60.0, 110.0):  # three margins m(a), so three step positions
        f = a * torch.stack([theta.cos(), theta.sin(), torch.zeros_like(theta)], 1)
        losses = torch.stack([magface_loss(row[None], weight, torch.tensor([0]), **params) for row in f])
        assert (losses.diff() >= -1e-9).all()


@dtypes(torch.float32, torch.float64)
def test_arcface_is_magface_with_fixed_margin(dtype):
    arc = ArcFaceLoss(D, C, scale=30.0, margin=0.35).to(dtype)
    mag = MagFaceLoss(D, C, scale=30.0, l_m=0.35, u_m=0.35, lambda_g=0.0).to(dtype)
    mag.weight.data.copy_(arc.weight)
    features = with_magnitudes(torch.empty(12).uniform_(0.1, 300), dtype=dtype)
    labels = torch.randint(C, (12,))

    def loss_and_grads_of(head):
        f = features.clone().requires_grad_()
        loss = head(f, labels)
        return (loss.detach(), *torch.autograd.grad(loss, (f, head.weight)))

    got, want = loss_and_grads_of(arc), loss_and_grads_of(mag)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    # ...and both are the reference's ArcFace.
    ref = magface_loss_oracle(features, arc.weight, labels, scale=30.0, l_m=0.35, u_m=0.35, lambda_g=0.0)
    torch.testing.assert_close(got[0].double(), ref.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params", [PAPER, {**PAPER, "scale": 4.0, "lambda_g": 2.0}], ids=["paper", "soft"])
def test_gradcheck(params):
    """float64 finite differences, magnitudes strictly inside the clamp (the loss is smooth there)."""
    features = with_magnitudes(torch.empty(6).uniform_(15, 100)).requires_grad_()
    weight = centres().requires_grad_()
    labels = torch.randint(C, (6,))
    assert torch.autograd.gradcheck(
        lambda f, w: magface_loss(f, w, labels, **params), (features, weight), fast_mode=True
    )


@dtypes(torch.float16, torch.bfloat16, torch.float32)
def test_low_precision_features_computed_in_float32(dtype):
    head = MagFaceLoss(D, C)
    features = with_magnitudes(torch.empty(10).uniform_(5, 120), dtype=dtype)
    labels = torch.randint(C, (10,))
    loss = head(features, labels)
    assert loss.dtype == torch.float32
    want = magface_loss_oracle(features, head.weight, labels)
    torch.testing.assert_close(loss.double(), want.detach(), rtol=1e-4, atol=1e-4)


def test_stats_and_embedding():
    head = MagFaceLoss(D, C, scale=16.0, lambda_g=5.0)
    features = with_magnitudes([5.0, 20.0, 60.0, 200.0], dtype=torch.float32)
    labels = torch.tensor([0, 1, 2, 3])
    loss, stats = head(features, labels, return_stats=True)
    assert set(stats) == {"ce", "g", "magnitude", "margin"}
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())
    torch.testing.assert_close(loss.detach(), stats["ce"] + 5.0 * stats["g"])
    torch.testing.assert_close(stats["magnitude"], torch.tensor(71.25))  # mean of the unclamped norms
    a = torch.tensor([10.0, 20.0, 60.0, 110.0])
    torch.testing.assert_close(stats["g"], (1 / a + a / 110**2).mean())
    torch.testing.assert_close(stats["margin"], (0.35 / 100 * (a - 10) + 0.45).mean())
    torch.testing.assert_close(head.embed(features), features / features.norm(dim=1, keepdim=True))
    assert head.weight.shape == (C, D)
    torch.testing.assert_close(head.weight.norm(dim=1), torch.ones(C))


def test_zero_feature_gives_finite_gradients():
    features = with_magnitudes([0.0, 30.0]).requires_grad_()
    loss = magface_loss(features, centres(), torch.tensor([1, 2]))
    (grad,) = torch.autograd.grad(loss, features)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


@pytest.fixture
def one_thread():
    """Training runs are deterministic for a given thread count only; one thread also avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def noise_magnitude_spearman(head, seed=0, classes=8, dim=16, n=640, steps=200):
    """Train a small ReLU net under `head` on class-clustered inputs, 40 % of them with strong noise of
    varying level, rescaled to one norm (so the magnitude cannot be read off the input); return the
    Spearman correlation between noise level and feature magnitude."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=gen)
    labels = torch.arange(classes).repeat_interleave(n // classes)
    noise = torch.where(torch.rand(n, generator=gen) < 0.4, 0.5 + 2.5 * torch.rand(n, generator=gen), torch.zeros(n))
    x = means[labels] + (0.2 + noise).unsqueeze(1) * torch.randn(n, dim, generator=gen)
    x = F.normalize(x, dim=1) * dim**0.5
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, head.in_features))
    with torch.no_grad():  # start the magnitudes inside MagFace's clamp [10, 110]
        net[2].weight.mul_(20)
        net[2].bias.mul_(20)
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(steps):
        loss = head(net(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return spearmanr(noise, net(x).norm(dim=1)).statistic


def test_magnitude_tracks_input_quality(one_thread):
    """MagFace's magnitude must fall with the input noise (Spearman < -0.5), and clearly more than with
    ArcFace on the same net and data: part of the trend comes from any trained net (noise moves an input
    away from the directions the net amplifies), so only the contrast shows that MagFace adds to it (here
    mostly through g: with a constant margin and g the run gives -0.79). Seeds 0-9 gave MagFace -0.74 to
    -0.80, below ArcFace by 0.07 to 0.19; about 1.5 s on one thread."""
    torch.manual_seed(0)
    magface = noise_magnitude_spearman(MagFaceLoss(16, 8))
    torch.manual_seed(0)
    arcface = noise_magnitude_spearman(ArcFaceLoss(16, 8, margin=0.5))
    print(f"Spearman(noise, magnitude): MagFace {magface:.3f}, ArcFace {arcface:.3f}")
    assert magface < -0.6
    assert magface < arcface - 0.03


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
FEATURES = with_magnitudes([20.0, 30.0, 40.0], dtype=torch.float32)
LABELS = torch.tensor([0, 1, 4])


def nan_features():
    f = FEATURES.clone()
    f[1, 2] = float("nan")
    return f


BAD_CALLS = [
    ("label too large", lambda h: h(FEATURES, torch.tensor([0, 1, 5])), ValueError, "labels"),
    ("label negative", lambda h: h(FEATURES, torch.tensor([0, -1, 2])), ValueError, "labels"),
    ("float labels", lambda h: h(FEATURES, LABELS.float()), TypeError, "labels"),
    ("labels length", lambda h: h(FEATURES, LABELS[:2]), ValueError, "labels"),
    ("labels 2-D", lambda h: h(FEATURES, LABELS[None]), ValueError, "labels"),
    ("width", lambda h: h(torch.randn(3, D + 1), LABELS), ValueError, "in_features"),
    ("NaN features", lambda h: h(nan_features(), LABELS), ValueError, "features"),
    ("Inf features", lambda h: h(FEATURES * float("inf"), LABELS), ValueError, "features"),
    ("integer features", lambda h: h(FEATURES.long(), LABELS), TypeError, "features"),
    ("1-D features", lambda h: h(FEATURES[0], LABELS), ValueError, "features"),
    ("empty batch", lambda h: h(FEATURES[:0], LABELS[:0]), ValueError, "features"),
    ("features on meta", lambda h: h(FEATURES.to("meta"), LABELS), ValueError, "features"),
]


@pytest.mark.parametrize("head", ["MagFaceLoss", "ArcFaceLoss"])
@pytest.mark.parametrize("what, call, exc, arg", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_forward_input(head, what, call, exc, arg):
    module = MagFaceLoss(D, C) if head == "MagFaceLoss" else ArcFaceLoss(D, C)
    with pytest.raises(exc) as err:
        call(module)
    assert f"{head}:" in str(err.value) and arg in str(err.value), str(err.value)


BAD_PARAMS = [
    ("l_a == u_a", dict(l_a=50.0, u_a=50.0), ValueError, "l_a"),
    ("l_a > u_a", dict(l_a=60.0, u_a=50.0), ValueError, "u_a"),
    ("l_a zero", dict(l_a=0.0), ValueError, "l_a"),
    ("l_m > u_m", dict(l_m=0.9, u_m=0.8), ValueError, "l_m"),
    ("u_m > pi/2", dict(u_m=1.6), ValueError, "u_m"),
    ("negative l_m", dict(l_m=-0.1), ValueError, "l_m"),
    ("zero scale", dict(scale=0.0), ValueError, "scale"),
    ("negative scale", dict(scale=-1.0), ValueError, "scale"),
    ("NaN scale", dict(scale=float("nan")), ValueError, "scale"),
    ("negative lambda_g", dict(lambda_g=-1.0), ValueError, "lambda_g"),
    ("string u_a", dict(u_a="110"), TypeError, "u_a"),
]


@pytest.mark.parametrize("what, params, exc, arg", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_bad_magface_params(what, params, exc, arg):
    with pytest.raises(exc) as err:
        MagFaceLoss(D, C, **params)
    assert "MagFaceLoss:" in str(err.value) and arg in str(err.value)


@pytest.mark.parametrize(
    "kwargs, exc, arg",
    [
        (dict(margin=-0.1), ValueError, "margin"),
        (dict(margin=1.6), ValueError, "margin"),
        (dict(scale=0), ValueError, "scale"),
        (dict(margin=None), TypeError, "margin"),
        (dict(in_features=0), ValueError, "in_features"),
        (dict(num_classes=2.5), TypeError, "num_classes"),  # wrong type: TypeError, as for every scalar
        (dict(num_classes=0), ValueError, "num_classes"),
    ],
)
def test_bad_arcface_params(kwargs, exc, arg):
    args = {"in_features": D, "num_classes": C, **kwargs}
    with pytest.raises(exc) as err:
        ArcFaceLoss(**args)
    assert "ArcFaceLoss:" in str(err.value) and arg in str(err.value)


@pytest.mark.parametrize(
    "cls, saved, other",
    [
        (MagFaceLoss, {"l_a": 10.0}, {"l_a": 20.0}),
        (MagFaceLoss, {"lambda_g": 35.0}, {"lambda_g": 10.0}),
        (ArcFaceLoss, {"margin": 0.5}, {"margin": 0.3}),
    ],
)
def test_state_dict_keeps_the_hyper_parameters(cls, saved, other):
    """Loading weights into a loss built with other hyper-parameters raises (it silently changed the loss);
    the same hyper-parameters load."""
    state = cls(8, 5, **saved).state_dict()
    cls(8, 5, **saved).load_state_dict(state)
    with pytest.raises(ValueError, match=f"{cls.__name__}.load_state_dict: .*{next(iter(other))}"):
        cls(8, 5, **other).load_state_dict(state)


@pytest.mark.parametrize("head", [MagFaceLoss, ArcFaceLoss], ids=["MagFaceLoss", "ArcFaceLoss"])
@dtypes(torch.bfloat16, torch.float16)
def test_autocast_region_computes_in_float32(head, dtype):
    """Inside torch.autocast the loss (value and gradients) is the one computed outside it."""
    module = head(D, C)
    features = with_magnitudes(torch.empty(10).uniform_(5, 120), dtype=torch.float32)
    labels = torch.randint(C, (10,))
    want = module(features, labels)
    (want_grad,) = torch.autograd.grad(want, module.weight)
    with torch.autocast("cpu", dtype=dtype):
        got = module(features, labels)
    (got_grad,) = torch.autograd.grad(got, module.weight)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=0)


@pytest.mark.parametrize("head", [MagFaceLoss, ArcFaceLoss], ids=["MagFaceLoss", "ArcFaceLoss"])
@pytest.mark.parametrize("label_dtype", [torch.int32, torch.int16, torch.uint8], ids=str)
def test_narrow_integer_labels(head, label_dtype):
    module = head(D, C)
    features = with_magnitudes(torch.empty(6).uniform_(5, 120), dtype=torch.float32)
    labels = torch.randint(C, (6,))
    torch.testing.assert_close(module(features, labels.to(label_dtype)), module(features, labels), rtol=0, atol=0)
