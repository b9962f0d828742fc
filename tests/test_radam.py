"""companion.optim.RAdam against torch.optim.RAdam, driven by one table of option combinations."""

import itertools

import pytest
import torch

from companion.optim.radam import RAdam, radam_step, rectifier, sma_length
from companion.testing.optim_suite import OptimizerContract

OURS, THEIRS = RAdam, torch.optim.RAdam


def _cases():
    """Every combination of the options that change the math, then lrs, betas and eps alone and all together."""
    cases = []
    for weight_decay, decoupled, maximize in itertools.product(
        (0.0, 0.05), (False, True), (False, True)
    ):
        cases.append(
            dict(
                lr=0.01,
                weight_decay=weight_decay,
                decoupled_weight_decay=decoupled,
                maximize=maximize,
            )
        )
    cases += [
        dict(),  # torch's defaults
        dict(lr=0.1),
        dict(lr=3e-4),
        dict(lr=0.01, betas=(0.5, 0.9)),  # ρ_∞ = 19: the rectified step from t = 7 on
        dict(lr=0.01, betas=(0.0, 0.99)),
        dict(
            lr=0.01, betas=(0.9, 0.6)
        ),  # ρ_∞ = 4: never rectified, SGD with momentum throughout
        dict(lr=0.01, eps=1e-3),
        dict(
            lr=0.01,
            betas=(0.8, 0.95),
            eps=1e-4,
            weight_decay=0.1,
            decoupled_weight_decay=True,
            maximize=True,
        ),
    ]
    return cases


CASES = _cases()
ROUND_TRIP = CASES[::2] + [
    dict(lr=0.01, betas=(0.5, 0.9))
]  # (0.5, 0.9): the save falls before, the resume after ρ_t > 5


@pytest.mark.parametrize("beta2, first_rectified", [(0.999, 6), (0.9, 6), (0.6, None)])
def test_rectified_from_rho_above_five(beta2, first_rectified):
    """ρ_t rises from 1 towards ρ_∞; the adaptive step starts with the first t where ρ_t > 5 (t = 6 for the
    usual β₂), and never when ρ_∞ ≤ 5."""
    rectified = [t for t in range(1, 60) if sma_length(t, beta2)[1] > 5.0]
    assert (rectified[0] if rectified else None) == first_rectified
    assert sma_length(1, beta2)[1] == pytest.approx(1.0)


def test_rectifier_tends_to_one():
    rho_inf = sma_length(1, 0.999)[0]
    assert rho_inf == pytest.approx(1999.0)
    assert rectifier(rho_inf, rho_inf) == pytest.approx(1.0)
    assert 0 < rectifier(5.5, rho_inf) < 0.1


def test_first_steps_are_sgd_with_momentum():
    """Before ρ_t > 5 the step is γ m̂_t, whatever the gradient's scale: after one step θ moves by exactly γ g/g."""
    p = torch.zeros(3, dtype=torch.float64)
    state = {}
    radam_step(
        p,
        torch.tensor([2.0, -4.0, 8.0], dtype=torch.float64),
        state,
        lr=0.1,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        maximize=False,
    )
    torch.testing.assert_close(
        p, torch.tensor([-0.2, 0.4, -0.8], dtype=torch.float64), rtol=0, atol=1e-15
    )


class TestRAdam(OptimizerContract):
    """The shared contract, filled with RAdam's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = ROUND_TRIP
    missing_grad = [dict(lr=0.1), dict(lr=0.1, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(eps=-1e-8),
        dict(betas=(1.0, 0.999)),
        dict(betas=(-0.1, 0.999)),
        dict(betas=(0.9, 1.0)),
        dict(weight_decay=-1.0),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["capturable", "differentiable"]
    scheduled = [dict(lr=0.01, weight_decay=0.01)]
    tensor_lr = [
        dict(lr=torch.tensor(0.01), weight_decay=0.1, decoupled_weight_decay=True),
        dict(lr=torch.tensor([0.01])),
    ]
    cuda = [dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)]
    state = [dict(lr=0.1), dict(lr=0.1, decoupled_weight_decay=True, weight_decay=0.1)]
    foreach = CASES + tensor_lr
