"""companion.optim.Adadelta against torch.optim.Adadelta, driven by one table of option combinations."""

import itertools

import pytest
import torch
from torch import nn

from companion.testing import optim_contract as contract
from companion.optim.adadelta import Adadelta
from companion.testing.parity import max_abs_diff
from companion.testing.tolerances import assert_close

OURS, THEIRS = Adadelta, torch.optim.Adadelta


def _cases():
    """Every combination of rho, weight_decay and maximize; lr and eps alone; everything together."""
    cases = [
        dict(rho=rho, weight_decay=weight_decay, maximize=maximize)
        for rho, weight_decay, maximize in itertools.product((0.9, 0.5), (0.0, 0.05), (False, True))
    ]
    cases.append(dict(lr=0.5))
    cases.append(dict(eps=1e-3))
    cases.append(dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.05, maximize=True))
    return cases


CASES = _cases()


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_state_keys_and_step_dtype_like_torch(default_dtype):
    """Created at the first gradient, with torch's keys; step is float32 (float64 when that is the default)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        states = []
        for cls in (OURS, THEIRS):
            p = torch.ones(3, dtype=torch.float64, requires_grad=True)
            opt = cls([p])
            assert len(opt.state[p]) == 0
            p.grad = torch.ones_like(p)
            opt.step()
            states.append(opt.state[p])
        ours, theirs = states
        assert set(ours) == set(theirs) == {"step", "square_avg", "acc_delta"}
        assert ours["step"].dtype == theirs["step"].dtype == default_dtype and ours["step"].dim() == 0
        # one step of the same elementwise formula: a few ε (the sqrt and division round per kernel)
        for k in ours:
            assert_close(ours[k], theirs[k], ulps=8, what=k)
    finally:
        torch.set_default_dtype(old)


def test_sparse_gradients_are_refused_like_torch():
    for cls in (OURS, THEIRS):
        emb = nn.Embedding(5, 2, sparse=True)
        opt = cls(emb.parameters())
        emb(torch.tensor([1, 2])).sum().backward()
        with pytest.raises(RuntimeError, match="Adadelta does not support sparse gradients"):
            opt.step()


class TestAdadelta(contract.OptimizerContract):
    """The shared contract, filled with Adadelta's tables."""
    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::2] + CASES[-1:]
    missing_grad = [dict(), dict(lr=0.5, rho=0.5, weight_decay=0.1)]
    invalid = [dict(lr=-0.1), dict(rho=-0.1), dict(rho=1.5), dict(eps=-1e-6), dict(weight_decay=-1.0),
        dict(lr=torch.tensor([0.1, 0.2]))]
    switches = ["foreach", "capturable", "differentiable"]
    scheduled = [dict(rho=0.9)]
    tensor_lr = [dict(lr=torch.tensor(0.5), rho=0.9)]
    cuda = [dict(lr=0.5, rho=0.9, weight_decay=0.01)]
