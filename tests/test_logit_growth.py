"""companion.experiments.logit_growth: the logit gap, its smoothed optimum, and one short run."""

import math

import torch

from companion.core.data import load_digits
from companion.experiments.logit_growth import (
    logit_gap,
    optimal_gap,
    train_with_smoothing,
)
from companion.nn.loss import cross_entropy


def test_logit_gap_and_optimum():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 0.0, 6.0]], dtype=torch.float64)
    assert logit_gap(z, torch.tensor([0, 2])) == ((3 - 1.5) + 6) / 2
    assert optimal_gap(0.0, 10) == math.inf
    # at the optimal gap (other logits equal), the smoothed loss is stationary in the gap
    eps, c = 0.1, 10
    d = torch.tensor(optimal_gap(eps, c), dtype=torch.float64, requires_grad=True)
    logits = torch.cat(
        [d.reshape(1), torch.zeros(c - 1, dtype=torch.float64)]
    ).unsqueeze(0)
    (g,) = torch.autograd.grad(
        cross_entropy(logits, torch.tensor([0]), label_smoothing=eps), d
    )
    assert abs(g.item()) <= 16 * 2.2e-16  # a softmax and a subtraction: a few roundings


def test_short_run_smoothing_bounds_the_gap():
    digits = load_digits(n_train=200)
    hard = train_with_smoothing(digits, 0.0, seed=0, epochs=5)
    smooth = train_with_smoothing(digits, 0.3, seed=0, epochs=5)
    assert len(hard.gaps) == 5 and hard.gaps[-1] > smooth.gaps[-1]
    assert 0.0 <= smooth.reliability.ece <= 1.0 and 0.0 < smooth.test_accuracy <= 1.0
