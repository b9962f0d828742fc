"""companion.testing.parity: the comparison helpers detect differences and report zero for identical runs."""

import pytest
import torch
from torch import nn

from companion.testing.parity import (
    compare_modules,
    compare_optimizers,
    max_abs_diff,
    replay_gradients,
)


def test_max_abs_diff():
    assert max_abs_diff(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])) == 0.5
    assert (
        max_abs_diff(
            [torch.zeros(2), torch.ones(3)], [torch.zeros(2), torch.ones(3) * 2]
        )
        == 1.0
    )
    with pytest.raises(ValueError):
        max_abs_diff([torch.zeros(1)], [])


def test_identical_optimizers_agree_and_different_ones_do_not():
    assert (
        compare_optimizers(torch.optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9))
        == 0.0
    )
    assert compare_optimizers(torch.optim.SGD, torch.optim.Adam, dict(lr=0.1)) > 1e-3
    assert replay_gradients(
        torch.optim.Adam, torch.optim.Adam, dict(lr=0.1), steps=20
    ) == (0.0, 0.0)


def test_state_keys_must_match():
    with pytest.raises(AssertionError, match="state keys"):
        replay_gradients(torch.optim.SGD, torch.optim.Adagrad, dict(lr=0.1), steps=2)


def test_compare_modules():
    torch.manual_seed(0)
    a = nn.Linear(3, 2).double()
    b = nn.Linear(3, 2).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64)
    assert compare_modules(a, b, x) == {
        "output": 0.0,
        "input_grad": 0.0,
        "param_grad": 0.0,
    }
    with torch.no_grad():
        b.bias += 0.5
    assert compare_modules(a, b, x)["output"] == pytest.approx(0.5)
