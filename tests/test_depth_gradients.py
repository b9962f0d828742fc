"""companion.experiments.depth_gradients: the deep and residual networks, the per-layer measurement,
and the clipping training loop."""

import pytest
import torch
from torch import nn

from companion.core.data import Split
from companion.experiments.depth_gradients import (
    ResidualBlock,
    cosine,
    deep_mlp,
    gradients_through_depth,
    train_clipped,
)


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 8, generator=g), torch.randint(3, (n,), generator=g))


def test_shapes_and_layers():
    plain, res = deep_mlp(8, 16, 5, 3), deep_mlp(8, 16, 5, 3, residual=True)
    assert plain(_data().X).shape == res(_data().X).shape == (32, 3)
    assert (
        sum(isinstance(m, nn.Linear) for m in plain.modules())
        == sum(isinstance(m, nn.Linear) for m in res.modules())
        == 6
    )
    assert sum(isinstance(m, ResidualBlock) for m in res.modules()) == 4
    stats = gradients_through_depth(res, _data())
    assert len(stats.weight_grad_norm) == 6 and len(stats.gradient_var) == 5


def test_residual_block_is_identity_plus_branch():
    block = ResidualBlock(4, nn.Tanh, alpha=0.5)
    h = torch.randn(3, 4)
    assert torch.equal(block(h), h + 0.5 * torch.tanh(block.linear(h)))


def test_clipping_rules():
    torch.manual_seed(0)
    data = _data()
    for clip in ("none", "norm", "value"):
        torch.manual_seed(0)
        run = train_clipped(
            deep_mlp(8, 16, 3, 3), data, clip, threshold=0.01, steps=5, lr=0.1
        )
        assert len(run.losses) == 5 and not run.diverged
        if (
            clip != "value"
        ):  # norm clipping rescales: the direction is unchanged (float32: 64 ε of roundings)
            assert all(
                abs(c - 1) <= 64 * torch.finfo(torch.float32).eps for c in run.cosines
            )
    with pytest.raises(ValueError, match="clip must be"):
        train_clipped(deep_mlp(8, 16, 3, 3), data, "bogus")
    a = [torch.tensor([1.0, 0.0])]
    assert abs(cosine(a, [torch.tensor([0.0, 2.0])])) == 0.0
