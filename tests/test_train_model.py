"""The NN2-style network: shapes, normalisation, L2 pooling where Table 2 puts it, and that it learns."""

import pytest
import torch

import facenet_ext as fx
from facenet_ext.nn import L2Pool2d
from facenet_ext.train.model import NN2


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("in_channels,size", [(1, 32), (3, 64)])
def test_output_is_128d_on_the_unit_sphere(depth, in_channels, size):
    net = NN2(in_channels, width=0.125, depth=depth).eval()
    emb = net(torch.randn(3, in_channels, size, size))
    assert emb.shape == (3, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert net.features(torch.randn(2, in_channels, size, size)).shape == (2, 128)


# FaceNet (Schroff et al., CVPR 2015), Table 2, NN2, the Inception rows, written out from the paper and
# not from NN2_MODULES: depth of the output, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, and the pool
# column ("m" max / "L2" pooling, 3x3; stride 2 where the 3x3 and 5x5 say ",2"; "128p" = a 1x1
# projection to 128 channels, absent where the pooled input is passed through).
#        name   out  1x1  3x3r 3x3  5x5r 5x5  pool  proj stride
TABLE_2 = [
    ("3a", 256, 64, 96, 128, 16, 32, "max", 32, 1),
    ("3b", 320, 64, 96, 128, 32, 64, "l2", 64, 1),
    ("3c", 640, 0, 128, 256, 32, 64, "max", 0, 2),
    ("4a", 640, 256, 96, 192, 32, 64, "l2", 128, 1),
    ("4b", 640, 224, 112, 224, 32, 64, "l2", 128, 1),
    ("4c", 640, 192, 128, 256, 32, 64, "l2", 128, 1),
    ("4d", 640, 160, 144, 288, 32, 64, "l2", 128, 1),
    ("4e", 1024, 0, 160, 256, 64, 128, "max", 0, 2),
    ("5a", 1024, 384, 192, 384, 48, 128, "l2", 128, 1),
    ("5b", 1024, 384, 192, 384, 48, 128, "max", 128, 1),
]


def conv(block):
    """The Conv2d of a ConvBNReLU."""
    return next(m for m in block.modules() if isinstance(m, torch.nn.Conv2d))


def test_full_width_network_has_table_2_modules():
    """The built network at width 1 (not its configuration table), module by module."""
    net = NN2(3, width=1.0, depth=3)
    assert [name for name, _ in net.inception.named_children()] == [row[0] for row in TABLE_2]
    cin = 192  # the stem's last convolution: 3x3, depth 192
    for name, out, n1, r3, n3, r5, n5, pool, proj, stride in TABLE_2:
        m = net.inception.get_submodule(name)
        if n1:
            assert (conv(m.branch1).in_channels, conv(m.branch1).out_channels) == (cin, n1), name
        else:
            assert m.branch1 is None, name
        for branch, reduce, width, kernel in ((m.branch3, r3, n3, 3), (m.branch5, r5, n5, 5)):
            first, second = conv(branch[0]), conv(branch[1])
            assert (first.in_channels, first.out_channels, first.kernel_size) == (cin, reduce, (1, 1)), name
            assert (second.in_channels, second.out_channels) == (reduce, width), name
            assert second.kernel_size == (kernel, kernel) and second.stride == (stride, stride), name
        pooling = m.pool[0] if proj else m.pool
        assert isinstance(pooling, L2Pool2d if pool == "l2" else torch.nn.MaxPool2d), name
        assert (pooling.kernel_size, pooling.stride) in ((3, stride), ((3, 3), (stride, stride))), name
        if proj:
            assert (conv(m.pool[1]).in_channels, conv(m.pool[1]).out_channels) == (cin, proj), name
        assert m.out_channels == out, name
        cin = out
    # The depth column measured on a forward pass, and each stride-2 module halving the resolution
    # (a 64x64 input leaves the stem at 16x16).
    net.eval()
    with torch.no_grad():
        x = net.stem(torch.randn(1, 3, 64, 64))
        for name, out, *_, stride in TABLE_2:
            y = net.inception.get_submodule(name)(x)
            assert y.shape[1] == out and y.shape[-1] == -(-x.shape[-1] // stride), name
            x = y


def test_l2_pooling_runs_our_op(monkeypatch):
    calls = []
    original = fx.nn.l2_pool2d
    monkeypatch.setattr(fx.nn, "l2_pool2d", lambda *a, **k: calls.append(1) or original(*a, **k))
    NN2(1, width=0.125, depth=2)(torch.randn(2, 1, 32, 32)).sum().backward()
    assert len(calls) == sum(1 for row in TABLE_2 if row[0][0] in "34" and row[7] == "l2")  # 3b, 4a-4d


def test_width_scales_parameters_and_depth_drops_stages():
    small, wide = NN2(1, width=0.25, depth=2), NN2(1, width=0.5, depth=2)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) > 2.5 * count(small)
    assert [n for n, _ in NN2(1, width=0.25, depth=1).inception.named_children()] == ["3a", "3b", "3c"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"width": 0}, "width"),
        ({"depth": 4}, "depth"),
        ({"in_channels": 0}, "in_channels"),
        ({"embedding_dim": 0}, "embedding_dim"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NN2(**kwargs)


def test_bad_input_rank():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        NN2(1, width=0.125)(torch.randn(1, 32, 32))


def test_a_few_steps_lower_the_triplet_loss():
    """Four identities, each a fixed random pattern plus noise: 20 AdaGrad steps on one batch (data and
    initial weights from the suite's fresh seed)."""
    patterns = torch.randn(4, 1, 16, 16)
    labels = torch.arange(4).repeat_interleave(6)
    x = patterns[labels] + 0.5 * torch.randn(24, 1, 16, 16)
    net = NN2(1, width=0.125, depth=1)
    opt = torch.optim.Adagrad(net.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        loss = fx.triplet_loss(net(x), labels, 0.2, mining="semihard")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_nn2_dropout_only_in_training():
    """Dropout on the pooled features: two training-mode passes differ, evaluation is deterministic and
    equals the same network without dropout (no parameters added, so the state dicts load across)."""
    torch.manual_seed(0)
    net = NN2(in_channels=1, width=0.25, depth=1, dropout=0.5)
    x = torch.randn(4, 1, 32, 32)
    net.train()
    assert not torch.equal(net(x), net(x))
    plain = NN2(in_channels=1, width=0.25, depth=1)
    plain.load_state_dict(net.state_dict())  # after the passes: their BatchNorm statistics too
    net.eval(), plain.eval()
    torch.testing.assert_close(net(x), plain(x))
    with pytest.raises(ValueError, match="dropout"):
        NN2(dropout=1.0)
    from facenet_ext.train.config import TrainConfig

    with pytest.raises(ValueError, match="dropout"):
        TrainConfig(model="small", dropout=0.2)
