"""companion.optim.SGD against torch.optim.SGD, driven by one table of option combinations."""

import itertools

import torch

from companion.testing.optim_suite import OptimizerContract
from companion.optim import SGD

OURS, THEIRS = SGD, torch.optim.SGD


def _cases():
    """Every combination of the options that change the math (nesterov only where torch allows it)."""
    cases = []
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True)
    ):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        cases.append(
            dict(
                lr=0.05,
                momentum=momentum,
                dampening=dampening,
                nesterov=nesterov,
                weight_decay=weight_decay,
                maximize=maximize,
            )
        )
    return cases


CASES = _cases()


def test_no_state_without_momentum():
    """Like torch, plain SGD keeps no per-parameter state at all."""
    p = torch.ones(2, requires_grad=True)
    opt = OURS([p], lr=0.1)
    p.grad = torch.ones(2)
    opt.step()
    assert opt.state_dict()["state"] == {}


class TestSGD(OptimizerContract):
    """The shared contract, filled with SGD's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = [c for c in CASES if c["momentum"]] + [dict(lr=0.1)]
    missing_grad = [dict(lr=0.1), dict(lr=0.1, momentum=0.9, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(momentum=-0.5),
        dict(weight_decay=-1.0),
        dict(nesterov=True),
        dict(momentum=0.9, dampening=0.1, nesterov=True),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["differentiable"]
    scheduled = [dict(lr=0.1, momentum=0.9)]
    tensor_lr = [dict(lr=torch.tensor(0.05), momentum=0.9)]
    cuda = [
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        dict(lr=0.05, momentum=0.9, weight_decay=0.01, foreach=True),
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, fused=True),
    ]
    sparse = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, weight_decay=0.1)]
    foreach = CASES + [
        dict(lr=torch.tensor(0.05), momentum=0.9, weight_decay=torch.tensor(0.01))
    ]
    # torch 2.13's own fused SGD raises a TypeError when a parameter's first gradient comes after the group's
    # first step (its momentum buffer is still None); ours handles it (tests/test_fused.py, against the
    # per-tensor path), so the comparison with torch gives every parameter its gradient
    fused_missing_every = 0
    fused = [
        dict(lr=0.05),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.9, dampening=0.3),
        dict(lr=0.05, momentum=0.9, weight_decay=0.05),
        dict(lr=0.05, momentum=0.9, maximize=True),
    ]
