"""The paper variants in companion.optim.adam_variants, each tied to torch where the two must agree."""

import pytest
import torch

from companion.optim.adam_variants import AdamVariant, DozatNAdam
from companion.testing.parity import replay_gradients

TOL = 1e-12


def _variant(**fixed):
    return lambda params, **options: AdamVariant(params, **fixed, **options)


@pytest.mark.parametrize(
    "ours, theirs, options",
    [
        (_variant(), torch.optim.Adam, dict(lr=0.01)),  # Algorithm 1 is torch's Adam
        (_variant(), torch.optim.Adam, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3)),
        (
            _variant(eps_hat=True),
            torch.optim.Adam,
            dict(lr=0.01, eps=0.0),
        ),  # the forms agree when ε = 0
        (
            DozatNAdam,
            torch.optim.NAdam,
            dict(lr=0.01, momentum_decay=1e4),
        ),  # agree when μ_t = β₁ throughout
        (
            DozatNAdam,
            torch.optim.NAdam,
            dict(lr=0.01, betas=(0.6, 0.9), momentum_decay=1e4),
        ),
    ],
    ids=[
        "adam",
        "adam-betas-eps",
        "eps-hat-eps0",
        "nadam-constant-mu",
        "nadam-constant-mu-betas",
    ],
)
def test_agrees_with_torch_where_it_must(ours, theirs, options):
    d_param, d_state = replay_gradients(
        ours, theirs, options, steps=200, missing_every=3
    )
    assert d_param < TOL and d_state < TOL, (d_param, d_state)


def test_dozat_nadam_differs_with_the_default_schedule():
    """With the warming μ_t the paper's first moment is not torch's: the runs part by more than 1e-3."""
    d_param, _ = replay_gradients(
        DozatNAdam, torch.optim.NAdam, dict(lr=0.01), steps=50
    )
    assert d_param > 1e-3


@pytest.mark.parametrize("eps_hat", [False, True])
def test_eps_hat_is_a_time_varying_eps(eps_hat):
    """The efficient form equals Algorithm 1 with ε_t = ε̂ / √(1 − β₂ᵗ) (to 1e-12 over 100 steps)."""
    beta2, eps = 0.999, 1e-2
    g = torch.Generator().manual_seed(0)
    grads = 0.1 * torch.randn(100, 5, generator=g, dtype=torch.float64)
    a = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt_a = AdamVariant([a], lr=0.01, betas=(0.9, beta2), eps=eps, eps_hat=True)
    opt_b = AdamVariant([b], lr=0.01, betas=(0.9, beta2), eps=eps)
    for t, grad in enumerate(grads, start=1):
        opt_b.param_groups[0]["eps"] = eps / (1 - beta2**t) ** 0.5
        a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
        assert (a - b).abs().max().item() < TOL


def test_no_bias_correction_first_step():
    """Without correction the first step is γ (1 − β₁) / √(1 − β₂) · sign(g) (ε = 0), to 1e-12."""
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = AdamVariant([p], lr=0.1, betas=(0.9, 0.999), eps=0.0, bias_correction=False)
    p.grad = torch.tensor([2.0, -0.5, 1e-4], dtype=torch.float64)
    opt.step()
    expected = (
        -0.1 * 0.1 / 0.001**0.5 * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    )
    assert torch.allclose(p.detach(), expected, rtol=0, atol=TOL)


def _dozat_by_hand(grads, lr, beta1, beta2, eps, psi):
    """Dozat's Algorithm 2 for one scalar, written out with Python floats; Π is rounded to float32 after every
    product, as the optimizer keeps it (torch's precision for ``mu_product``)."""
    import math

    import numpy as np

    theta, m, v, prod, path = 0.0, 0.0, 0.0, np.float32(1.0), []
    for t, g in enumerate(grads, start=1):
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        prod = np.float32(
            prod * np.float32(mu)
        )  # a float32 tensor times a Python float: float32 arithmetic
        m = mu * m + (1 - mu) * g
        v = beta2 * v + (1 - beta2) * g * g
        denom = math.sqrt(v / (1 - beta2**t)) + eps
        theta -= lr * (1 - mu) / (1 - float(prod)) * g / denom
        theta -= lr * mu_next / (1 - float(prod) * mu_next) * m / denom
        path.append(theta)
    return path


@pytest.mark.parametrize("psi", [4e-3, 0.5])
def test_dozat_nadam_three_steps_by_hand(psi):
    """The scheduled-μ path against a hand-computed three-step reference (not only "differs from torch")."""
    from companion.testing.tolerances import assert_close

    grads = [0.3, -1.2, 0.7]
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = DozatNAdam([p], lr=lr, betas=(beta1, beta2), eps=eps, momentum_decay=psi)
    ours = []
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        ours.append(p.item())
    expected = torch.tensor(
        _dozat_by_hand(grads, lr, beta1, beta2, eps, psi), dtype=torch.float64
    )
    # three steps of a dozen elementwise operations each, the two sides ordering their products differently
    # (addcdiv vs a product of Python floats): a few ε per operation, compounding over three steps
    assert_close(
        torch.tensor(ours, dtype=torch.float64),
        expected,
        ulps=64,
        what="θ after steps 1, 2, 3",
    )
    # and the first step is not γ: 1 + μ₂(1 − μ₁)/(1 − μ₁μ₂) times γ·sign(g) (ε negligible)
    mu1, mu2 = (beta1 * (1 - 0.5 * 0.96 ** (k * psi)) for k in (1, 2))
    assert abs(abs(ours[0]) / lr - (1 + mu2 * (1 - mu1) / (1 - mu1 * mu2))) < 1e-6
