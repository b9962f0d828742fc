"""companion.optim.RMSprop against torch.optim.RMSprop, driven by one table of option combinations."""

import itertools

import pytest
import torch
from torch import nn

from companion.testing import optim_contract as contract
from companion.optim.rmsprop import RMSprop
from companion.testing.parity import max_abs_diff
from companion.testing.tolerances import assert_close

OURS, THEIRS = RMSprop, torch.optim.RMSprop


def _cases():
    """Every combination of weight_decay, momentum, centered and maximize; alpha and eps alone; all together."""
    cases = [
        dict(lr=0.01, weight_decay=weight_decay, momentum=momentum, centered=centered, maximize=maximize)
        for weight_decay, momentum, centered, maximize in itertools.product((0.0, 0.05), (0.0, 0.9), (False, True), (False, True))
    ]
    cases.append(dict(lr=0.01, alpha=0.9))
    cases.append(dict(lr=0.01, eps=1e-3))
    cases.append(dict(lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.05, momentum=0.9, centered=True, maximize=True))
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    "options, keys",
    [(dict(), {"step", "square_avg"}),
     (dict(momentum=0.9), {"step", "square_avg", "momentum_buffer"}),
     (dict(centered=True), {"step", "square_avg", "grad_avg"}),
     (dict(momentum=0.9, centered=True), {"step", "square_avg", "momentum_buffer", "grad_avg"})],
    ids=str,
)
@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_state_keys_and_step_dtype_like_torch(options, keys, default_dtype):
    """Only the buffers the options need, with torch's keys; step is float32 (float64 when that is the default)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        states = []
        for cls in (OURS, THEIRS):
            p = torch.ones(3, dtype=torch.float64, requires_grad=True)
            opt = cls([p], **options)
            p.grad = torch.ones_like(p)
            opt.step()
            states.append(opt.state[p])
        ours, theirs = states
        assert set(ours) == set(theirs) == keys
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
        with pytest.raises(RuntimeError, match="RMSprop does not support sparse gradients"):
            opt.step()


class TestRMSprop(contract.OptimizerContract):
    """The shared contract, filled with RMSprop's tables."""
    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::3] + CASES[-1:]
    missing_grad = [dict(), dict(momentum=0.9, centered=True, weight_decay=0.1)]
    invalid = [dict(lr=-0.1), dict(eps=-1e-8), dict(momentum=-0.5), dict(weight_decay=-1.0), dict(alpha=-0.1),
        dict(lr=torch.tensor([0.1, 0.2]))]
    switches = ["capturable", "foreach", "differentiable"]
    scheduled = [dict(lr=0.01, momentum=0.9, centered=True)]
    tensor_lr = [dict(lr=torch.tensor(0.01), momentum=0.9)]
    cuda = [dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)]
