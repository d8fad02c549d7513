"""pairwise_sq_dist against the float64 reference: values, exactness, symmetry, gradients, opcheck, compile."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import facenet_ext as fx
from facenet_ext.oracle import pairwise_sq_dist_oracle

from params import ALL_FLOATS, FULL, HALF, devices, dtypes
from strategies import SCALE_EXPONENTS, integer_points


def out_dtype(dtype):
    return torch.float32 if dtype in HALF else dtype


def assert_within_gram_bound(out, x, y=None):
    """|D - D_ref| <= 2 (dim + 4) eps (||x_i||^2 + ||y_j||^2): the forward-error bound of the Gram
    expansion ||x||^2 + ||y||^2 - 2<x, y> in the accumulation dtype, evaluated in float64 (where it cannot
    overflow). A result of +inf is accepted only where the bound reaches past the dtype's largest value."""
    y = x if y is None else y
    ref = pairwise_sq_dist_oracle(x, y)
    xn, yn = x.double().square().sum(1), y.double().square().sum(1)
    finfo = torch.finfo(out.dtype)
    tol = 2 * (x.shape[1] + 4) * finfo.eps * (xn.unsqueeze(1) + yn.unsqueeze(0))
    got = out.double()
    ok = (got - ref).abs() <= tol
    ok |= torch.isposinf(got) & (ref + tol >= finfo.max)
    assert ok.all(), f"{(~ok).sum().item()} entries outside the bound; worst at {(~ok).nonzero()[0].tolist()}"


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("with_y", [False, True], ids=["y=None", "y"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (70, 33, 16), (150, 129, 9)], ids=str)
def test_matches_reference(device, dtype, with_y, shape):
    b, n, d = shape
    scale = 10.0 ** torch.randint(-3, 4, ()).item()
    x = (torch.randn(b, d, dtype=torch.float64) * scale).to(dtype).to(device)
    y = (torch.randn(n, d, dtype=torch.float64) * scale).to(dtype).to(device) if with_y else None
    out = fx.pairwise_sq_dist(x, y)
    assert out.dtype == out_dtype(dtype) and out.device == x.device
    assert out.shape == (b, n if with_y else b)
    assert_within_gram_bound(out.cpu(), x.cpu(), None if y is None else y.cpu())


@devices()
@dtypes(*FULL)
def test_non_contiguous_inputs(device, dtype):
    x = torch.randn(9, 20, dtype=dtype, device=device).t()  # [20, 9], column-major
    y = torch.randn(12, 18, dtype=dtype, device=device)[::2, ::2]  # [6, 9], strided
    assert_within_gram_bound(fx.pairwise_sq_dist(x, y).cpu(), x.cpu(), y.cpu())
    assert_within_gram_bound(fx.pairwise_sq_dist(x).cpu(), x.cpu())


@devices()
@dtypes(*FULL)
@pytest.mark.parametrize("batch", [1, 63, 64, 65, 200])  # around the 64-row tile of the symmetric epilogue
def test_symmetric_exactly_with_zero_diagonal(device, dtype, batch):
    # Far from the origin and close together: the Gram expansion cancels badly, so rounding is everywhere.
    x = (100 + 1e-3 * torch.randn(batch, 16, dtype=dtype)).to(device)
    out = fx.pairwise_sq_dist(x)
    assert torch.equal(out, out.t())
    assert torch.equal(out.diagonal(), torch.zeros(batch, dtype=dtype, device=device))
    assert not out.isnan().any() and (out >= 0).all()


@devices()
@dtypes(*ALL_FLOATS)
def test_never_negative_under_cancellation(device, dtype):
    x = (1e3 + torch.randn(50, 8)).to(dtype).to(device)
    y = x + (1e-3 * torch.randn(50, 8)).to(dtype).to(device)  # many true distances below the rounding error
    for out in (fx.pairwise_sq_dist(x, y), fx.pairwise_sq_dist(x)):
        assert not out.isnan().any() and (out >= 0).all()
        assert not torch.signbit(out).any()  # +0, never -0


@given(data=st.data(), dtype=st.sampled_from(ALL_FLOATS), with_y=st.booleans())
def test_exact_on_scaled_small_integers(data, dtype, with_y):
    """Small integers times 2**k (huge and tiny norms included): every step of the Gram expansion is exact,
    so the result must equal the reference bit for bit."""
    b, n, d = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)), data.draw(st.integers(1, 3))
    lo, hi = SCALE_EXPONENTS[dtype]
    scale = 2.0 ** data.draw(st.integers(lo, hi))
    x = (data.draw(integer_points(b, d)) * scale).to(dtype)
    y = (data.draw(integer_points(n, d)) * scale).to(dtype) if with_y else None
    out = fx.pairwise_sq_dist(x, y)
    assert torch.equal(out, pairwise_sq_dist_oracle(x, y).to(out_dtype(dtype)))


@devices()
def test_norm_overflow_never_reports_zero_distance(device):
    """||x||^2 overflows float32 (inf - inf in the Gram expansion) while the distance itself does not. A zero
    distance here would tell a miner two far-apart points coincide; raising or any positive value is fine."""
    x = torch.tensor([[1.9e19, 0.0], [1.9e19, 1e19]], device=device)
    try:
        out = fx.pairwise_sq_dist(x)
    except ValueError as err:
        assert "pairwise_sq_dist" in str(err) and "x" in str(err)
        return
    assert out[0, 1] > 0 and out[1, 0] > 0, out


@devices()
@pytest.mark.parametrize("with_y", [False, True], ids=["y=None", "y"])
def test_gradcheck(device, with_y):
    # Gaussian points: no ties and no zero distances off the diagonal, so the function is smooth there.
    x = torch.randn(6, 4, dtype=torch.float64, device=device, requires_grad=True)
    y = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True) if with_y else None
    inputs = (x, y) if with_y else (x,)
    assert torch.autograd.gradcheck(fx.pairwise_sq_dist, inputs)


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("with_y", [False, True], ids=["y=None", "y"])
@pytest.mark.parametrize("duplicates", [False, True], ids=["distinct", "duplicates"])
def test_grad_matches_reference(device, dtype, with_y, duplicates):
    x = torch.randn(20, 6, dtype=torch.float64)
    if duplicates:
        x[10:] = x[:10]  # zero distances: the reference gradient there is exactly 0
    y = x[:15] + torch.randn(15, 6, dtype=torch.float64)
    if duplicates:
        y[:5] = x[:5]
    x = x.to(dtype).to(device).requires_grad_()
    y = y.to(dtype).to(device).requires_grad_() if with_y else None
    weights = torch.randn(20, 15 if with_y else 20, dtype=torch.float64)
    (fx.pairwise_sq_dist(x, y) * weights.to(out_dtype(dtype)).to(device)).sum().backward()

    xr = x.detach().cpu().double().requires_grad_()
    yr = y.detach().cpu().double().requires_grad_() if with_y else None
    (pairwise_sq_dist_oracle(xr, yr) * weights).sum().backward()
    tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]
    assert x.grad.dtype == dtype and not x.grad.isnan().any()
    torch.testing.assert_close(x.grad.cpu().double(), xr.grad, rtol=tol, atol=tol * 20)
    if with_y:
        assert y.grad.dtype == dtype
        torch.testing.assert_close(y.grad.cpu().double(), yr.grad, rtol=tol, atol=tol * 20)


@devices()
@dtypes(*ALL_FLOATS)
@pytest.mark.parametrize("with_y", [False, True], ids=["y=None", "y"])
def test_opcheck(device, dtype, with_y):
    x = torch.randn(9, 5, dtype=dtype, device=device, requires_grad=dtype in FULL)
    y = torch.randn(4, 5, dtype=dtype, device=device, requires_grad=dtype in FULL) if with_y else None
    torch.library.opcheck(torch.ops.facenet_ext.pairwise_sq_dist.default, (x, y))


@devices()
def test_compile_fullgraph(device):
    def f(x, y):
        return fx.pairwise_sq_dist(x, y).sum() + fx.pairwise_sq_dist(x).square().sum()

    x = torch.randn(10, 4, device=device, requires_grad=True)
    y = torch.randn(7, 4, device=device, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(x, y)
    gx, gy = torch.autograd.grad(out, (x, y))
    ex, ey = torch.autograd.grad(f(x, y), (x, y))
    torch.testing.assert_close(out, f(x, y))
    torch.testing.assert_close((gx, gy), (ex, ey))
