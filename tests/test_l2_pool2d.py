"""fx.l2_pool2d and fx.nn.L2Pool2d against the float64 reference, on every device present;
fx.nn.L2Pool2d under TorchScript, and fx.l2_pool2d under torch.func.

Inputs are fresh random numbers each run. Failures are reproducible: hypothesis prints the falsifying
example (its seed included), and the other tests take their seed from conftest's fresh_seed, which
prints it (FACENET_EXT_TEST_SEED=<seed> replays one), and put shapes in the message.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import facenet_ext as fx
from facenet_ext.oracle import l2_pool2d_oracle

from params import devices, requires_cuda

ops = torch.ops.facenet_ext

# Forward vs the float64 reference. float32 sums at most 25 non-negative squares: relative error
# <= 24 u plus the sqrt's rounding, u = 2^-24 (~1.5e-6), so 1e-5 leaves margin; float64 likewise.
FWD_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}
# Gradients sum up to 25 terms g * x / y of either sign, so cancellation costs absolute accuracy.
GRAD_TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-5)}


def check_against_reference(x, k, s, p, ceil_mode, what="", pool=None):
    """Forward and backward of `pool` (default: fx.l2_pool2d with these arguments) vs the float64
    reference's, on x's device and dtype."""
    msg = f"{what} shape={tuple(x.shape)} dtype={x.dtype} k={k} s={s} p={p} ceil_mode={ceil_mode}"
    x = x.detach().requires_grad_()
    y = fx.l2_pool2d(x, k, s, p, ceil_mode) if pool is None else pool(x)
    x64 = x.detach().to(torch.float64).requires_grad_()
    y_ref = l2_pool2d_oracle(x64, k, s, p, ceil_mode)
    expected_shape = F.max_pool2d(x.detach(), k, s, p, ceil_mode=ceil_mode).shape
    assert y.shape == expected_shape, msg
    assert y.dtype == x.dtype and y.device == x.device, msg
    torch.testing.assert_close(y.to(torch.float64), y_ref, **FWD_TOL[x.dtype], msg=lambda m: f"{msg}\n{m}")
    grad_out = torch.randn_like(y_ref)
    (dx,) = torch.autograd.grad(y, x, grad_out.to(y.dtype))
    (dx_ref,) = torch.autograd.grad(y_ref, x64, grad_out)
    torch.testing.assert_close(dx.to(torch.float64), dx_ref, **GRAD_TOL[x.dtype], msg=lambda m: f"{msg} (grad)\n{m}")


@st.composite
def geometries(draw):
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    # smallest input with an output, up to 11 more (odd and even sizes both come up)
    hw = [draw(st.integers(max(1, k[i] - 2 * p[i]), max(1, k[i] - 2 * p[i]) + 11)) for i in range(2)]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), *hw)
    return shape, k, s, p, draw(st.booleans())


@devices()
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@settings(max_examples=60, deadline=None)
@given(geometry=geometries(), data_seed=st.integers(0, 2**31 - 1))
def test_random_geometry_matches_reference(device, dtype, geometry, data_seed):
    shape, k, s, p, ceil_mode = geometry
    gen = torch.Generator().manual_seed(data_seed)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    check_against_reference(x, k, s, p, ceil_mode, what=f"data_seed={data_seed}")


# (shape, kernel_size, stride, padding, ceil_mode): NN2's two pooling shapes (scaled down in N, C),
# odd sizes, batch 1, a 3-D input, kernel 1, stride > kernel (rows in no window), ceil_mode overhangs.
FIXED_CASES = [
    ((2, 8, 28, 28), 3, 1, 1, False),
    ((2, 4, 56, 56), 3, 2, 1, False),
    ((1, 3, 7, 9), (3, 2), (2, 1), (1, 0), True),
    ((1, 1, 5, 5), 2, 2, 0, True),
    ((3, 5, 6), 3, None, 1, True),
    ((2, 3, 6, 7), 1, 1, 0, False),
    ((2, 2, 11, 10), 2, 3, 1, True),
    ((1, 2, 13, 13), 5, 3, 2, True),
]


@devices()
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", FIXED_CASES, ids=str)
def test_fixed_cases_match_reference(device, dtype, case):
    shape, k, s, p, ceil_mode = case
    check_against_reference(torch.randn(shape, dtype=dtype, device=device), k, s, p, ceil_mode)


@devices()
@pytest.mark.parametrize("layout", ["channels_last", "sliced", "transposed"])
def test_non_contiguous_input_gives_identical_results(device, layout):
    base = torch.randn(2, 6, 9, 11, device=device)
    if layout == "channels_last":
        x = base.to(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = torch.randn(2, 12, 9, 22, device=device)[:, ::2, :, ::2]
        base = x.contiguous()
    else:
        x = base.transpose(2, 3).contiguous().transpose(2, 3)
    assert not x.is_contiguous()
    for args in [(3, 1, 1, False), (3, 2, 1, True)]:
        xs, xb = x.clone().requires_grad_(), base.clone().requires_grad_()
        ys, yb = fx.l2_pool2d(xs, *args), fx.l2_pool2d(xb, *args)
        assert torch.equal(ys, yb), (layout, args)
        g = torch.randn_like(yb)
        ys.backward(g)
        yb.backward(g)
        assert torch.equal(xs.grad, xb.grad), (layout, args)


@devices()
def test_strided_grad_out_is_read_in_place(device):
    x = torch.randn(2, 3, 8, 8, device=device)
    y = fx.l2_pool2d(x, 3, 1, 1)
    g = torch.randn(2, 3, 8, 8, device=device).transpose(2, 3)  # non-contiguous
    expected = ops.l2_pool2d_backward(g.contiguous(), x, y, [3, 3], [1, 1], [1, 1], False)
    assert torch.equal(ops.l2_pool2d_backward(g, x, y, [3, 3], [1, 1], [1, 1], False), expected)
    ones = torch.ones(1, device=device).expand_as(y)  # stride 0: what y.sum().backward() passes
    assert torch.equal(
        ops.l2_pool2d_backward(ones, x, y, [3, 3], [1, 1], [1, 1], False),
        ops.l2_pool2d_backward(torch.ones_like(y), x, y, [3, 3], [1, 1], [1, 1], False),
    )


def with_zeros(shape, device):
    """Random float64 input with scattered exact zeros and an all-zero 4x4 block (all-zero windows); the
    non-zeros stay 0.1 away from 0, so gradcheck's finite differences never straddle the kink at 0."""
    x = torch.randn(shape, dtype=torch.float64, device=device)
    x = x + 0.1 * x.sign()
    x[torch.rand(shape, device=device) < 0.3] = 0
    x[..., 1:5, 1:5] = 0
    return x


@devices()
@pytest.mark.parametrize("args", [(3, 1, 1, False), (2, 2, 0, True), (3, 2, 1, True), ((3, 2), (1, 2), (1, 0), False)])
def test_gradcheck_with_exact_zeros(device, args):
    x = with_zeros((1, 2, 7, 8), device).requires_grad_()
    assert (fx.l2_pool2d(x.detach(), *args) == 0).any(), "the case must contain all-zero windows"
    assert torch.autograd.gradcheck(lambda t: fx.l2_pool2d(t, *args), (x,)), args


@devices()
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_gradient_is_zero_and_finite_on_all_zero_windows(device, dtype):
    x = with_zeros((2, 3, 9, 9), device).to(dtype).requires_grad_()
    y = fx.l2_pool2d(x, 3, 1, 1)
    y.backward(torch.randn_like(y))
    assert torch.isfinite(x.grad).all()
    assert (x.grad[x.detach() == 0] == 0).all()
    zero = torch.zeros(1, 2, 5, 5, dtype=dtype, device=device, requires_grad=True)
    fx.l2_pool2d(zero, 3, 2, 1, True).sum().backward()
    assert torch.equal(zero.grad, torch.zeros_like(zero))


# float16/bfloat16 accumulate in float32, so on the same (exactly representable) inputs they differ
# from the float32 op only by the final rounding: at most half an ulp, eps/2 relative. The gradient
# also sees y rounded (another eps/2 in g/y); with g > 0 no cancellation can amplify that, so eps and
# 2 eps leave a factor of 2 of margin. smallest_normal covers results that land in the subnormals.
@devices()
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("args", [(3, 1, 1, False), (3, 2, 1, True), (5, 3, 2, True)])
def test_half_precision_matches_float32(device, dtype, args):
    finfo = torch.finfo(dtype)
    x = torch.randn(2, 4, 15, 13, device=device).to(dtype).requires_grad_()
    x32 = x.detach().float().requires_grad_()
    y, y32 = fx.l2_pool2d(x, *args), fx.l2_pool2d(x32, *args)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), y32, rtol=finfo.eps, atol=finfo.smallest_normal)
    g = torch.rand_like(y) + 0.5
    y.backward(g)
    y32.backward(g.float())
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad.float(), x32.grad, rtol=2 * finfo.eps, atol=finfo.smallest_normal)


@devices()
@pytest.mark.parametrize("k, s", [(3, 1), (3, 2), (2, None), ((2, 3), (1, 2))])
def test_agrees_with_lp_pool2d_without_padding(device, k, s):
    # F.lp_pool2d(x, 2, k, s) = sqrt(sign(m) * relu(|m|) * kh * kw), m = avg_pool2d(x^2): for m >= 0
    # that is sqrt(window sum), our op with padding 0 and ceil_mode False (its ceil_mode divides the
    # overhanging windows by their clipped area, then multiplies by the full one: not comparable).
    x = torch.randn(2, 3, 12, 11, device=device, requires_grad=True)
    x_lp = x.detach().clone().requires_grad_()
    y, y_lp = fx.l2_pool2d(x, k, s), F.lp_pool2d(x_lp, 2, k, s)
    torch.testing.assert_close(y, y_lp, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(y)
    y.backward(g)
    y_lp.backward(g)
    torch.testing.assert_close(x.grad, x_lp.grad, **GRAD_TOL[torch.float32])


@devices()
def test_opcheck(device):
    x = torch.randn(2, 3, 9, 8, device=device, requires_grad=True)
    for k, s, p, ceil_mode in [([3, 3], [1, 1], [1, 1], False), ([3, 2], [2, 3], [1, 0], True)]:
        torch.library.opcheck(ops.l2_pool2d.default, (x, k, s, p, ceil_mode))
        y = ops.l2_pool2d(x.detach(), k, s, p, ceil_mode)
        torch.library.opcheck(ops.l2_pool2d_backward.default, (torch.randn_like(y), x.detach(), y, k, s, p, ceil_mode))


@devices()
def test_compile_fullgraph(device):
    torch._dynamo.reset()
    model = torch.nn.Sequential(fx.nn.L2Pool2d(3, 1, 1), torch.nn.ReLU(), fx.nn.L2Pool2d(3, 2, 1, ceil_mode=True))
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 4, 14, 15, device=device, requires_grad=True)
    x_eager = x.detach().clone().requires_grad_()
    y, y_eager = compiled(x), model(x_eager)
    torch.testing.assert_close(y, y_eager)
    g = torch.randn_like(y)
    y.backward(g)
    y_eager.backward(g)
    torch.testing.assert_close(x.grad, x_eager.grad)


@devices()
def test_double_backward_raises(device):
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, device=device, requires_grad=True)
    (dx,) = torch.autograd.grad(fx.l2_pool2d(x, 3, 1, 1).sum(), x, create_graph=True)  # first order works
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        dx.sum().backward()


@devices()
def test_empty_batch(device):
    x = torch.randn(0, 3, 8, 8, device=device, requires_grad=True)
    y = fx.l2_pool2d(x, 3, 2, 1)
    assert y.shape == (0, 3, 4, 4)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_module_repr_and_state():
    pool = fx.nn.L2Pool2d(3, stride=1, padding=1)
    assert repr(pool) == "L2Pool2d(kernel_size=3, stride=1, padding=1, ceil_mode=False)"
    assert repr(fx.nn.L2Pool2d((3, 2), ceil_mode=True)) == (
        "L2Pool2d(kernel_size=(3, 2), stride=(3, 2), padding=0, ceil_mode=True)"
    )
    assert not list(pool.parameters()) and not pool.state_dict()


# (module arguments, the same geometry spelled out for the reference): every argument reaches the op,
# none swapped (asymmetric pairs), stride=None means the kernel size, and ceil_mode is passed on.
MODULE_CASES = [
    (dict(kernel_size=3, stride=1, padding=1), (3, 1, 1, False)),
    (dict(kernel_size=(3, 2), ceil_mode=True), ((3, 2), (3, 2), 0, True)),
    (dict(kernel_size=(3, 4), stride=(2, 1), padding=(1, 2), ceil_mode=True), ((3, 4), (2, 1), (1, 2), True)),
    (dict(kernel_size=(5, 3), stride=(1, 3), padding=(2, 0)), ((5, 3), (1, 3), (2, 0), False)),
]


@devices()
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", MODULE_CASES, ids=str)
def test_module_matches_reference(device, dtype, case):
    kwargs, (k, s, p, ceil_mode) = case
    pool = fx.nn.L2Pool2d(**kwargs)
    for shape in [(2, 3, 11, 10), (3, 9, 8)]:  # batched, and a 3-D input
        x = torch.randn(shape, dtype=dtype, device=device)
        check_against_reference(x, k, s, p, ceil_mode, what=f"L2Pool2d(**{kwargs})", pool=pool)


# ---------------------------------------------------------------------------------------------------
# TorchScript and torch.func
# ---------------------------------------------------------------------------------------------------
# torch 2.13 deprecates TorchScript in favour of torch.compile/torch.export, but models still get
# scripted and saved, and L2Pool2d must not be what stops them.
torchscript_deprecated = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


def small_model():
    """A conv, then the two L2Pool2d configurations NN2 uses and one with pairs and ceil_mode."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        fx.nn.L2Pool2d(3, 1, 1),
        torch.nn.ReLU(),
        fx.nn.L2Pool2d(3, stride=2, padding=1),
        fx.nn.L2Pool2d((3, 2), stride=(1, 2), padding=(1, 0), ceil_mode=True),
    )


def forward_and_grads(model, x, grad_out):
    x = x.detach().requires_grad_()
    y = model(x)
    y.backward(grad_out)
    return y.detach(), x.grad, [p.grad.clone() for p in model.parameters()]


@torchscript_deprecated
@devices()
def test_torchscript_matches_eager_and_round_trips(device, tmp_path):
    eager = small_model().to(device=device, dtype=torch.float64)
    scripted = torch.jit.script(eager)
    assert "facenet_ext::l2_pool2d" in str(scripted.inlined_graph)  # the op itself, not a Python fallback
    x = torch.randn(2, 3, 13, 11, dtype=torch.float64, device=device)
    g = torch.randn_like(eager(x).detach())
    want = forward_and_grads(eager, x, g)
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path), map_location=device)
    for name, model in [("scripted", scripted), ("loaded", loaded)]:
        model.zero_grad()
        got = forward_and_grads(model, x, g)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0, msg=lambda m, name=name: f"{name} forward\n{m}")
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=0, msg=lambda m, name=name: f"{name} input grad\n{m}")
        torch.testing.assert_close(
            got[2], want[2], rtol=0, atol=0, msg=lambda m, name=name: f"{name} weight grads\n{m}"
        )
    # an unbatched [C, H, W] input, as torch's pooling modules take it
    torch.testing.assert_close(loaded(x[0]), eager(x[0]), rtol=0, atol=0)


@torchscript_deprecated
@pytest.mark.parametrize(
    "x, match",
    [
        (torch.randn(6, 6), "x must be 4-D .* got shape \\(6, 6\\)"),
        (torch.ones(1, 3, 6, 6, dtype=torch.int64), "x must be floating point"),
        (torch.randn(1, 3, 2, 6), "x of spatial size 2x6 is too small for kernel_size \\(3, 3\\)"),
    ],
    ids=["rank", "dtype", "too small"],
)
def test_torchscript_checks_its_input(x, match):
    scripted = torch.jit.script(fx.nn.L2Pool2d(3))
    with pytest.raises(torch.jit.Error, match=f"L2Pool2d: {match}"):
        scripted(x)


# vmap (and jacrev, which vmaps the backward) runs the ops once per batch element and warns about it.
@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
@devices()
@pytest.mark.parametrize("args", [(3, 1, 1, False), ((3, 2), (2, 1), (1, 0), True)], ids=str)
def test_torch_func_matches_reference(device, args):
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, device=device)
    pool = lambda t: fx.l2_pool2d(t, *args)  # noqa: E731
    reference = lambda t: l2_pool2d_oracle(t, *args)  # noqa: E731
    w = torch.randn_like(reference(x))
    x64 = x.clone().requires_grad_()
    (reference(x64) * w).sum().backward()
    torch.testing.assert_close(torch.func.grad(lambda t: (pool(t) * w).sum())(x), x64.grad)
    jacobian = torch.autograd.functional.jacobian(reference, x)
    torch.testing.assert_close(torch.func.jacrev(pool)(x), jacobian)
    torch.testing.assert_close(torch.func.vmap(pool)(x), torch.stack([reference(t) for t in x]))
    # what cannot work still says why: differentiating the gradient
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.func.grad(lambda t: torch.func.grad(lambda u: pool(u).sum())(t).sum())(x)


x4 = torch.randn(1, 2, 6, 6)
BAD_INPUTS = [
    (dict(x=[[1.0]], kernel_size=3), TypeError, "x must be a torch.Tensor"),
    (dict(x=torch.ones(1, 2, 6, 6, dtype=torch.int64), kernel_size=3), TypeError, "x must be floating point"),
    (dict(x=torch.randn(6, 6), kernel_size=3), ValueError, "x must be 4-D"),
    (dict(x=torch.randn(1, 1, 2, 6, 6), kernel_size=3), ValueError, "x must be 4-D"),
    (dict(x=x4, kernel_size=0), ValueError, "kernel_size must be >= 1"),
    (dict(x=x4, kernel_size=(3, 0)), ValueError, "kernel_size must be >= 1"),
    (dict(x=x4, kernel_size=2.5), TypeError, "kernel_size must be an int or a pair"),
    (dict(x=x4, kernel_size=(3, 3, 3)), TypeError, "kernel_size must be an int or a pair"),
    (dict(x=x4, kernel_size=3, stride=0), ValueError, "stride must be >= 1"),
    (dict(x=x4, kernel_size=3, stride=(1, True)), TypeError, "stride must be an int or a pair"),
    (dict(x=x4, kernel_size=3, padding=-1), ValueError, "padding must be >= 0"),
    (dict(x=x4, kernel_size=3, padding=2), ValueError, "padding .* at most half of kernel_size"),
    (dict(x=x4, kernel_size=(3, 2), padding=(1, 2)), ValueError, "padding .* at most half of kernel_size"),
    (
        dict(x=torch.randn(1, 2, 2, 6), kernel_size=3),
        ValueError,
        "x of spatial size 2x6 is too small .* output would be 0x2",
    ),
    (dict(x=torch.randn(1, 2, 0, 6), kernel_size=1), ValueError, "x of spatial size 0x6 is too small"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_errors_name_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=f"l2_pool2d: {match}"):
        fx.l2_pool2d(**kwargs)


def test_module_checks_arguments_at_construction():
    with pytest.raises(ValueError, match="L2Pool2d: padding"):
        fx.nn.L2Pool2d(3, padding=2)


@pytest.mark.parametrize(
    "args, match",
    [
        ((x4, [3, 3], [0, 1], [0, 0], False), "stride must be >= 1"),
        ((x4, [3, 3], [1, 1], [2, 0], False), "padding must be >= 0 and at most half"),
        ((x4.flatten(0, 1), [3, 3], [1, 1], [0, 0], False), "x must be 4-D"),
        ((x4, [9, 9], [1, 1], [0, 0], False), "output size would be -2x-2"),
    ],
)
def test_native_op_checks_its_arguments(args, match):
    # The op is callable without the Python wrapper (torch.ops, other frontends): it checks on its own.
    with pytest.raises(ValueError, match=match):
        ops.l2_pool2d(*args)


def test_native_backward_checks_shapes():
    y = ops.l2_pool2d(x4, [3, 3], [1, 1], [1, 1], False)
    with pytest.raises(ValueError, match="grad_out has shape"):
        ops.l2_pool2d_backward(y[..., :-1], x4, y, [3, 3], [1, 1], [1, 1], False)
    with pytest.raises(TypeError, match="must have x's dtype"):
        ops.l2_pool2d_backward(y.double(), x4, y, [3, 3], [1, 1], [1, 1], False)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    # Same rules (rules/l2_pool_rules.h) and summation order; only FMA contraction on the GPU differs.
    x = with_zeros((4, 8, 17, 19), "cpu").to(dtype)
    for args in [(3, 1, 1, False), (3, 2, 1, True), (2, 3, 0, True)]:
        y_cpu, y_gpu = fx.l2_pool2d(x, *args), fx.l2_pool2d(x.cuda(), *args)
        # Two roundings can differ (the fused multiply-adds of the sum, then the sqrt): 2 eps.
        tol = dict(rtol=2 * torch.finfo(dtype).eps, atol=torch.finfo(dtype).smallest_normal)
        torch.testing.assert_close(y_gpu.cpu(), y_cpu, **tol)
        g = torch.randn_like(y_cpu)
        dx_cpu = ops.l2_pool2d_backward(g, x, y_cpu, *[[a, a] for a in args[:3]], args[3])
        dx_gpu = ops.l2_pool2d_backward(g.cuda(), x.cuda(), y_cpu.cuda(), *[[a, a] for a in args[:3]], args[3])
        torch.testing.assert_close(dx_gpu.cpu(), dx_cpu, rtol=4 * tol["rtol"], atol=1e-5)
