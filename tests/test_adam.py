"""companion.optim.Adam against torch.optim.Adam, driven by one table of option combinations."""

import itertools

import torch

from companion.testing.optim_suite import OptimizerContract
from companion.testing.tolerances import assert_close
from companion.optim.adam import Adam

OURS, THEIRS = Adam, torch.optim.Adam


def _cases():
    """Every combination of the switches that change the math, then betas and eps alone and all together."""
    cases = []
    for weight_decay, decoupled, amsgrad, maximize in itertools.product(
        (0.0, 0.05), (False, True), (False, True), (False, True)
    ):
        cases.append(
            dict(
                lr=0.01,
                weight_decay=weight_decay,
                decoupled_weight_decay=decoupled,
                amsgrad=amsgrad,
                maximize=maximize,
            )
        )
    cases += [
        dict(lr=0.01, betas=(0.5, 0.9)),
        dict(lr=0.01, betas=(0.0, 0.99)),
        dict(lr=0.01, eps=1e-3),
        dict(
            lr=0.01,
            betas=(0.8, 0.95),
            eps=1e-4,
            weight_decay=0.1,
            amsgrad=True,
            maximize=True,
            decoupled_weight_decay=True,
        ),
    ]
    return cases


CASES = _cases()


def test_constant_gradient_step_is_lr():
    """With a constant gradient, the bias-corrected step is lr at every t (eps = 0), up to rounding."""
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = OURS([p], lr=0.1, eps=0.0)
    for t in range(1, 51):
        p.grad = torch.tensor([1.0, -2.0, 1e-3], dtype=torch.float64)
        before = p.detach().clone()
        opt.step()
        step = (p.detach() - before).abs()
        # m̂_t = g and v̂_t = g² up to the rounding of t products and sums: within 2¹⁰ ε·γ
        assert_close(step, torch.full_like(step, 0.1), ulps=2**10, what=f"t={t}")


INVALID = [
    dict(lr=-0.1),
    dict(eps=-1e-8),
    dict(betas=(1.0, 0.999)),
    dict(betas=(-0.1, 0.999)),
    dict(betas=(0.9, 1.0)),
    dict(weight_decay=-1.0),
    dict(betas=(0.9, torch.tensor(0.99))),
    dict(betas=(0, 0.999)),
    dict(lr=torch.tensor([0.1, 0.2])),
]


class TestAdam(OptimizerContract):
    """The shared contract, filled with Adam's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::3] + CASES[-4:]
    missing_grad = [dict(lr=0.1), dict(lr=0.1, amsgrad=True, weight_decay=0.1)]
    invalid = INVALID
    switches = ["capturable", "differentiable"]
    foreach = CASES
    scheduled = [dict(lr=0.01, amsgrad=True)]
    tensor_lr = [
        dict(lr=torch.tensor(0.01)),
        dict(lr=0.01, betas=(torch.tensor(0.8), torch.tensor([0.99]))),
    ]
    cuda = [
        dict(lr=0.01, amsgrad=True, weight_decay=0.01),
        dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True),
        dict(lr=0.01, amsgrad=True, weight_decay=0.01, foreach=True),
        dict(lr=0.01, amsgrad=True, weight_decay=0.01, fused=True),
    ]
    state = [dict(lr=0.1), dict(lr=0.1, amsgrad=True)]
