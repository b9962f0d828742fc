"""companion.core.interactive: the numbers behind the interactive figures, and the HTML they make.

The paths are checked against SGD written out by hand, the schedules against torch's schedulers, and
the penalized minima against what the math says: L2's closed form, and the λ beyond which the L1
minimum has an exact zero (the optimality conditions of the lasso in two dimensions).
"""

import json
import re

import pytest
import torch

from companion.core import interactive
from companion.core.functions import optimize_2d, quadratic
from companion.optim import SGD
from companion.testing.tolerances import assert_close

LRS, MOMENTA, STEPS = (0.02, 0.07, 0.09), (0.0, 0.5, 0.9), 40


@pytest.fixture(scope="module")
def momentum():
    return interactive.momentum_grid(lrs=LRS, momenta=MOMENTA, steps=STEPS)


@pytest.fixture(scope="module")
def penalties():
    return interactive.penalty_grid()


def heavy_ball(lr, momentum, steps, kappa=25.0):
    """torch's form of SGD with momentum on ½(x² + κ y²), written out: b ← γ b + ∇f, θ ← θ − α b."""
    theta = torch.tensor(quadratic(kappa).start, dtype=torch.float64)
    curvature = torch.tensor([1.0, kappa], dtype=torch.float64)
    b, path = None, [theta]
    for _ in range(steps):
        grad = curvature * theta
        b = grad if b is None else momentum * b + grad  # torch's buffer starts at ∇f
        theta = theta - lr * b
        path.append(theta)
    return torch.stack(path)


@pytest.mark.parametrize("i", range(len(LRS)))
@pytest.mark.parametrize("j", range(len(MOMENTA)))
def test_momentum_paths_are_sgd(momentum, i, j):
    path = torch.tensor(
        momentum["paths"][i][j], dtype=torch.float64
    ).T  # (steps + 1, 2)
    alone, values = optimize_2d(
        quadratic(25.0), SGD, steps=STEPS, lr=LRS[i], momentum=MOMENTA[j]
    )
    # the same operations on the same numbers as one SGD on one point: identical
    assert_close(path, alone, ulps=0, what="grid vs optimize_2d")
    # by hand: the same update in another order of operations; a few ε per step, 40 steps
    assert_close(path, heavy_ball(LRS[i], MOMENTA[j], STEPS), ulps=100, what="by hand")
    assert momentum["losses"][i][j] == values[-1].item()


def test_momentum_title_says_diverges_only_when_it_does(momentum):
    # α = 0.09 > 2/κ without momentum diverges; with γ = 0.5 it converges (bound 2(1 + γ)/κ)
    diverged = interactive._momentum_title(momentum, 2, 0)
    converged = interactive._momentum_title(momentum, 2, 1)
    assert "diverges" in diverged and "diverges" not in converged, (diverged, converged)
    assert momentum["losses"][2][0] > 1e3 > 1e-6 > momentum["losses"][2][1]


START = {"OneCycleLR": 0.1 / 25, "CyclicLR": 0.001}  # max / div_factor, base_lr
START["LinearLR warmup + cosine"] = 0.1 * 0.01  # except for warmup = 0


@pytest.mark.parametrize("name", interactive.SCHEDULES)
def test_schedules_match_torch(name):
    argument, values, make = interactive.SCHEDULES[name]
    grid = interactive.schedule_grid({name: interactive.SCHEDULES[name]})
    curves = grid["schedules"][name]["curves"]
    for value, curve in zip(values, curves):
        first = (
            0.1 if name.startswith("LinearLR") and value == 0 else START.get(name, 0.1)
        )
        theirs = interactive.schedule_curve(make, value, L=torch.optim.lr_scheduler)
        assert len(curve) == 101 and curve[0] == pytest.approx(first)
        # the same Python float arithmetic as torch's (bit-identical in practice); 4 ε per
        # step for the recursive forms' 100 steps
        assert_close(
            torch.tensor(curve, dtype=torch.float64),
            torch.tensor(theirs, dtype=torch.float64),
            ulps=400,
            what=f"{name} {value}",
        )


def test_step_schedule_by_hand():
    _, _, make = interactive.SCHEDULES["StepLR"]
    curve = interactive.schedule_curve(make, 20)
    expected = [0.1 * 0.5 ** (t // 20) for t in range(101)]
    assert_close(
        torch.tensor(curve, dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        ulps=8,
    )


def lasso_thresholds(H, c):
    """For min ½(w − c)ᵀH(w − c) + λ‖w‖₁ with c₁ > 0, c₂ > 0 and H₁₂ ≥ 0: the λ from which w₂ = 0
    (on that branch w₁ = c₁ + (H₁₂c₂ − λ)/H₁₁ and |∂₂| = H₂₂c₂ − H₁₂(w₁ − c₁) ≤ λ), and the λ from
    which w = 0 (‖Hc‖∞)."""
    (h11, h12), (_, h22) = H
    c1, c2 = c
    # H₂₂c₂ − H₁₂(H₁₂c₂ − λ)/H₁₁ = λ
    second = (h22 * c2 - h12 * h12 * c2 / h11) / (1 - h12 / h11)
    both = max(abs(h11 * c1 + h12 * c2), abs(h12 * c1 + h22 * c2))
    return second, both


def test_l1_minimum_has_exact_zeros_beyond_the_thresholds(penalties):
    second, both = lasso_thresholds(penalties["H"], penalties["center"])
    assert (
        1.1 < second < 1.2 and 3.0 < both < 3.1
    )  # the figure's text quotes 1.18 and 3.05
    for lam, (w1, w2) in zip(penalties["lams"], penalties["minima"]["L1"]):
        assert (w2 == 0.0) == (lam >= second), (lam, w2)
        assert (w1 == 0.0) == (lam >= both), (lam, w1)


def kkt_violation(H, c, lam, alpha, w):
    """How far w is from optimal for ½(w − c)ᵀH(w − c) + λ(α‖w‖₁ + (1 − α)/2 ‖w‖²)."""
    w = torch.tensor(w, dtype=torch.float64)
    H, c = torch.tensor(H, dtype=torch.float64), torch.tensor(c, dtype=torch.float64)
    g = H @ (w - c) + lam * (1 - alpha) * w  # the smooth part's gradient
    at_zero = (g.abs() - lam * alpha).clamp(min=0)  # |g_i| ≤ αλ where w_i = 0
    elsewhere = (g + lam * alpha * w.sign()).abs()  # g_i = −αλ sign(w_i) where w_i ≠ 0
    return torch.where(w == 0, at_zero, elsewhere).max().item()


@pytest.mark.parametrize("name", interactive.PENALTIES)
def test_minima_are_optimal(penalties, name):
    alpha = interactive.PENALTIES[name]
    H, c = penalties["H"], penalties["center"]
    for lam, w in zip(penalties["lams"], penalties["minima"][name]):
        assert kkt_violation(H, c, lam, alpha, w) < 1e-12, (name, lam, w)


def test_l2_minimum_is_the_closed_form_and_never_zero(penalties):
    H = torch.tensor(penalties["H"], dtype=torch.float64)
    c = torch.tensor(penalties["center"], dtype=torch.float64)
    for lam, w in zip(penalties["lams"], penalties["minima"]["L2"]):
        exact = torch.linalg.solve(H + lam * torch.eye(2, dtype=torch.float64), H @ c)
        # 300 proximal-gradient steps converge to rounding; a 2×2 solve: a few ε
        assert_close(
            torch.tensor(w, dtype=torch.float64), exact, ulps=16, what=f"λ = {lam}"
        )
        assert all(v != 0 for v in w)


def test_elastic_net_reaches_zero_later_than_l1(penalties):
    first_zero = {
        name: next(
            (lam for lam, w in zip(penalties["lams"], m) if 0.0 in w), float("inf")
        )
        for name, m in penalties["minima"].items()
    }
    assert (
        first_zero["L1"] < first_zero["elastic net"] < first_zero["L2"] == float("inf")
    ), first_zero


def embedded(html, div_id):
    """The figure's data and layout, parsed from the Plotly.newPlot call."""
    call = re.search(
        r'Plotly\.newPlot\(\s*"'
        + div_id
        + r'",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"responsive"',
        html,
        re.S,
    )
    return json.loads(call[1]), json.loads(call[2])  # fmt: skip


@pytest.mark.parametrize(
    "div_id, html",
    [
        ("momentum-valley", lambda m, p: interactive.momentum_figure(m, 0.07, 0.5)),
        ("lr-schedules", lambda m, p: interactive.schedule_figure(
            interactive.schedule_grid(dict(list(interactive.SCHEDULES.items())[:2])))),
        ("norm-penalties", lambda m, p: interactive.penalty_figure(p)),
    ],
)  # fmt: skip
def test_figure_html(momentum, penalties, div_id, html):
    page = html(momentum, penalties)
    assert page.startswith(
        '<div class="companion-interactive" role="figure" aria-label="'
    )
    assert f'id="{div_id}"' in page and "plotly-graph-div" in page
    assert (
        "<script src" not in page and "cdn" not in page.lower()
    )  # the site serves plotly.js
    assert len(page) < 200_000
    data, layout = embedded(page, div_id)
    assert layout["sliders"] and all(s["steps"] for s in layout["sliders"])
    if div_id == "momentum-valley":  # the path drawn first: α = 0.07, γ = 0.5
        path = momentum["paths"][LRS.index(0.07)][MOMENTA.index(0.5)]
        assert data[2]["x"] == interactive._rounded(path[0], 3)
        assert "α = 0.07, γ = 0.5" in layout["title"]["text"]


def test_a_notebook_without_plotly_js_is_told_how_to_load_it():
    page = interactive.schedule_figure(interactive.schedule_grid())
    assert (
        interactive.NEEDS_PLOTLY in page and "load_plotly()" in interactive.NEEDS_PLOTLY
    )
    assert page.index(interactive.NEEDS_PLOTLY) < page.index("Plotly.newPlot")
    assert callable(interactive.load_plotly)
