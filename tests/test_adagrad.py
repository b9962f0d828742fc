"""companion.optim.Adagrad against torch.optim.Adagrad, driven by one table of option combinations."""

import itertools

import pytest
import torch

from companion.testing import optim_contract as contract
from companion.testing.optim_suite import OptimizerContract
from companion.optim.adagrad import Adagrad
from companion.testing.installed_torch import skip_unless_supported
from companion.testing.parity import max_abs_diff, state_diff
from companion.testing.tolerances import eps

EPS = eps(torch.float64)

OURS, THEIRS = Adagrad, torch.optim.Adagrad
TOL = 1e-12  # replay-level agreement for the extra checks below


def _cases():
    """Every combination of lr_decay, weight_decay, initial_accumulator_value and maximize, eps alone, all together."""
    cases = [
        dict(
            lr=0.1,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=init,
            maximize=maximize,
        )
        for lr_decay, weight_decay, init, maximize in itertools.product(
            (0.0, 0.1), (0.0, 0.05), (0.0, 0.1), (False, True)
        )
    ]
    cases.append(dict(lr=0.1, eps=1e-3))
    cases.append(
        dict(
            lr=0.1,
            lr_decay=0.1,
            weight_decay=0.05,
            initial_accumulator_value=0.1,
            eps=1e-3,
            maximize=True,
        )
    )
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    "options",
    [
        dict(lr=0.1),
        dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
    ],
    ids=str,
)
def test_missing_grad_leaves_parameter_and_initial_state_alone(options):
    """torch creates Adagrad's state in the constructor, so a parameter without a gradient keeps its
    *initial* state (step 0, sum = initial_accumulator_value), identical to torch's, and its value."""
    pairs = []
    for cls in (OURS, THEIRS):
        gen = torch.Generator().manual_seed(0)
        a, b = (
            torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
            for _ in range(2)
        )
        before = b.detach().clone()
        opt = cls([a, b], **options)
        for _ in range(3):
            a.grad = torch.ones_like(a)
            opt.step()
        assert torch.equal(b.detach(), before)
        assert opt.state[b]["step"].item() == 0.0
        assert torch.equal(
            opt.state[b]["sum"],
            torch.full_like(b, options.get("initial_accumulator_value", 0.0)),
        )
        pairs.append(opt)
    assert state_diff(*pairs) < TOL


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_state_is_created_eagerly_like_torch(default_dtype):
    """Both create step (torch's dtype: float32, or float64 when it is the default) and sum before any step."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        p = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
        ours, theirs = (
            OURS([p], initial_accumulator_value=0.3),
            THEIRS([p], initial_accumulator_value=0.3),
        )
        s, t = ours.state[p], theirs.state[p]
        assert set(s) == set(t) == {"step", "sum"}
        assert (
            s["step"].dtype == t["step"].dtype == default_dtype and s["step"].dim() == 0
        )
        assert (
            s["sum"].dtype == t["sum"].dtype and max_abs_diff(s["sum"], t["sum"]) == 0.0
        )
    finally:
        torch.set_default_dtype(old)


def test_group_initial_accumulator_value_is_ignored_like_torch():
    """torch fills every group's sum with the constructor's value; ours does the same (the closed-loop bound)."""
    diff = contract.compare_optimizers(
        OURS,
        THEIRS,
        dict(lr=0.1, initial_accumulator_value=0.1),
        group_options={"lr": 0.05, "initial_accumulator_value": 2.0},
        relative=True,
    )
    assert diff <= contract.CLOSED_LOOP_ULPS * EPS, diff


def test_add_param_group_initializes_lazily_like_torch():
    """A parameter group added after construction gets its state at its first gradient, within 1e-12.
    An older torch's own Adagrad sets up state in its constructor only and fails at the
    added group's first step (KeyError 'sum'): the comparison skips there."""

    def torch_steps_an_added_group():
        a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
        opt = THEIRS([a], lr=0.1)
        opt.add_param_group({"params": [b]})
        a.grad, b.grad = torch.ones(2), torch.ones(2)
        opt.step()

    what = "the state of a parameter group added after construction"
    skip_unless_supported(torch_steps_an_added_group, what)
    opts, params = [], []
    for cls in (OURS, THEIRS):
        gen = torch.Generator().manual_seed(0)
        a, b = (
            torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
            for _ in range(2)
        )
        opt = cls([a], lr=0.1, initial_accumulator_value=0.2)
        opt.add_param_group({"params": [b], "lr": 0.3})
        assert len(opt.state[b]) == 0
        for k in range(5):
            a.grad, b.grad = torch.full_like(a, 0.5 + k), torch.full_like(b, 1.0 - k)
            opt.step()
        opts.append(opt)
        params.append([a, b])
    assert max_abs_diff(params[0], params[1]) < TOL
    assert state_diff(*opts) < TOL


class TestAdagrad(OptimizerContract):
    """The shared contract, filled with Adagrad's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::3] + CASES[-2:]
    invalid = [
        dict(lr=-0.1),
        dict(lr_decay=-0.1),
        dict(weight_decay=-1.0),
        dict(initial_accumulator_value=-0.5),
        dict(eps=-1e-10),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["differentiable", "fused"]
    scheduled = [dict(lr=0.1, lr_decay=0.01)]
    tensor_lr = [dict(lr=torch.tensor(0.05)), dict(lr=torch.tensor(0.05), lr_decay=0.1)]
    cuda = [
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)
    ]
    sparse = [
        dict(lr=0.1),
        dict(lr=0.1, lr_decay=0.05, maximize=True, initial_accumulator_value=0.1),
        dict(weight_decay=0.1),
    ]  # torch refuses weight decay with sparse gradients
    foreach = CASES + [dict(lr=torch.tensor(0.05), lr_decay=0.1, maximize=True)]
