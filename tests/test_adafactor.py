"""companion.optim.Adafactor against torch.optim.Adafactor, driven by one table of option combinations.

The replay's parameters are a matrix, a vector and a 2 × 2 × 2 tensor (factored per leading index);
the closed loop's are two weight matrices and two bias vectors."""

import itertools

import pytest
import torch

from companion.optim.adafactor import Adafactor, adafactor_step
from companion.testing.optim_suite import OptimizerContract
from companion.testing.tolerances import assert_close

OURS, THEIRS = Adafactor, torch.optim.Adafactor


def _cases():
    """Every combination of the options that change the math, then lr, τ, the eps pair and d alone and all together."""
    cases = []
    for weight_decay, maximize, lr in itertools.product(
        (0.0, 0.05), (False, True), (0.01, 0.1)
    ):
        cases.append(dict(lr=lr, weight_decay=weight_decay, maximize=maximize))
    cases += [
        dict(),  # torch's defaults
        dict(lr=1.0),  # ρ_t = 1/√t throughout: the paper's relative step
        dict(
            lr=0.2
        ),  # ρ_t = γ up to t = 25, then 1/√t: the switch falls inside the replay and the closed loop
        dict(
            lr=0.5, weight_decay=0.01
        ),  # the decay uses γ, not ρ_t (which is below γ from t = 5 on)
        dict(beta2_decay=-0.5),
        dict(beta2_decay=0.0),  # 1 − β̂₂ = 1: the last squared gradient only
        dict(eps=(1e-30, 1e-3)),
        dict(eps=(1e-2, 1e-3)),  # ε₁ large enough to clamp V̂_t and mean(R_t)
        dict(eps=(None, 0.0)),
        dict(eps=(None, 10.0)),  # α_t = ε₂ ρ_t: the parameters' scale never counts
        dict(d=2.0),
        dict(d=1e6),  # no clipping
        dict(
            lr=0.05,
            beta2_decay=-0.6,
            eps=(1e-20, 1e-2),
            d=1.5,
            weight_decay=0.1,
            maximize=True,
        ),
    ]
    return cases


CASES = _cases()
ROUND_TRIP = CASES[::2] + [
    dict(lr=0.05, beta2_decay=-0.6, eps=(1e-20, 1e-2), d=1.5, weight_decay=0.1)
]


@pytest.mark.parametrize("shape", [(), (5,), (4, 3), (2, 3, 4), (2, 1, 3, 2)])
def test_state_shapes_and_values_like_torch(shape):
    """Factored row and column second moments for ≥ 2 dims (one pair per leading index), the full one below:
    torch's keys, shapes and values after a few steps."""
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(shape, generator=gen, dtype=torch.float64)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(4)]
    states = []
    for cls in (OURS, THEIRS):
        p = init.clone().requires_grad_()
        opt = cls([p], lr=0.1)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        states.append((p.detach(), opt.state[p]))
    (p_ours, ours), (p_torch, theirs) = states
    assert (
        set(ours)
        == set(theirs)
        == ({"step", "row_var", "col_var"} if len(shape) > 1 else {"step", "variance"})
    )
    for key in theirs:
        assert (
            ours[key].shape == theirs[key].shape
            and ours[key].dtype == theirs[key].dtype
        ), key
        assert_close(
            ours[key], theirs[key], ulps=64
        )  # 4 steps of a norm over ≤ 4 entries and a lerp: a few ε each
    assert_close(p_ours, p_torch, ulps=64)


def test_first_step_of_a_vector_is_the_clipped_relative_step():
    """At t = 1, V̂ = G², so U = sign(G), RMS(U) = 1 (no clipping with d = 1) and the step is ρ₁ RMS(θ) sign(G)."""
    p = torch.tensor([3.0, -4.0], dtype=torch.float64)
    adafactor_step(
        p,
        torch.tensor([0.5, -2.0], dtype=torch.float64),
        {},
        lr=0.1,
        beta2_decay=-0.8,
        eps1=None,
        eps2=1e-3,
        d=1.0,
        weight_decay=0.0,
        maximize=False,
    )
    step = 0.1 * (12.5**0.5)  # ρ₁ = min(0.1, 1) times RMS(θ) = √((9 + 16)/2)
    torch.testing.assert_close(
        p,
        torch.tensor([3.0 - step, -4.0 + step], dtype=torch.float64),
        rtol=0,
        atol=1e-14,
    )


def test_default_eps1_is_the_first_parameters_like_torch():
    """With ε₁ = None torch uses the machine epsilon of the group's first parameter with a gradient for the
    whole group: here float32's (1.2e-7) for a float64 matrix, whose tiny second moments ε₁² = 1.4e-14 then
    clamps (float64's ε² = 4.9e-32 would not)."""
    runs = []
    for cls in (OURS, THEIRS):
        first = torch.ones(3, dtype=torch.float32, requires_grad=True)
        second = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
        opt = cls([first, second], lr=0.1)
        for k in range(3):
            first.grad = torch.full_like(first, 1.0 + k)
            second.grad = torch.full_like(second, 1e-9 * (1.0 + k))
            opt.step()
        runs.append(second.detach())
    assert_close(
        runs[0], runs[1], ulps=64
    )  # 3 steps of a norm over ≤ 3 entries and a lerp: a few ε each


def test_complex_parameters_refused_like_torch():
    for cls in (OURS, THEIRS):
        p = torch.zeros(2, dtype=torch.complex128, requires_grad=True)
        p.grad = torch.ones_like(p)
        with pytest.raises(
            RuntimeError, match="Adafactor does not support complex parameters"
        ):
            cls([p]).step()


class TestAdafactor(OptimizerContract):
    """The shared contract, filled with Adafactor's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = ROUND_TRIP
    missing_grad = [dict(lr=0.1), dict(lr=0.1, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(beta2_decay=0.1),
        dict(eps=(-1e-30, 1e-3)),
        dict(eps=(None, -1e-3)),
        dict(d=0.5),
        dict(weight_decay=-1.0),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["foreach"]
    scheduled = [dict(lr=0.05, weight_decay=0.01)]
    tensor_lr = [
        dict(lr=torch.tensor(0.05), weight_decay=0.1),
        dict(lr=torch.tensor([0.05])),
    ]
    cuda = [dict(lr=0.05, weight_decay=0.01)]
    state = [dict(lr=0.1), dict(lr=0.1, weight_decay=0.1, eps=(1e-3, 1e-3))]
