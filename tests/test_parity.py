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


class _AdamWritingNaN(torch.optim.Adam):
    """torch's Adam that, after its third step, writes ``value`` into a parameter or into its state."""

    where, value = "param", float("nan")

    def step(self, closure=None):
        loss = super().step(closure)
        p = self.param_groups[0]["params"][0]
        if self.state[p]["step"] >= 3:
            target = p if self.where == "param" else self.state[p]["exp_avg"]
            with torch.no_grad():
                target.view(-1)[0] = self.value
        return loss


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["param", "state"])
def test_nan_or_inf_in_parameters_or_state_fails_the_comparison(where, value):
    """Python's max(0.0, nan) is 0.0: a NaN must not vanish from the worst difference."""
    ours = type("Bad", (_AdamWritingNaN,), {"where": where, "value": value})
    d_param, d_state = replay_gradients(ours, torch.optim.Adam, dict(lr=0.1), steps=6)
    d = d_param if where == "param" else d_state
    assert not d <= 1e-6, (where, value, d_param, d_state)
    assert not compare_optimizers(ours, torch.optim.Adam, dict(lr=0.1), steps=6) <= 1
    for relative in (False, True):
        x = torch.tensor([1.0, 2.0, 3.0])
        y = x.clone()
        y[1] = value
        # a NaN at the first pair, after a larger finite difference, and at the same place in both
        for a, b in ((y, x), ([x + 5, y], [x, x]), (y, y)):
            assert not max_abs_diff(a, b, relative) <= 1e6, (a, b, relative)


def test_equal_finite_runs_still_agree():
    assert max_abs_diff(torch.tensor([1.0, -2.0]), torch.tensor([1.0, -2.0])) == 0.0
    assert max_abs_diff([torch.zeros(2)], [torch.zeros(2)], relative=True) == 0.0
    assert compare_optimizers(torch.optim.Adam, torch.optim.Adam, dict(lr=0.1)) == 0.0
