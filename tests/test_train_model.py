"""The NN2-style network: shapes, normalisation, L2 pooling where Table 2 puts it, and that it learns."""
import pytest
import torch

import facenet_ext as fx
from facenet_ext.nn import L2Pool2d
from facenet_ext.train.model import NN2, NN2_MODULES


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("in_channels,size", [(1, 32), (3, 64)])
def test_output_is_128d_on_the_unit_sphere(depth, in_channels, size):
    net = NN2(in_channels, width=0.125, depth=depth).eval()
    emb = net(torch.randn(3, in_channels, size, size))
    assert emb.shape == (3, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert net.features(torch.randn(2, in_channels, size, size)).shape == (2, 128)


def test_pool_branches_follow_table_2():
    net = NN2(1, width=0.125, depth=3)
    for name, *_, pool, _proj, _stride in NN2_MODULES:
        module = net.inception.get_submodule(name)
        pooling = module.pool[0] if isinstance(module.pool, torch.nn.Sequential) else module.pool
        assert isinstance(pooling, L2Pool2d if pool == "l2" else torch.nn.MaxPool2d), name


def test_l2_pooling_runs_our_op(monkeypatch):
    calls = []
    original = fx.nn.l2_pool2d
    monkeypatch.setattr(fx.nn, "l2_pool2d", lambda *a, **k: calls.append(1) or original(*a, **k))
    NN2(1, width=0.125, depth=2)(torch.randn(2, 1, 32, 32)).sum().backward()
    assert len(calls) == sum(1 for row in NN2_MODULES if row[0][0] in "34" and row[6] == "l2")


def test_width_scales_parameters_and_depth_drops_stages():
    small, wide = NN2(1, width=0.25, depth=2), NN2(1, width=0.5, depth=2)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) > 2.5 * count(small)
    assert [n for n, _ in NN2(1, width=0.25, depth=1).inception.named_children()] == ["3a", "3b", "3c"]


@pytest.mark.parametrize("kwargs,message", [
    ({"width": 0}, "width"), ({"depth": 4}, "depth"), ({"in_channels": 0}, "in_channels"), ({"embedding_dim": 0}, "embedding_dim"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NN2(**kwargs)


def test_bad_input_rank():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        NN2(1, width=0.125)(torch.randn(1, 32, 32))


def test_a_few_steps_lower_the_triplet_loss():
    """Four identities, each a fixed random pattern plus noise: 20 AdaGrad steps on one batch."""
    torch.manual_seed(0)
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
