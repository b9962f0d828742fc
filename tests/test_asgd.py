"""companion.optim.ASGD against torch.optim.ASGD, driven by one table of option combinations, and the averaging
checked by hand: ``ax`` is the arithmetic mean of the iterates, ``eta`` follows its formula."""

import itertools

import pytest
import torch

from companion.optim.asgd import ASGD, asgd_step, averaging_weight, decaying_step
from companion.testing.optim_suite import OptimizerContract
from companion.testing.parity import replay_gradients
from companion.testing.tolerances import assert_close, eps

OURS, THEIRS = ASGD, torch.optim.ASGD
F32_IN_F64_ULPS = eps(torch.float32) / eps(
    torch.float64
)  # one float32 ε (2⁻²³) in units of the float64 ε (2⁻⁵²)


def _cases():
    """Every combination of the options that change the math with averaging started early (t₀ = 5, 50, inside the
    25 closed-loop and 200 replayed steps), then each other option alone, then all together."""
    cases = [
        dict(lr=0.05, t0=t0, weight_decay=weight_decay, maximize=maximize)
        for t0, weight_decay, maximize in itertools.product(
            (5, 50), (0.0, 0.05), (False, True)
        )
    ]
    cases += [
        dict(),  # torch's defaults: t₀ = 10⁶, no averaging within the test's steps
        dict(lr=0.1),
        dict(lr=1e-3, t0=5),
        dict(lr=0.05, t0=0),  # averaging from the first steps on
        dict(
            lr=0.05, t0=150
        ),  # the replay's average starts three quarters of the way in
        dict(lr=0.05, t0=5.5),  # a t₀ between two steps
        dict(
            lr=0.05, lambd=0.0, t0=5
        ),  # a constant step and no shrink: plain SGD plus the average
        dict(lr=0.1, lambd=0.5, t0=5),  # a strong shrink and a fast decay of η
        dict(lr=0.05, alpha=0.5, t0=5),
        dict(lr=0.05, alpha=1.0, t0=5),
        dict(lr=0.05, lambd=0.2, alpha=0.6, t0=10, weight_decay=0.1, maximize=True),
    ]
    return cases


CASES = _cases()
# t₀ = 5 and 15 around the save at step 10: the average is saved mid-run, or starts after the resume
ROUND_TRIP = CASES[::2] + [dict(lr=0.05, t0=15), dict(lr=0.05, t0=5, lambd=0.1)]


def _run(steps, *, t0, default_dtype, lr=0.1, lambd=1e-4, alpha=0.75):
    """ASGD on a 4-vector with a fixed gradient sequence; returns the optimizer, the parameter and its iterates."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        gen = torch.Generator().manual_seed(0)
        p = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
        opt = ASGD([p], lr=lr, lambd=lambd, alpha=alpha, t0=t0)
        iterates = []
        for _ in range(steps):
            p.grad = (
                torch.randn(4, generator=gen, dtype=torch.float64) + p.detach()
            )  # a noisy quadratic's gradient
            opt.step()
            iterates.append(p.detach().clone())
    finally:
        torch.set_default_dtype(previous)
    return opt, p, torch.stack(iterates)


@pytest.mark.parametrize("t0", [0, 5, 12])
def test_ax_is_the_mean_of_the_iterates_after_t0(t0):
    """With float64 scalars (the default dtype float64), θ̄_t is the arithmetic mean of θ_{t₀+2}, ..., θ_t, summed by
    hand. The running mean takes 3 roundings per step (θ − θ̄, ·μ, +) over ≤ 30 steps and the hand sum 30 more:
    within 256 ε of the iterates' scale."""
    steps = 30
    opt, p, iterates = _run(steps, t0=t0, default_dtype=torch.float64)
    expected = iterates[t0 + 1 :].sum(0) / (steps - t0 - 1)  # θ_{t₀+2} is row t₀ + 1
    ax = opt.state[p]["ax"]
    assert_close(
        ax,
        expected,
        ulps=256,
        scale=iterates.abs().max().item(),
        what="ax against the hand-computed mean",
    )
    assert (ax - p.detach()).abs().max() > 1e-3, (
        "the average should differ from the last iterate"
    )


def test_ax_with_float32_scalars_is_the_mean_up_to_float32_weights():
    """With the default dtype float32, torch stores μ in float32, and both implementations average with the rounded
    weights 1/k(1 + r), |r| ≤ ε₃₂/2. Each rounded weight moves θ̄ by ≤ μ ε₃₂/2 |θ − θ̄|; summed over k = 2..n this is
    ≤ ε₃₂ (1 + ln n)/2 ≈ 2.2 ε₃₂ of the spread for n = 23 averaged iterates: within 4 float32 ε of the scale."""
    steps, t0 = 30, 5
    opt, p, iterates = _run(steps, t0=t0, default_dtype=torch.float32)
    assert opt.state[p]["mu"].dtype == torch.float32
    expected = iterates[t0 + 1 :].mean(0)
    assert_close(
        opt.state[p]["ax"],
        expected,
        ulps=4 * F32_IN_F64_ULPS,
        scale=iterates.abs().max().item(),
    )


def test_ax_is_the_iterate_before_averaging_starts():
    """With t₀ beyond the steps taken, μ stays 1 and θ̄ is a copy of θ, bit for bit."""
    opt, p, _ = _run(10, t0=100, default_dtype=torch.float32)
    assert torch.equal(opt.state[p]["ax"], p.detach())
    assert opt.state[p]["mu"].item() == 1.0


@pytest.mark.parametrize(
    "lr, lambd, alpha", [(0.1, 1e-4, 0.75), (0.5, 0.3, 0.6), (0.05, 2.0, 1.0)]
)
def test_eta_and_mu_follow_their_formulas(lr, lambd, alpha):
    """After t steps η = γ/(1 + λγt)^α and μ = 1/max(1, t − t₀), computed here by hand in float64 and stored by
    ASGD in float64 (the default dtype float64): one pow and three roundings, within 8 ε of η."""
    t0 = 3
    for steps in (1, 2, 7, 20):
        opt, p, _ = _run(
            steps, t0=t0, default_dtype=torch.float64, lr=lr, lambd=lambd, alpha=alpha
        )
        state = opt.state[p]
        assert state["step"].item() == steps
        assert_close(
            state["eta"],
            torch.tensor(lr / (1 + lambd * lr * steps) ** alpha, dtype=torch.float64),
            ulps=8,
        )
        assert state["mu"].item() == 1 / max(
            1, steps - t0
        )  # 1/k is one correctly rounded division


def test_eta_decays_as_a_power_of_t():
    """For large t, η_t ≈ γ (λγt)^{−α}: doubling t divides η by 2^α (within 1e-4 once λγt ≫ 1)."""
    lr, lambd, alpha = 1.0, 1.0, 0.75
    ratio = decaying_step(2e6, lr=lr, lambd=lambd, alpha=alpha) / decaying_step(
        1e6, lr=lr, lambd=lambd, alpha=alpha
    )
    assert ratio == pytest.approx(2**-alpha, rel=1e-4)
    assert averaging_weight(3, 5) == 1 and averaging_weight(9, 5) == 0.25


def test_average_is_closer_to_the_minimum_than_the_iterate():
    """Noisy quadratic ½‖θ‖² (gradient θ + ξ, ξ ~ N(0, I), 20 coordinates), γ = 0.1, λ = 0, t₀ = 100, 600 steps.
    The iterate keeps fluctuating at ‖θ‖ ≈ √(20 γ/(2 − γ)) ≈ 1.0; the mean of ~500 iterates at
    ‖θ̄‖ ≈ √(20/500) ≈ 0.2. Over 10 seeds the ratio ‖θ̄‖/‖θ‖ measured 0.14–0.27: asserted < 0.5 for each seed."""
    ratios = []
    for seed in range(10):
        gen = torch.Generator().manual_seed(seed)
        p = torch.full((20,), 3.0, dtype=torch.float64, requires_grad=True)
        opt = ASGD([p], lr=0.1, lambd=0.0, t0=100)
        for _ in range(600):
            p.grad = p.detach() + torch.randn(20, generator=gen, dtype=torch.float64)
            opt.step()
        ratios.append((opt.state[p]["ax"].norm() / p.detach().norm()).item())
    assert max(ratios) < 0.5, ratios


def test_first_step_by_hand():
    """One step from η₀ = γ: θ₁ = (1 − λγ) θ₀ − γ g (weight decay δ adds δ θ₀ to g); θ̄₁ = θ₁. In float64 with
    float64 scalars this is 3 roundings per entry: within 4 ε of θ."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        theta = torch.tensor([1.0, -2.0, 0.5])
        g = torch.tensor([0.3, 0.1, -4.0])
        p, state = theta.clone(), {}
        asgd_step(
            p,
            g,
            state,
            lr=0.1,
            lambd=0.2,
            alpha=0.75,
            t0=1e6,
            weight_decay=0.05,
            maximize=False,
        )
    finally:
        torch.set_default_dtype(previous)
    expected = (1 - 0.2 * 0.1) * theta - 0.1 * (g + 0.05 * theta)
    assert_close(p, expected, ulps=4)
    assert torch.equal(state["ax"], p)


def test_complex_parameter_like_torch():
    """A complex parameter is stepped as its (real, imaginary) pairs, as torch does: the same elementwise formulas,
    within the replay bound (2¹² ε of each tensor's scale) over 60 steps."""
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(3, generator=gen, dtype=torch.complex128)
    grads = [torch.randn(3, generator=gen, dtype=torch.complex128) for _ in range(60)]
    ps = [init.clone().requires_grad_() for _ in range(2)]
    opts = [OURS([ps[0]], lr=0.05, t0=5), THEIRS([ps[1]], lr=0.05, t0=5)]
    for g in grads:
        for p, opt in zip(ps, opts):
            p.grad = g.clone()
            opt.step()
    ours, theirs = opts[0].state[ps[0]], opts[1].state[ps[1]]
    assert (
        ours["eta"].item() == theirs["eta"].item()
        and ours["mu"].item() == theirs["mu"].item()
    )
    for a, b in ((ps[0].detach(), ps[1].detach()), (ours["ax"], theirs["ax"])):
        assert_close(torch.view_as_real(a), torch.view_as_real(b), ulps=2**12)


def test_replay_state_matches_after_averaging_begins():
    """The replay's state comparison includes ``ax`` once it has become a true average (t₀ = 5, 200 steps)."""
    d_param, d_state = replay_gradients(
        OURS, THEIRS, dict(lr=0.05, t0=5), steps=200, relative=True
    )
    assert d_param <= 2**12 * eps() and d_state <= 2**12 * eps()


class TestASGD(OptimizerContract):
    """The shared contract, filled with ASGD's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = ROUND_TRIP
    missing_grad = [dict(lr=0.1), dict(lr=0.1, t0=0, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(weight_decay=-1.0),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["foreach", "differentiable", "capturable"]
    scheduled = [dict(lr=0.05, t0=5), dict(lr=0.05, t0=5, weight_decay=0.01, lambd=0.1)]
    tensor_lr = [
        dict(lr=torch.tensor(0.05), t0=5),
        dict(lr=torch.tensor([0.05]), t0=5, weight_decay=0.05),
    ]
    state = [
        dict(lr=0.1),
        dict(lr=0.1, t0=1),
        dict(lr=0.1, lambd=0.5, alpha=1.0, t0=0, weight_decay=0.1),
    ]
    cuda = [dict(lr=0.05, t0=5, weight_decay=0.01)]
