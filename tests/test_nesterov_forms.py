"""companion.experiments.nesterov_forms: the papers' forms of NAG against torch's form, the quadratic, the rate fit."""

import math

import pytest
import torch

from companion.experiments.nesterov_forms import (
    DiagonalQuadratic,
    loglog_slope,
    nesterov_1983,
    nesterov_lookahead,
    run_optimizer,
    spread_quadratic,
    with_noise,
)
from companion.core.functions import beale, rosenbrock, saddle
from companion.optim import SGD
from companion.testing.tolerances import assert_close

TOL = 1e-12  # float64, agreement of two orderings of the same arithmetic


def _autograd(fn):
    """The gradient oracle of a 2-D test function, by autograd."""

    def grad(x):
        x = x.detach().requires_grad_(True)
        fn(x).backward()
        return x.grad

    return grad


def _problems():
    """(name, gradient oracle, start, lr, momentum, steps): smooth, non-convex and stiff cases."""
    q = spread_quadratic(50, smallest=1e-6)
    matrix = DiagonalQuadratic(
        torch.linspace(0.1, 2.0, 12, dtype=torch.float64).reshape(3, 4)
    )
    rb, bl, sd = rosenbrock(), beale(), saddle()
    t = lambda xy: torch.tensor(xy, dtype=torch.float64)
    return [
        (
            "spread-quadratic",
            q.grad,
            torch.ones(50, dtype=torch.float64),
            1.0,
            0.9,
            300,
        ),
        (
            "matrix-quadratic",
            matrix.grad,
            torch.ones(3, 4, dtype=torch.float64),
            0.4,
            0.5,
            200,
        ),
        ("rosenbrock", _autograd(rb), t(rb.start), 1e-3, 0.9, 300),
        ("beale", _autograd(bl), t(bl.start), 1e-2, 0.8, 200),
        ("saddle", _autograd(sd), t(sd.start), 0.05, 0.7, 200),
    ]


PROBLEMS = _problems()
IDS = [p[0] for p in PROBLEMS]


@pytest.mark.parametrize("name, grad, x0, lr, momentum, steps", PROBLEMS, ids=IDS)
@pytest.mark.parametrize(
    "optimizer", [SGD, torch.optim.SGD], ids=["companion", "torch"]
)
def test_lookahead_is_torch_form_after_change_of_variables(
    optimizer, name, grad, x0, lr, momentum, steps
):
    """torch's parameter is the look-ahead point θ + μv, and its buffer is −v/ε, at every step."""
    thetas, velocities = nesterov_lookahead(grad, x0, lr, momentum, steps)
    param = x0.clone().requires_grad_(True)
    opt = optimizer([param], lr=lr, momentum=momentum, nesterov=True)
    for t in range(1, steps + 1):
        param.grad = grad(param.detach())
        opt.step()
        scale = 1 + thetas[t].abs().max().item()
        assert (
            param.detach() - (thetas[t] + momentum * velocities[t])
        ).abs().max().item() < TOL * scale
        buffer = opt.state[param]["momentum_buffer"]
        assert (buffer + velocities[t] / lr).abs().max().item() < TOL * scale / lr


@pytest.mark.parametrize("name, grad, x0, lr, momentum, steps", PROBLEMS, ids=IDS)
def test_1983_with_constant_momentum_is_the_lookahead_form(
    name, grad, x0, lr, momentum, steps
):
    """x_k of Nesterov's scheme with β_k = μ is θ_k of the look-ahead form."""
    thetas, _ = nesterov_lookahead(grad, x0, lr, momentum, steps)
    xs = nesterov_1983(grad, x0, lr, steps, momentum=momentum)
    assert xs.shape == thetas.shape == (steps + 1, *x0.shape)
    assert (xs - thetas).abs().max().item() < TOL * (1 + thetas.abs().max().item())


def test_1983_first_steps_by_hand():
    """β_1 = 0 (a plain gradient step) and β_2 = 1/4, worked out for f = ½ λ x²."""
    lam, s, x0 = 0.5, 1.0, 2.0
    q = DiagonalQuadratic(torch.tensor([lam], dtype=torch.float64))
    xs = nesterov_1983(q.grad, torch.tensor([x0], dtype=torch.float64), s, 3)[
        :, 0
    ].tolist()
    x1 = x0 - s * lam * x0  # y_0 = x_0
    y1 = x1 + 0.0 * (x1 - x0)  # β_1 = 0
    x2 = y1 - s * lam * y1
    y2 = x2 + 0.25 * (x2 - x1)  # β_2 = 1/4
    x3 = y2 - s * lam * y2
    # the same products and sums in another order: a few ε of the iterates' size
    assert_close(torch.as_tensor(xs), torch.as_tensor([x0, x1, x2, x3]), ulps=8)


@pytest.mark.parametrize("dim, smallest", [(20, 1e-2), (200, 1e-8), (500, 1e-4)])
def test_rate_bounds_hold(dim, smallest):
    """With s = 1/L: GD's f(x_k) ≤ L‖x_0‖²/(2k) and the schedule's f(x_k) ≤ 2L‖x_0‖²/(k + 1)², for all k."""
    q = spread_quadratic(dim, largest=2.0, smallest=smallest)
    L, x0, steps = q.smoothness, torch.ones(dim, dtype=torch.float64), 500
    k = torch.arange(1, steps + 1, dtype=torch.float64)
    r2 = (x0 * x0).sum()
    gd = q(run_optimizer(torch.optim.SGD, q.grad, x0, steps, lr=1 / L))[1:]
    nag = q(nesterov_1983(q.grad, x0, 1 / L, steps))[1:]
    assert (gd <= L * r2 / (2 * k) * (1 + 1e-12)).all()
    assert (nag <= 2 * L * r2 / (k + 1) ** 2 * (1 + 1e-12)).all()


@pytest.mark.parametrize("lr, lam", [(0.5, 1.0), (1.0, 0.25), (0.1, 3.0)])
def test_run_optimizer_gradient_descent_closed_form(lr, lam):
    """Plain SGD on f = ½ λ ‖x‖² gives x_k = (1 − sλ)^k x_0."""
    q = DiagonalQuadratic(torch.full((3,), lam, dtype=torch.float64))
    x0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    xs = run_optimizer(SGD, q.grad, x0, 30, lr=lr)
    expected = torch.stack([(1 - lr * lam) ** k * x0 for k in range(31)])
    assert (xs - expected).abs().max().item() < 1e-13
    assert torch.equal(xs[0], x0)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (4, 1, 2)])
def test_quadratic_value_and_gradient(shape):
    """f and ∇f against autograd, float64, within 16 ε·scale (a sum of squares; the gradient is a product);
    f(0) = 0; L is the largest eigenvalue."""
    lam = torch.rand(shape, dtype=torch.float64) + 0.1
    q = DiagonalQuadratic(lam.flatten())
    x = torch.randn(lam.numel(), dtype=torch.float64, requires_grad=True)
    q(x).backward()
    assert_close(x.grad, q.grad(x.detach()), ulps=16)
    assert_close(q(x.detach()), 0.5 * (lam.flatten() * x.detach() ** 2).sum(), ulps=16)
    assert q(torch.zeros(lam.numel(), dtype=torch.float64)).item() == 0.0
    assert q.smoothness == lam.max().item()
    stacked = torch.stack([x.detach(), 2 * x.detach()])
    assert q(stacked).shape == (2,)


@pytest.mark.parametrize(
    "dim, largest, smallest", [(2, 1.0, 0.5), (200, 1.0, 1e-8), (31, 4.0, 4e-3)]
)
def test_spread_quadratic_is_log_spaced(dim, largest, smallest):
    lam = spread_quadratic(dim, largest=largest, smallest=smallest).eigenvalues
    assert lam.shape == (dim,) and lam.dtype == torch.float64
    assert abs(lam[0].item() - largest) < 1e-15 * largest
    assert abs(lam[-1].item() / smallest - 1) < 1e-12
    ratios = lam[1:] / lam[:-1]
    assert (ratios - ratios[0]).abs().max().item() < 1e-12  # a geometric sequence


@pytest.mark.parametrize(
    "bad",
    [dict(smallest=0.0), dict(smallest=2.0, largest=1.0), dict(smallest=-1.0)],
    ids=str,
)
def test_spread_quadratic_rejects_bad_range(bad):
    with pytest.raises(ValueError, match="need 0 < smallest <= largest"):
        spread_quadratic(10, **bad)


def test_gd_gap_matches_the_spectral_estimate():
    """f(x_k) ≈ dim / (4 s k ln(L/λ_min)) in the 1/k range: within 15 %."""
    dim, smallest = 400, 1e-8
    q = spread_quadratic(dim, smallest=smallest)
    gaps = q(
        run_optimizer(SGD, q.grad, torch.ones(dim, dtype=torch.float64), 1000, lr=1.0)
    )
    for k in (30, 300, 1000):
        estimate = dim / (4 * k * math.log(1 / smallest))
        assert abs(gaps[k].item() / estimate - 1) < 0.15, (k, gaps[k].item(), estimate)


@pytest.mark.parametrize("std", [0.0, 0.1, 2.0])
def test_with_noise_statistics_and_reproducibility(std):
    """Noise mean ≈ 0 and std ≈ ``std`` (within 5 standard errors); the same seed gives the same noise."""
    grad = lambda x: 3 * x
    x = torch.ones(20000, dtype=torch.float64)
    a = with_noise(grad, std, torch.Generator().manual_seed(5))(x) - 3 * x
    b = with_noise(grad, std, torch.Generator().manual_seed(5))(x) - 3 * x
    assert torch.equal(a, b)
    n = x.numel()
    assert abs(a.mean().item()) <= 5 * std / math.sqrt(n) + 1e-15
    assert abs(a.std().item() - std) <= 5 * std / math.sqrt(2 * n) + 1e-15


@pytest.mark.parametrize(
    "power, k_min, k_max",
    [(1.0, 10, 1000), (2.0, 1, 50), (0.5, 100, 400), (-1.0, 3, 30)],
)
def test_loglog_slope_recovers_power(power, k_min, k_max):
    """C / k^p has slope −p, to within 1e-10."""
    k = torch.arange(0, k_max + 5, dtype=torch.float64).clamp(min=1)
    values = 7.0 / k**power
    assert abs(loglog_slope(values, k_min, k_max) + power) < 1e-10


@pytest.mark.parametrize("k_min, k_max", [(0, 10), (10, 10), (5, 100)])
def test_loglog_slope_rejects_bad_range(k_min, k_max):
    with pytest.raises(ValueError, match="need 1 <= k_min < k_max"):
        loglog_slope(torch.ones(100), k_min, k_max)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    """On CUDA in float32 the look-ahead form and companion's SGD stay within 1e-4, and noise moves over."""
    q = spread_quadratic(64, smallest=1e-3, dtype=torch.float32, device="cuda")
    x0 = torch.ones(64, device="cuda")
    thetas, velocities = nesterov_lookahead(q.grad, x0, 0.5, 0.9, 100)
    ps = run_optimizer(SGD, q.grad, x0, 100, lr=0.5, momentum=0.9, nesterov=True)
    assert ps.device.type == "cuda"
    assert (ps - (thetas + 0.9 * velocities)).abs().max().item() < 1e-4
    noisy = with_noise(q.grad, 0.1, torch.Generator().manual_seed(0))
    assert noisy(x0).device.type == "cuda"
