"""companion.optim.Adadelta against torch.optim.Adadelta, driven by one table of option combinations."""

import itertools

import torch

from companion.testing.optim_suite import OptimizerContract
from companion.optim.adadelta import Adadelta

OURS, THEIRS = Adadelta, torch.optim.Adadelta


def _cases():
    """Every combination of rho, weight_decay and maximize; lr and eps alone; everything together."""
    cases = [
        dict(rho=rho, weight_decay=weight_decay, maximize=maximize)
        for rho, weight_decay, maximize in itertools.product(
            (0.9, 0.5), (0.0, 0.05), (False, True)
        )
    ]
    cases.append(dict(lr=0.5))
    cases.append(dict(eps=1e-3))
    cases.append(dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.05, maximize=True))
    return cases


CASES = _cases()


class TestAdadelta(OptimizerContract):
    """The shared contract, filled with Adadelta's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::2] + CASES[-1:]
    missing_grad = [dict(), dict(lr=0.5, rho=0.5, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(rho=-0.1),
        dict(rho=1.5),
        dict(eps=-1e-6),
        dict(weight_decay=-1.0),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["capturable", "differentiable"]
    scheduled = [dict(rho=0.9)]
    tensor_lr = [dict(lr=torch.tensor(0.5), rho=0.9)]
    cuda = [dict(lr=0.5, rho=0.9, weight_decay=0.01)]
    foreach = CASES + tensor_lr
