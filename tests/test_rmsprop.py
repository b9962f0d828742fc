"""companion.optim.RMSprop against torch.optim.RMSprop, driven by one table of option combinations."""

import itertools

import torch

from companion.testing.optim_suite import OptimizerContract
from companion.optim.rmsprop import RMSprop

OURS, THEIRS = RMSprop, torch.optim.RMSprop


def _cases():
    """Every combination of weight_decay, momentum, centered and maximize; alpha and eps alone; all together."""
    cases = [
        dict(
            lr=0.01,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        for weight_decay, momentum, centered, maximize in itertools.product(
            (0.0, 0.05), (0.0, 0.9), (False, True), (False, True)
        )
    ]
    cases.append(dict(lr=0.01, alpha=0.9))
    cases.append(dict(lr=0.01, eps=1e-3))
    cases.append(
        dict(
            lr=0.01,
            alpha=0.9,
            eps=1e-3,
            weight_decay=0.05,
            momentum=0.9,
            centered=True,
            maximize=True,
        )
    )
    return cases


CASES = _cases()


class TestRMSprop(OptimizerContract):
    """The shared contract, filled with RMSprop's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::3] + CASES[-1:]
    missing_grad = [dict(), dict(momentum=0.9, centered=True, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(eps=-1e-8),
        dict(momentum=-0.5),
        dict(weight_decay=-1.0),
        dict(alpha=-0.1),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["capturable", "differentiable"]
    scheduled = [dict(lr=0.01, momentum=0.9, centered=True)]
    tensor_lr = [dict(lr=torch.tensor(0.01), momentum=0.9)]
    cuda = [dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)]
    state = [
        dict(),
        dict(momentum=0.9),
        dict(centered=True),
        dict(momentum=0.9, centered=True),
    ]
    foreach = CASES + [dict(lr=torch.tensor(0.01), momentum=0.9)]
