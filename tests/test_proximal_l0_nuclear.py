"""companion.regularization.proximal: the L0 hard threshold, the nuclear norm's singular-value soft-thresholding and the per-coordinate L1 threshold with Adam, against hand computations and their proximal property."""

import pytest
import torch

from companion.optim import SGD
from companion.regularization import ProximalL1, soft_threshold
from companion.testing.tolerances import assert_close
from test_regularization import _model


# --- L0 (hard threshold), nuclear norm (singular-value soft-thresholding), per-coordinate L1 with Adam ---

from companion.optim import Adam
from companion.regularization.proximal import (
    ProximalL0,
    ProximalNuclear,
    hard_threshold,
    l0_proximal_step,
    nuclear_norm,
    nuclear_proximal_step,
    singular_value_threshold,
)


def test_hard_threshold_values_and_prox_property():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 1.2, 3.0], dtype=torch.float64)
    # |x| ≤ t → 0, otherwise unchanged: copies and comparisons only, so bit-exact
    assert_close(
        hard_threshold(x, 1.0),
        torch.tensor([-2.0, 0, 0, 0, 0, 0, 1.2, 3.0], dtype=torch.float64),
        ulps=0,
    )
    # it minimizes ½(z − x)² + (t²/2)·1[z ≠ 0] over a fine grid of z (ties at |x| = t excluded above by value)
    t, grid = 1.0, torch.linspace(-4, 4, 80001, dtype=torch.float64)
    for xi in (-2.0, -0.5, 0.3, 1.2, 3.0):
        objective = lambda z: 0.5 * (z - xi) ** 2 + 0.5 * t**2 * (z != 0).to(z.dtype)
        best = objective(torch.cat([grid, torch.zeros(1, dtype=torch.float64)])).min()
        assert (
            objective(hard_threshold(torch.tensor(xi, dtype=torch.float64), t))
            <= best + 1e-12
        )


def test_l0_proximal_step_threshold_is_sqrt_2_lr_lam():
    w = torch.tensor([[0.09, -0.11, 0.5], [-0.099, 0.101, -2.0]], dtype=torch.float64)
    l0_proximal_step([w], lam=0.5, lr=0.01)  # t = √(2 · 0.01 · 0.5) = 0.1
    assert_close(
        w,
        torch.tensor([[0.0, -0.11, 0.5], [0.0, 0.101, -2.0]], dtype=torch.float64),
        ulps=0,
    )


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 2, 5)])
def test_singular_value_threshold_shrinks_the_spectrum(shape):
    W = torch.randn(
        shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    sigma = torch.linalg.svdvals(W)
    t = (
        sigma[..., -1].max().item()
    )  # every matrix loses its smallest singular value ...
    assert t < sigma[..., 0].min().item()  # ... and keeps its largest
    Z = singular_value_threshold(W, t)
    # σ(Z) = max(σ(W) − t, 0): an SVD, a subtraction and a product of three factors, then another SVD;
    # the errors scale with σ_max and the matrix size, a few tens of ε·scale
    assert_close(
        torch.linalg.svdvals(Z),
        (sigma - t).clamp(min=0),
        ulps=64,
        scale=sigma.max().item(),
        what="σ(Z)",
    )
    assert (torch.linalg.matrix_rank(Z) < torch.linalg.matrix_rank(W)).all()


def test_singular_value_threshold_is_the_prox():
    gen = torch.Generator().manual_seed(1)
    W, t = torch.randn(5, 4, generator=gen, dtype=torch.float64), 0.8
    Z = singular_value_threshold(W, t)
    objective = lambda Y: 0.5 * (Y - W).pow(2).sum() + t * nuclear_norm(Y)
    for _ in range(
        50
    ):  # no small perturbation lowers ½‖Z − W‖² + t‖Z‖_* (it is convex: a local minimum is global)
        delta = 1e-3 * torch.randn(5, 4, generator=gen, dtype=torch.float64)
        assert objective(Z + delta) >= objective(Z) - 1e-12


def test_nuclear_norm_and_step():
    W = torch.diag(torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64))
    assert_close(
        nuclear_norm(W),
        torch.tensor(4.2, dtype=torch.float64),
        ulps=4,
        what="Σσ of a diagonal matrix",
    )
    nuclear_proximal_step([W], lam=5.0, lr=0.1)  # threshold 0.5
    assert_close(
        W,
        torch.diag(torch.tensor([2.5, 0.5, 0.0], dtype=torch.float64)),
        ulps=8,
        what="SVT of a diagonal matrix",
    )


def test_proximal_l0_and_nuclear_wrappers_match_manual_steps():
    model, manual = _model(), _model()
    X = torch.randn(
        16, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    for cls, step in (
        (ProximalL0, l0_proximal_step),
        (ProximalNuclear, nuclear_proximal_step),
    ):
        model, manual = _model(), _model()
        opt = cls(SGD(model.parameters(), lr=0.1), 0.05)
        ref = SGD(manual.parameters(), lr=0.1)
        for _ in range(3):
            for m, o in ((model, opt), (manual, ref)):
                o.zero_grad()
                m(X).pow(2).mean().backward()
                o.step()
            step([manual[0].weight, manual[3].weight], 0.05, 0.1)
        for a, b in zip(model.parameters(), manual.parameters()):
            assert_close(
                a, b, ulps=0, what=cls.__name__
            )  # the same operations in the same order


def test_proximal_l1_per_coordinate_threshold_with_adam():
    model, manual = _model(), _model()
    X = torch.randn(
        16, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    opt = ProximalL1(Adam(model.parameters(), lr=0.01), 0.1, per_coordinate=True)
    ref = Adam(manual.parameters(), lr=0.01)
    for t in range(1, 4):
        for m, o in ((model, opt), (manual, ref)):
            o.zero_grad()
            m(X).pow(2).mean().backward()
            o.step()
        with torch.no_grad():
            for w in (manual[0].weight, manual[3].weight):
                v = ref.state[w]["exp_avg_sq"]
                w.copy_(
                    soft_threshold(w, 0.01 * 0.1 / ((v / (1 - 0.999**t)).sqrt() + 1e-8))
                )
    for a, b in zip(model.parameters(), manual.parameters()):
        assert_close(
            a, b, ulps=0, what="per-coordinate soft threshold"
        )  # the same operations in the same order
    # coordinates with small v̂ get a larger threshold than the uniform γλ
    v = opt.state[model[0].weight]["exp_avg_sq"]
    assert ((0.01 * 0.1 / ((v / (1 - 0.999**3)).sqrt() + 1e-8)) > 0.01 * 0.1).any()


def test_per_coordinate_needs_an_adam_like_optimizer():
    with pytest.raises(ValueError, match="Adam-like"):
        ProximalL1(SGD(_model().parameters(), lr=0.1), 0.1, per_coordinate=True)


def test_nuclear_and_hard_threshold_invalid():
    with pytest.raises(ValueError, match="needs a matrix"):
        singular_value_threshold(torch.ones(3), 0.1)
    with pytest.raises(ValueError, match="Invalid regularization strength threshold"):
        hard_threshold(torch.ones(3), -0.1)
