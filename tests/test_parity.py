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
from companion.testing.tolerances import mismatch


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


class _Liar(torch.Tensor):
    """A tensor subclass that says it equals anything and differs from nothing."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("eq", "__eq__", "equal", "allclose", "isclose"):
            return torch.ones(args[0].shape, dtype=torch.bool)
        if name in ("sub", "__sub__", "__rsub__"):
            return torch.zeros(args[0].shape)
        return super().__torch_function__(func, types, args, kwargs or {})


class _AdamWithLyingState(torch.optim.Adam):
    """torch's Adam whose state, as the comparison sees it, is zeros of a lying subclass."""

    def step(self, closure=None):
        loss = super().step(closure)
        for st in self.state.values():
            for key, value in st.items():
                st[key] = torch.zeros_like(value).as_subclass(_Liar)
        return loss


class _LinearReturningLiar(nn.Linear):
    def forward(self, x):
        return torch.zeros(x.shape[0], self.out_features, dtype=x.dtype).as_subclass(
            _Liar
        )


def test_a_tensor_subclass_is_refused_before_it_can_lie():
    """Refused from type() alone, before any operation: the liar's ``==`` and ``-`` never run."""
    x, y = torch.zeros(3), torch.ones(3)
    liar = x.clone().as_subclass(_Liar)
    # what the liar says when asked: no difference from y
    assert (liar - y).abs().max() == 0 and bool((liar == y).all())
    for a, b in ((liar, y), (y, liar), ([x, liar], [x, y])):
        with pytest.raises(AssertionError, match=r"tensor subclass \(_Liar\)"):
            max_abs_diff(a, b)
        with pytest.raises(AssertionError, match=r"tensor subclass \(_Liar\)"):
            mismatch(*((a[-1], b[-1]) if isinstance(a, list) else (a, b)))
    swapped = torch.zeros(3)
    swapped.__class__ = _Liar  # the checks' own tensor, its class swapped by an answer
    with pytest.raises(AssertionError, match="tensor subclass"):
        max_abs_diff(swapped, y)
    with pytest.raises(AssertionError, match="tensor subclass"):
        replay_gradients(_AdamWithLyingState, torch.optim.Adam, dict(lr=0.1), steps=2)
    torch.manual_seed(0)
    ours, theirs = _LinearReturningLiar(3, 2), nn.Linear(3, 2)
    with pytest.raises(AssertionError, match="tensor subclass"):
        compare_modules(ours, theirs, torch.randn(4, 3))


def test_plain_tensors_and_parameters_are_still_compared():
    p = nn.Parameter(torch.ones(2))
    assert max_abs_diff(p, torch.zeros(2)) == 1.0
    assert mismatch(p, torch.ones(2)).ulps == 0
    assert mismatch(2.0, torch.tensor(2.0)).ulps == 0
