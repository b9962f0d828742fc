"""companion.experiments.shallow_networks: batched one-hidden-layer networks, trained (XOR, a 1-D function)
and with a random hidden layer plus an exact least-squares output layer."""

import pytest
import torch
from torch import nn

from companion.experiments.perceptron import xor_data
from companion.experiments.shallow_networks import (
    fit_random_features,
    fit_shallow_networks,
    init_shallow_networks,
)
from companion.testing.tolerances import assert_close

DTYPE = torch.float64


def test_batched_networks_equal_their_nn_linear_twins():
    X = torch.randn(9, 3, dtype=DTYPE)
    nets = init_shallow_networks(3, 5, [0, 1, 2], activation="tanh")
    out = nets(X)
    for s in range(3):
        twin = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).to(DTYPE)
        with torch.no_grad():
            twin[0].weight.copy_(nets.W[s]), twin[0].bias.copy_(nets.c[s])
            twin[2].weight.copy_(nets.v[s][None]), twin[2].bias.copy_(nets.d[s][None])
            ref = twin(X).squeeze(1)
        # two small matrix products (width ≤ 5) in other orders: a few ε each, 16 ε·scale
        assert_close(out[s].detach(), ref, ulps=16, what=f"seed {s}")


def test_seeds_do_not_interact():
    X, y = xor_data()
    _, together = fit_shallow_networks(X, y, width=3, seeds=[4, 7], steps=50, lr=0.05)
    _, alone = fit_shallow_networks(X, y, width=3, seeds=[7], steps=50, lr=0.05)
    # the same per-coordinate arithmetic; only the einsum's batching differs: 50 steps of compounding
    # rounding on values of order 1, bounded by 1e4 ε·scale
    assert_close(
        together[1:], alone, ulps=1e4, scale=1.0, what="seed 7 with or without seed 4"
    )


def test_a_hidden_layer_of_four_solves_xor_for_every_seed():
    X, y = xor_data()
    nets, mse = fit_shallow_networks(
        X, y, width=4, seeds=list(range(10)), steps=500, lr=0.05
    )
    assert (mse < 1e-3).all()
    assert torch.equal(torch.where(nets(X) > 0, 1.0, -1.0).to(DTYPE), y.expand(10, 4))


def test_random_features_error_falls_with_width():
    # a statement about the seeds' geometric mean, not about the worst seed: one unlucky draw of the turning
    # points (e.g. at COMPANION_SEED_OFFSET=1000: worst errors 0.62, 0.51, 0.043, 4e-9 at widths 1, 4, 16, 64)
    # can leave a narrow network no better than a narrower one
    x = torch.linspace(-1, 1, 256, dtype=DTYPE)[:, None]
    f = torch.sin(2 * torch.pi * x[:, 0]) + 0.5 * torch.sin(5 * torch.pi * x[:, 0])
    log_errors = []
    for width in (1, 8, 32, 64):
        nets = fit_random_features(x, f, width=width, seeds=list(range(10)))
        log_errors.append(((nets(x) - f) ** 2).mean(dim=1).log10().mean().item())
    # measured over 200 sets of 10 seeds (offsets 0, 10, ..., 1990): 1 → 8 lowers the mean log10 error by at
    # least 0.48, 8 → 32 by at least 3.9, 32 → 64 by at least 2.8, and 64 units stay below -8.7, in every set
    assert all(b < a - 0.3 for a, b in zip(log_errors[:3], log_errors[1:3])), log_errors
    assert log_errors[3] < log_errors[2] and log_errors[3] < -6, log_errors


def test_errors():
    X, y = xor_data()
    with pytest.raises(ValueError, match="activation must be one of"):
        init_shallow_networks(2, 3, [0], activation="swish")
    with pytest.raises(ValueError, match="need width >= 1"):
        init_shallow_networks(2, 0, [0])
    with pytest.raises(ValueError, match="X must be"):
        fit_shallow_networks(X, y[:2], width=2, seeds=[0])
    with pytest.raises(ValueError, match="x must be"):
        fit_random_features(X, y, width=2, seeds=[0])
